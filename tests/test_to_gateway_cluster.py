"""``ingressd check --kubernetes --to gateway-api``: the cluster read (LIST only) through the fake
API server, converted as files are: named ports through the Services, custom-headers through the
ConfigMaps, canaries merged into their main Ingress's route."""

from __future__ import annotations

import io

import pytest
import yaml

import fakeapi

from ingressd.compat.check import main
from ingressd.testing import restore_plugin_configuration

N = "nginx.ingress.kubernetes.io/"


@pytest.fixture(autouse=True)
def _plugins_as_they_were():
    yield
    restore_plugin_configuration()


@pytest.mark.slow
def test_the_cluster_converted_read_only(tmp_path, capsys):
    api = fakeapi.FakeAPIServer().start()
    try:
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
        c = api.cluster
        c.apply(fakeapi.ingress_class("nginx", "k8s.io/ingress-nginx"))
        c.apply(fakeapi.service("web"))
        main_ingress = fakeapi.ingress("app", host="app.example", ingress_class="nginx",
                                       annotations={N + "custom-headers": "default/headers"})
        main_ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = {"name": "http"}
        c.apply(main_ingress)
        c.apply({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "headers", "namespace": "default"},
                 "data": {"X-Served-By": "ingressd"}})
        c.apply(fakeapi.ingress("app-canary", host="app.example", ingress_class="nginx", service="web-next",
                                annotations={N + "canary": "true", N + "canary-weight": "25"}))
        c.apply(fakeapi.ingress("mine", host="mine.example"))  # class ingressd: not selected
        out = io.StringIO()
        status = main(["--kubernetes", "--kubeconfig", kubeconfig, "--from", "ingress-nginx", "--to", "gateway-api"],
                      stdout=out)
        assert (status, capsys.readouterr().err) == (0, "")
        documents = list(yaml.safe_load_all(out.getvalue()))
        assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
            ("GatewayClass", "ingressd"), ("Gateway", "nginx"), ("HTTPRoute", "app")]
        (rule,) = documents[2]["spec"]["rules"]
        assert rule["backendRefs"] == [{"name": "web", "port": 80, "weight": 75},
                                       {"name": "web-next", "port": 80, "weight": 25}]
        assert rule["filters"] == [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {
            "set": [{"name": "X-Served-By", "value": "ingressd"}]}}]
        assert {(request.method, request.watch) for request in api.requests} == {("GET", False)}
    finally:
        api.stop()
