"""The validating webhook's ConfigMap reviews end to end, in cluster mode: the real ``twistd
ingressd --kubernetes --nginx-configmap`` against the fake API server, which calls the webhook
for ConfigMap writes through its HTTP API as the real API server does with the ConfigMap rule of
``etc/k8s/admission/webhook.yaml``. A change ingressd would refuse is denied with the reason
(never stored, the running value kept); a change with warnings is stored and the warnings come
back; another ConfigMap is not judged; the admission metrics show the reviews."""

from __future__ import annotations

import pytest

import fakeapi
from harness import Ingressd, free_port, wait_for
from test_e2e_admission import NAME, PATH, Webhook, api_request

pytestmark = pytest.mark.slow
CM = "ingress-nginx/ingress-nginx-controller"
COLLECTION = "/api/v1/namespaces/ingress-nginx/configmaps"


def configmap(name, data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ingress-nginx"},
            "data": dict(data)}


def test_configmap_writes_are_judged_as_the_server_reads_them(tmp_path):
    (tmp_path / "manifests").mkdir()
    api = fakeapi.FakeAPIServer(bookmark_interval=0.5).start()
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    c = api.cluster
    c.apply(fakeapi.ingress_class())
    c.apply(fakeapi.service("web"))
    c.apply(fakeapi.endpoint_slice("web-1", "web", addresses=("127.0.0.1",), port=free_port()))
    c.apply(fakeapi.ingress("app", host="app.example.com", service="web"))
    c.apply(configmap("ingress-nginx-controller", {"hsts": "false"}))
    webhook = Webhook(tmp_path)
    proc = Ingressd(tmp_path / "manifests", ["--kubernetes", "--kubeconfig", kubeconfig, "--nginx-configmap", CM,
                                             "--metrics-compat", "nginx", *webhook.args()])
    api.webhooks.append(fakeapi.Webhook("validate-configmap.ingressd.io", webhook.port, webhook.ca.cert_pem,
                                        NAME, PATH, resources=("configmaps",), failure_policy="Ignore"))
    try:
        wait_for(lambda: proc.get("/", host="app.example.com").status != 404, "the route", 30)
        status, current = api_request(api, "GET", COLLECTION + "/ingress-nginx-controller")
        assert status == 200, current

        current["data"] = {"log-format-upstream": "$remote_addr $nope"}
        status, body = api_request(api, "PUT", COLLECTION + "/ingress-nginx-controller", current)
        assert status == 400, body
        assert body["message"].startswith('admission webhook "validate-configmap.ingressd.io" denied the request: '
                                          f"ingressd would refuse ConfigMap {CM}")
        assert "unknown log variable $nope" in body["message"]
        assert c.get("configmaps", "ingress-nginx", "ingress-nginx-controller")["data"] == {"hsts": "false"}

        del api.admission_warnings[:]
        current["data"] = {"hsts": "false", "no-such-key": "1"}
        status, body = api_request(api, "PUT", COLLECTION + "/ingress-nginx-controller", current)
        assert status == 200, body
        assert any("no-such-key is not an ingress-nginx ConfigMap key" in text for text in api.admission_warnings)

        status, body = api_request(api, "POST", COLLECTION, configmap("unrelated", {"log-format-upstream": "$nope"}))
        assert status == 201, body

        def scrape():
            return proc.admin("/metrics")[2].decode()

        text = wait_for(lambda: (lambda t: t if "ingressd_admission_reviews_total" in t else None)(scrape()),
                        "the metrics", 30)
        assert 'ingressd_admission_reviews_total{allowed="false",kind="ConfigMap"} 1.0' in text
        assert 'ingressd_admission_reviews_total{allowed="true",kind="ConfigMap"} 2.0' in text
        assert "# TYPE nginx_ingress_controller_admission_roundtrip_duration gauge" in text
    finally:
        proc.stop()
        api.stop()
