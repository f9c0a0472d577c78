"""``ingressd check``: reading files, streams and the cluster; verdicts, lint, output and exit status."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import fakeapi
from harness import INGRESS_CLASS, ingress, service

from ingressd.compat.check import main
from ingressd.testing import restore_plugin_configuration

ROOT = Path(__file__).resolve().parent.parent
N = "nginx.ingress.kubernetes.io/"
NGINX_CLASS = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
               "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}


@pytest.fixture(autouse=True)
def _plugins_as_they_were():
    """``ingressd check`` configures the installed plugins as the server does, with a Clock of
    its own: put them back as they were, or later tests build their routes with that clock."""
    yield
    restore_plugin_configuration()


def run(args, stdin: str = ""):
    out = io.StringIO()
    status = main(list(args), stdin=io.StringIO(stdin), stdout=out)
    return status, out.getvalue()


def run_json(args, stdin: str = ""):
    status, text = run([*args, "--output", "json"], stdin)
    return status, json.loads(text)


def stream(*objects) -> str:
    return yaml.safe_dump_all(list(objects))


def app(name, host, annotations=None, class_name="nginx", **kwargs):
    return ingress(name, [(host, [("/", "Prefix", "web", 80)])], annotations=annotations, class_name=class_name,
                   **kwargs)


WORLD = [NGINX_CLASS, *service("web", [("http", 80, 8080)])]


def by_name(document):
    return {item["name"]: item for item in document["ingresses"]}


def test_the_example_configuration_is_served_as_is():
    status, document = run_json([str(ROOT / "etc" / "examples")])
    assert status == 0
    assert [(i["name"], i["verdict"]) for i in document["ingresses"]] == [("demo", "served")]
    assert document["summary"]["served"] == 1 and document["lint"] == []


def test_verdicts_from_a_stream_as_kubectl_writes_it():
    listed = {"apiVersion": "v1", "kind": "List", "items": [
        *WORLD,
        app("plain", "plain.example"),
        app("secure", "secure.example", {N + "enable-modsecurity": "true"}),
        app("push", "push.example", {N + "enable-influxdb": "true"}),
        app("rw", "rw.example", {N + "secure-backends": "true"}),
        app("rw2", "rw2.example", {N + "secure-backends": "true", N + "grpc-backend": "true"}),
        app("other", "other.example", class_name="traefik"),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "default"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}},
    ]}
    status, document = run_json(["--from", "ingress-nginx", "-"], stream(listed))
    assert status == 1
    verdicts = by_name(document)
    assert {name: item["verdict"] for name, item in verdicts.items()} == {
        "plain": "served", "secure": "not-served", "push": "served-with-differences",
        "rw": "not-served", "rw2": "not-served"}
    assert verdicts["secure"]["blocking_annotations"] == ["enable-modsecurity"]
    assert verdicts["secure"]["accept_with"] == ["--ignore-annotation enable-modsecurity"]
    assert "let in clients it keeps out" in verdicts["secure"]["reasons"][0]
    assert "enable-influxdb" in verdicts["push"]["differences"][0]
    summary = document["summary"]
    assert (summary["ingresses"], summary["served"], summary["served_with_differences"], summary["not_served"],
            summary["other_class"]) == (5, 1, 1, 3, 1)
    assert summary["blocking_annotations"] == [
        {"annotation": "secure-backends", "ingresses": 2}, {"annotation": "enable-modsecurity", "ingresses": 1},
        {"annotation": "grpc-backend", "ingresses": 1}]
    assert set(document) == {"version", "ingresses", "lint", "problems", "summary"} and document["version"] == 1
    assert set(verdicts["plain"]) == {"namespace", "name", "hosts", "verdict", "reasons", "blocking_annotations",
                                      "accept_with", "differences", "notes"}


def test_the_table_names_each_verdict_and_the_flag_that_accepts_it():
    status, text = run(["--from", "ingress-nginx", "-"], stream(
        *WORLD, app("secure", "secure.example", {N + "enable-modsecurity": "true"}), app("plain", "p.example")))
    assert status == 1
    assert "default/secure  secure.example  not served" in text
    assert "default/plain   p.example       served as is" in text
    assert "--ignore-annotation enable-modsecurity" in text
    assert "Summary: 2 Ingress(es): 1 served as is, 0 served with differences, 1 not served" in text
    assert f"     1  {N}enable-modsecurity" in text


def test_accepting_a_risk_changes_the_verdict_as_the_server_flag_does():
    objects = stream(*WORLD, app("secure", "secure.example", {N + "enable-modsecurity": "true"}))
    status, document = run_json(["--from", "ingress-nginx", "--ignore-annotation", "enable-modsecurity", "-"], objects)
    assert status == 1 and by_name(document)["secure"]["verdict"] == "served-with-differences"
    assert run(["--ignore-annotation", "no-such-thing", "-"], objects)[0] == 2


def test_class_selection():
    objects = stream(
        *WORLD, {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "public"},
                 "spec": {"controller": "k8s.io/ingress-nginx"}},
        app("a", "a.example"), app("b", "b.example", class_name="public"),
        app("c", "c.example", class_name=None, annotations={"kubernetes.io/ingress.class": "nginx"}),
        app("d", "d.example", class_name="ingressd"))
    assert sorted(by_name(run_json(["--from", "ingress-nginx", "-"], objects)[1])) == ["a", "b", "c"]
    assert sorted(by_name(run_json(["-"], objects)[1])) == ["d"]
    assert sorted(by_name(run_json(["--ingress-class", "public", "-"], objects)[1])) == ["b"]


def test_host_wide_regex_is_no_difference_ingressd_matches_the_host_as_ingress_nginx():
    objects = stream(*WORLD, app("regex", "shared.example", {N + "use-regex": "true"}),
                     ingress("plain", [("shared.example", [("/api", "Prefix", "web", 80)])], class_name="nginx"))
    _, document = run_json(["--from", "ingress-nginx", "-"], objects)
    assert by_name(document)["plain"]["verdict"] == "served"


def test_a_path_ingress_nginx_s_strict_validation_refuses_is_a_difference():
    objects = stream(*WORLD, ingress("odd", [("odd.example", [("/~user/a@b", "Prefix", "web", 80),
                                                              ("/ok/path-1.2_x", "Exact", "web", 80)])],
                                     class_name="nginx"))
    _, document = run_json(["--from", "ingress-nginx", "-"], objects)
    odd = by_name(document)["odd"]
    assert odd["verdict"] == "served-with-differences"
    assert len(odd["differences"]) == 1 and "/~user/a@b (Prefix)" in odd["differences"][0]


def test_lint_findings_are_reported_with_their_ingress():
    objects = stream(NGINX_CLASS, app("lonely", "lonely.example", {N + "auth-type": "basic", N + "auth-secret": "s"}))
    _, document = run_json(["--from", "ingress-nginx", "-"], objects)
    codes = {(f["name"], f["code"]) for f in document["lint"]}
    assert ("lonely", "missing-service") in codes and ("lonely", "auth-without-tls") in codes
    assert document["summary"]["lint"]["missing-service"] == 1


@pytest.mark.parametrize("text, where", [
    ("kind: Ingress\nmetadata: {name: a\n", "broken.yaml:3"),
    ("a: b\n  c: d\n", "broken.yaml:2"),
])
def test_a_broken_file_is_exit_2_naming_file_and_line(tmp_path, capsys, text, where):
    (tmp_path / "good.yaml").write_text(stream(*WORLD))
    (tmp_path / "broken.yaml").write_text(text)
    status, out = run([str(tmp_path)])
    assert status == 2 and out == ""
    assert where in capsys.readouterr().err


def test_unreadable_inputs_are_exit_2(tmp_path, capsys):
    assert run([str(tmp_path / "missing.yaml")])[0] == 2
    assert "no such file" in capsys.readouterr().err
    assert run([])[0] == 2
    assert run(["-"], "{not json")[0] == 2
    assert run(["--kubernetes", "--kubeconfig", str(tmp_path / "nope")])[0] == 2


@pytest.mark.slow
def test_reads_the_cluster_read_only(tmp_path):
    api = fakeapi.FakeAPIServer().start()
    try:
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
        c = api.cluster
        c.apply(fakeapi.ingress_class("nginx", "k8s.io/ingress-nginx"))
        c.apply(fakeapi.service("web"))
        c.apply(fakeapi.ingress("app", host="app.example", ingress_class="nginx"))
        c.apply(fakeapi.ingress("auth", host="auth.example", ingress_class="nginx",
                                annotations={N + "enable-modsecurity": "true"}))
        c.apply(fakeapi.ingress("mine", host="mine.example"))
        status, document = run_json(["--kubernetes", "--kubeconfig", kubeconfig, "--from", "ingress-nginx"])
        assert status == 1
        assert {name: item["verdict"] for name, item in by_name(document).items()} == {
            "app": "served", "auth": "not-served"}
        assert {(request.method, request.watch) for request in api.requests} == {("GET", False)}
        listed = {request.path.rsplit("/", 1)[-1] for request in api.requests}
        assert listed == {"ingresses", "ingressclasses", "services", "endpointslices", "secrets", "configmaps",
                          "gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants", "namespaces",
                          "listenersets", "tlsroutes", "backendtlspolicies"}
    finally:
        api.stop()


@pytest.mark.slow
def test_the_console_script_and_python_m():
    exe = Path(sys.executable).with_name("ingressd")
    for command in ([str(exe)], [sys.executable, "-m", "ingressd"]):
        done = subprocess.run([*command, "check", str(ROOT / "etc" / "examples")], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert "demo/demo" in done.stdout and "served as is" in done.stdout
    done = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "ingressd check" in done.stderr
