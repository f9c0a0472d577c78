"""The Gateway API in cluster mode, end to end: ``twistd ingressd --kubernetes`` against the fake
apiserver holding a GatewayClass, a Gateway (an HTTP and an HTTPS listener), an HTTPRoute and a
GRPCRoute. Traffic is served through the routes (an HTTP client; a real grpcio client over TLS to
a real grpcio server), and the status the leader writes is read back with the official
kubernetes client: GatewayClass Accepted, Gateway Accepted/Programmed with its listeners'
conditions and attachedRoutes, the routes' per-parent Accepted/ResolvedRefs, observedGeneration.
Then the route is edited (written again at the new generation) and its backend Service removed
(ResolvedRefs False BackendNotFound, and 500 for the share it had); the GatewayClass's and the
Gateway's spec changed (the conformance cases GatewayClassObservedGenerationBump and
GatewayObservedGenerationBump: every condition at the new generation)."""

from __future__ import annotations

import time

import grpc
import pytest
from kubernetes import client as kube_client
from kubernetes import config as kube_config

import certs
import fakeapi
from backends import Backend
from grpc_backends import GrpcBackend, channel, method
from harness import Ingressd, service

pytestmark = pytest.mark.slow

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
OURS = "ingressd.io/gateway-controller"


def wait_for(predicate, timeout=30.0, interval=0.05, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {what or predicate}")


def gateway(name: str = "gw") -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Gateway",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"gatewayClassName": "ingressd", "listeners": [
                {"name": "http", "protocol": "HTTP", "port": 80},
                {"name": "https", "protocol": "HTTPS", "port": 443, "hostname": "grpc.example",
                 "tls": {"certificateRefs": [{"name": "front"}]}}]}}


def grpc_route() -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GRPCRoute",
            "metadata": {"name": "echo", "namespace": "default"},
            "spec": {"parentRefs": [{"name": "gw", "sectionName": "https"}],
                     "rules": [{"matches": [{"method": {"service": "test.Echo"}}],
                                "backendRefs": [{"name": "echo", "port": 9000}]}]}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("kube-gateway")
    (root / "manifests").mkdir()
    one, two, echo = Backend("one"), Backend("two"), GrpcBackend()
    ca = certs.make_ca()
    front = certs.make_leaf("grpc.example", issuer=ca)
    api = fakeapi.FakeAPIServer(bookmark_interval=0.5).start()
    kubeconfig = api.write_kubeconfig(str(root / "kubeconfig"))
    c = api.cluster
    for obj in [*service("web", [("http", 80, one.port)]), *service("other", [("http", 80, two.port)]),
                *service("echo", [("grpc", 9000, echo.port)]),
                certs.secret_manifest("default", "front", front.cert_pem, front.key_pem()),
                fakeapi.gateway_class(), fakeapi.gateway_class("theirs", "example.com/other-controller"),
                gateway(), fakeapi.http_route("app", gateway="gw", host="app.example.com"), grpc_route()]:
        c.apply(obj)
    proc = Ingressd(root / "manifests", ["--kubernetes", "--kubeconfig", kubeconfig])
    official = kube_config.new_client_from_config(config_file=kubeconfig)
    ch = channel(proc.https_port, "grpc.example", ca.cert_pem)
    try:
        yield proc, api, kube_client.CustomObjectsApi(official), ch
    finally:
        ch.close()
        official.close()
        proc.stop()
        api.stop()
        one.stop()
        two.stop()
        echo.stop()


def backend_of(proc, host, path="/"):
    response = proc.get(path, host=host)
    return response.json()["backend"] if response.status == 200 else response.status


def read(custom, plural, name, namespace=None):
    if namespace is None:
        return custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


def conditions(entry) -> dict:
    """type → (status, reason, observedGeneration), and every condition has its time."""
    found = {}
    for item in entry.get("conditions") or ():
        assert item["lastTransitionTime"].endswith("Z"), item
        found[item["type"]] = (item["status"], item["reason"], item["observedGeneration"])
    return found


def ours(route) -> dict | None:
    parents = [p for p in (route.get("status") or {}).get("parents") or () if p["controllerName"] == OURS]
    return parents[0] if len(parents) == 1 else None


def test_traffic_through_the_httproute_and_the_grpcroute(world):
    proc, _, _, ch = world
    assert wait_for(lambda: backend_of(proc, "app.example.com") == "one", what="the HTTPRoute served")
    wait_for(lambda: _grpc_answers(ch), what="the GRPCRoute served")
    reply, call = method(ch, "unary_unary", "Unary").with_call(b"hello", timeout=20)
    assert reply == b"hello" and call.code() == grpc.StatusCode.OK
    assert backend_of(proc, "nothing.example.com") == 404


def _grpc_answers(ch) -> bool:
    try:
        return method(ch, "unary_unary", "Unary")(b"x", timeout=5) == b"x"
    except grpc.RpcError:
        return False


