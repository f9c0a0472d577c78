"""``ingressd check`` on Gateway API objects: the verdict on each GatewayClass, Gateway,
HTTPRoute and GRPCRoute is the Gateway API source's own judgement (the status the server writes
or shows), read back; Ingresses mixed in keep their verdicts and an HTTPRoute an Ingress shadows
is not served; the exit status, the table and the JSON; the cluster read with the Gateway API
kinds, with and without their CRDs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

import fakeapi

from ingressd.compat import check_gateway
from ingressd.compat.check import build_config, check_settings, evaluate, main, read_paths
from ingressd.config.model import ObjectRef
from ingressd.testing import restore_plugin_configuration

MIXED = Path(__file__).resolve().parent / "fixtures" / "check-gateway" / "mixed.yaml"


@pytest.fixture(autouse=True)
def _plugins_as_they_were():
    yield
    restore_plugin_configuration()


def run(args, stdin: str = ""):
    out = io.StringIO()
    status = main(list(args), stdin=io.StringIO(stdin), stdout=out)
    return status, out.getvalue()


def mixed() -> list[dict]:
    return read_paths([str(MIXED)])[0]


def verdicts(report) -> dict[str, check_gateway.GatewayVerdict]:
    return {str(v.ref): v for v in report.gateway.verdicts}


# Each object of the fixture, with the verdict the server's judgement gives it.
EXPECTED = {
    "GatewayClass ingressd": "served",
    "Gateway default/gw": "partially-served",  # its HTTPS listener's Secret is missing
    "HTTPRoute default/good": "served",
    "HTTPRoute default/half": "partially-served",  # one rule left out
    "HTTPRoute default/missing-backend": "partially-served",  # served; its Service's share answers 500
    "HTTPRoute team/denied": "not-served",  # NotAllowedByListeners
    "HTTPRoute default/elsewhere": "not-served",  # NoMatchingListenerHostname
    "HTTPRoute default/orphan": "not-served",  # its Gateway is not in the input
    "HTTPRoute default/shadowed": "not-served",  # an Ingress serves its host and path
    "GRPCRoute default/grpc": "served",
}


def test_each_object_gets_the_verdict_of_the_judged_status():
    report = evaluate(mixed(), check_settings())
    assert {ref: v.verdict for ref, v in verdicts(report).items()} == EXPECTED
    # GatewayClass other, Gateway foreign and the HTTPRoute theirs attached only to it
    assert report.gateway.other_controller == 3
    assert [v.verdict for v in report.verdicts] == ["served"]  # the Ingress keeps its verdict
    assert report.exit_status == 1


def test_the_reasons_are_the_conditions_the_server_writes():
    found = verdicts(evaluate(mixed(), check_settings()))
    gateway = found["Gateway default/gw"]
    assert any(r.startswith("listener https: ResolvedRefs=False InvalidCertificateRef: Secret default/no-such-secret")
               for r in gateway.reasons)
    assert "listener http: 5 route(s) attached" in gateway.notes
    assert found["HTTPRoute default/half"].reasons == [
        "parent Gateway default/gw: PartiallyInvalid=True UnsupportedValue: rule 1: path '/a//b' is invalid"]
    assert found["HTTPRoute default/missing-backend"].reasons == [
        "parent Gateway default/gw: ResolvedRefs=False BackendNotFound: Service default/nope port 80 not found"]
    assert found["HTTPRoute team/denied"].reasons[0].startswith(
        "parent Gateway default/gw: Accepted=False NotAllowedByListeners: no listener of Gateway default/gw admits")
    assert found["HTTPRoute default/elsewhere"].reasons == [
        "parent Gateway default/gw (http): Accepted=False NoMatchingListenerHostname: no hostname of the route "
        "matches a listener of Gateway default/gw"]
    assert found["HTTPRoute default/orphan"].reasons == [
        "the Gateway(s) its parentRefs name are not in the input: default/missing"]
    assert found["HTTPRoute default/shadowed"].reasons[0] == (
        "shadow.example.com/ (Prefix) is served by Ingress default/app, which takes precedence")


def test_never_a_second_judgement():
    """Every reason of a route with a parent of ours is a condition of the status the Gateway API
    source judged, or a warning of the configuration (the merge's): nothing else."""
    objects = mixed()
    config = build_config(objects, check_settings())[0]
    status = {ref: json.loads(document.body) for ref, document in config.status}
    warnings = {(w.ref, w.reason) for w in config.warnings}
    for ref_text, verdict in verdicts(evaluate(objects, check_settings())).items():
        body = status.get(verdict.ref)
        if body is None or verdict.ref.kind not in check_gateway.ROUTE_KINDS:
            continue
        messages = [c["message"] for parent in body["parents"] for c in parent["conditions"]]
        for reason in verdict.reasons:
            assert (any(reason.endswith(": " + m) for m in messages) or (verdict.ref, reason) in warnings
                    or reason == "none of its rules is served"), (ref_text, reason)


def test_a_route_half_shadowed_by_an_ingress_is_partially_served():
    objects = [o for o in mixed() if o["kind"] != "HTTPRoute" or o["metadata"]["name"] == "shadowed"]
    route = next(o for o in objects if o["kind"] == "HTTPRoute")
    route["spec"]["rules"].append({"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                                   "backendRefs": [{"name": "web", "port": 80}]})
    found = verdicts(evaluate(objects, check_settings()))
    assert found["HTTPRoute default/shadowed"].verdict == "partially-served"
    assert found["HTTPRoute default/shadowed"].reasons == [
        "shadow.example.com/ (Prefix) is served by Ingress default/app, which takes precedence"]


def test_all_served_exits_0_and_other_controllers_are_left_out():
    keep = {("GatewayClass", "ingressd"), ("GatewayClass", "other"), ("Gateway", "foreign"), ("Service", "web"),
            ("EndpointSlice", "web-1"), ("HTTPRoute", "good"), ("HTTPRoute", "theirs"), ("GRPCRoute", "grpc")}
    objects = [o for o in mixed() if (o["kind"], o["metadata"]["name"]) in keep]
    gateway = yaml.safe_load(MIXED.read_text().split("---")[2])
    gateway["spec"]["listeners"] = gateway["spec"]["listeners"][:1]  # without the broken HTTPS listener
    status, text = run(["-"], yaml.safe_dump_all([*objects, gateway]))
    assert status == 0, text
    assert "No Ingress of the selected class" not in text
    assert "Gateway API: 4 object(s): 4 served, 0 partially served, 0 not served; 3 of another controller left out" \
        in text


def test_the_gateway_controller_name_chooses_the_classes():
    report = evaluate(mixed(), check_settings(gateway_controller="example.com/other-controller"))
    assert {ref: v.verdict for ref, v in verdicts(report).items()} == {
        "GatewayClass other": "served", "Gateway default/foreign": "served", "HTTPRoute default/theirs": "served",
        "HTTPRoute default/orphan": "not-served"}  # whichever the controller, its Gateway is missing
    status, out = run([str(MIXED), "--gateway-controller-name", "example.com/other-controller", "--output", "json"])
    document = json.loads(out)
    assert {item["name"]: item["verdict"] for item in document["gateway_api"]} == {
        "other": "served", "foreign": "served", "theirs": "served", "orphan": "not-served"}


def test_the_command_table_and_exit_status():
    status, text = run([str(MIXED)])
    assert status == 1
    lines = text.splitlines()
    assert lines[0].split() == ["INGRESS", "HOSTS", "VERDICT"]
    table = lines[lines.index(next(line for line in lines if line.startswith("GATEWAY API OBJECT"))):]
    assert table[1].split() == ["GatewayClass", "ingressd", "-", "served"]
    assert "HTTPRoute team/denied: not served" in lines
    assert "Gateway API: 10 object(s): 3 served, 3 partially served, 4 not served; 3 of another controller left out" \
        in lines


def test_the_command_json():
    status, out = run([str(MIXED), "--output", "json"])
    assert status == 1
    document = json.loads(out)
    assert set(document) == {"version", "ingresses", "lint", "problems", "summary", "gateway_api"}
    by_ref = {(item["kind"], item["namespace"], item["name"]): item for item in document["gateway_api"]}
    assert by_ref[("HTTPRoute", "default", "good")] == {
        "kind": "HTTPRoute", "namespace": "default", "name": "good", "hosts": ["good.example.com"],
        "verdict": "served", "reasons": [], "notes": []}
    assert by_ref[("GatewayClass", "", "ingressd")]["verdict"] == "served"
    assert document["summary"]["gateway_api"] == {"objects": 10, "served": 3, "partially_served": 3,
                                                  "not_served": 4, "other_controller": 3}
    assert document["summary"]["served"] == 1  # the Ingress


def test_missing_gateway_class_and_gateway_are_named():
    objects = [o for o in mixed() if o["kind"] != "GatewayClass"]
    found = verdicts(evaluate(objects, check_settings()))
    assert found["Gateway default/gw"].reasons == ["its GatewayClass 'ingressd' is not in the input"]
    assert found["HTTPRoute default/good"].reasons == ["the GatewayClass of default/gw is not in the input"]


@pytest.mark.slow
def test_reads_the_gateway_api_kinds_from_the_cluster(tmp_path):
    api = fakeapi.FakeAPIServer().start()
    try:
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
        c = api.cluster
        c.apply(fakeapi.service("web"))
        c.apply(fakeapi.gateway_class())
        c.apply(fakeapi.gateway("gw"))
        c.apply(fakeapi.http_route("app", gateway="gw"))
        c.apply(fakeapi.http_route("lost", gateway="gw", service="nope"))
        status, out = run(["--kubernetes", "--kubeconfig", kubeconfig, "--output", "json"])
        assert status == 1
        found = {item["name"]: item["verdict"] for item in json.loads(out)["gateway_api"]}
        assert found == {"ingressd": "served", "gw": "served", "app": "served", "lost": "partially-served"}
        assert {(request.method, request.watch) for request in api.requests} == {("GET", False)}

        api.absent_groups.add("gateway.networking.k8s.io")  # a cluster without the CRDs: none of them
        status, out = run(["--kubernetes", "--kubeconfig", kubeconfig, "--output", "json"])
        assert status == 0 and "gateway_api" not in json.loads(out)
    finally:
        api.stop()


def test_refs_of_cluster_scoped_objects_have_no_namespace():
    report = evaluate(mixed(), check_settings())
    assert ObjectRef("GatewayClass", "", "ingressd") in {v.ref for v in report.gateway.verdicts}