def test_the_leader_writes_every_status(world):
    _, _, custom, _ = world

    def gateway_class_status():
        found = read(custom, "gatewayclasses", "ingressd")
        generation = found["metadata"]["generation"]  # (another test may bump it)
        judged = conditions(found.get("status") or {})
        return judged if judged.get("Accepted") == ("True", "Accepted", generation) else None

    assert wait_for(gateway_class_status, what="GatewayClass Accepted")
    features = [item["name"] for item in read(custom, "gatewayclasses", "ingressd")["status"]["supportedFeatures"]]
    assert features == sorted(features) and {"Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant"} <= set(features)
    assert "SupportedVersion" not in gateway_class_status()  # ingressd reads no CRD: it claims no version
    # another controller's class is left alone (the CRD's default status, here none)
    assert not (read(custom, "gatewayclasses", "theirs").get("status") or {}).get("conditions")

    def gateway_status():
        status = read(custom, "gateways", "gw", "default").get("status") or {}
        listeners = {item["name"]: item for item in status.get("listeners") or ()}
        return status if listeners.get("http", {}).get("attachedRoutes") == 1 \
            and listeners.get("https", {}).get("attachedRoutes") == 1 else None

    status = wait_for(gateway_status, what="the Gateway's status with both routes attached")
    assert conditions(status) == {"Accepted": ("True", "Accepted", 1), "Programmed": ("True", "Programmed", 1)}
    for listener in status["listeners"]:
        assert conditions(listener) == {"Accepted": ("True", "Accepted", 1), "ResolvedRefs": ("True", "ResolvedRefs", 1),
                                        "Conflicted": ("False", "NoConflicts", 1),
                                        "Programmed": ("True", "Programmed", 1)}, listener["name"]
        assert {kind["kind"] for kind in listener["supportedKinds"]} == {"HTTPRoute", "GRPCRoute"}

    for plural, name in (("httproutes", "app"), ("grpcroutes", "echo")):
        parent = wait_for(lambda: ours(read(custom, plural, name, "default")), what=f"{plural} {name} status")
        assert conditions(parent) == {"Accepted": ("True", "Accepted", 1), "ResolvedRefs": ("True", "ResolvedRefs", 1)}
        assert parent["parentRef"]["name"] == "gw"


def test_an_edit_is_written_at_its_generation_and_a_removed_backend_is_backend_not_found(world):
    """On a Gateway and a route of its own (the other tests' objects stay as they were)."""
    proc, api, custom, _ = world
    c = api.cluster
    c.apply(gateway("edits"))
    c.apply(fakeapi.http_route("edited", gateway="edits", host="edit.example.com", service="web"))
    wait_for(lambda: backend_of(proc, "edit.example.com") == "one", what="the route served")
    c.apply(fakeapi.http_route("edited", gateway="edits", host="edit.example.com", service="other"))
    generation = read(custom, "httproutes", "edited", "default")["metadata"]["generation"]
    assert generation == 2
    wait_for(lambda: backend_of(proc, "edit.example.com") == "two", what="the edited route served")

    def parent_at(generation, resolved):
        parent = ours(read(custom, "httproutes", "edited", "default"))
        if parent is None:
            return None
        found = conditions(parent)
        return found if found.get("ResolvedRefs", ("",))[0] == resolved and all(
            value[2] == generation for value in found.values()) else None

    assert wait_for(lambda: parent_at(2, "True"), what="status at generation 2") == {
        "Accepted": ("True", "Accepted", 2), "ResolvedRefs": ("True", "ResolvedRefs", 2)}

    c.remove("Service", "default", "other")
    found = wait_for(lambda: parent_at(2, "False"), what="ResolvedRefs False")
    assert found == {"Accepted": ("True", "Accepted", 2), "ResolvedRefs": ("False", "BackendNotFound", 2)}
    message = next(item["message"] for item in ours(read(custom, "httproutes", "edited", "default"))["conditions"]
                   if item["type"] == "ResolvedRefs")
    assert "default/other" in message
    wait_for(lambda: backend_of(proc, "edit.example.com") == 500, what="500 for the missing backend's share")


def test_a_spec_change_of_the_gateway_class_and_the_gateway_is_written_at_the_new_generation(world):
    _, api, custom, _ = world
    c = api.cluster
    gateway_class = fakeapi.gateway_class()
    gateway_class["spec"]["description"] = "new"
    c.apply(gateway_class)
    assert read(custom, "gatewayclasses", "ingressd")["metadata"]["generation"] == 2

    def class_at_2():
        found = conditions(read(custom, "gatewayclasses", "ingressd").get("status") or {})
        return found if found and all(value[2] == 2 for value in found.values()) else None

    assert wait_for(class_at_2, what="GatewayClass conditions at generation 2") == {"Accepted": ("True", "Accepted", 2)}
    c.apply(fakeapi.gateway_class())  # as it was (the spec changes again: generation 3)

    c.apply(gateway("bumped"))  # a Gateway of its own: the other tests' stays as it was
    wait_for(lambda: conditions(read(custom, "gateways", "bumped", "default").get("status") or {}),
             what="the Gateway's first status")
    edited = gateway("bumped")
    edited["spec"]["listeners"].append({"name": "extra", "protocol": "HTTP", "port": 8080})
    c.apply(edited)
    assert read(custom, "gateways", "bumped", "default")["metadata"]["generation"] == 2

    def gateway_at_2():
        status = read(custom, "gateways", "bumped", "default").get("status") or {}
        entries = [status, *(status.get("listeners") or ())]
        if len(entries) != 4 or not all(value[2] == 2 for entry in entries for value in conditions(entry).values()):
            return None
        return status

    status = wait_for(gateway_at_2, what="Gateway conditions at generation 2, three listeners")
    assert conditions(status) == {"Accepted": ("True", "Accepted", 2), "Programmed": ("True", "Programmed", 2)}
    assert [item["name"] for item in status["listeners"]] == ["http", "https", "extra"]
