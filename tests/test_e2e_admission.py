"""The validating webhook end to end: the real ``twistd ingressd``, a real HTTPS client (Python ``ssl``).

AdmissionReviews are POSTed as the API server posts them (TLS verified against the CA that
signed the webhook's certificate, for the Service's DNS name); the verdicts are those of the
served objects, in file mode and in cluster mode (the fake API server: a conflict with an
Ingress that exists there, and gone once it is deleted); the certificate is rotated on disk
and served to the next connection without a restart.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import ssl
from pathlib import Path

import pytest

import certs
import fakeapi
from harness import INGRESS_CLASS, Ingressd, free_port, ingress, service, write_manifests, wait_for

pytestmark = pytest.mark.slow

NAME = "ingressd-admission.ingressd.svc"  # the Service's DNS name the API server checks
PATH = "/networking/v1/ingresses"
N = "nginx.ingress.kubernetes.io/"




class Webhook:
    """Certificates on disk (a CA and the webhook's leaf) and a client that trusts the CA."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.ca = certs.make_ca("ingressd webhook CA")
        self.port = free_port()
        self.certificate = folder / "tls.crt"
        self.key = folder / "tls.key"
        self.leaf = self.rotate()

    def rotate(self) -> certs.Issued:
        """A new leaf for the Service's name, written as the kubelet updates a Secret volume."""
        leaf = certs.make_leaf(NAME, issuer=self.ca)
        for path, data in ((self.key, leaf.key_pem()), (self.certificate, leaf.cert_pem)):
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        self.leaf = leaf
        return leaf

    def args(self) -> list[str]:
        return ["--validating-webhook", f"127.0.0.1:{self.port}",
                "--validating-webhook-certificate", str(self.certificate), "--validating-webhook-key", str(self.key)]

    def connection(self) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        port = self.port

        class _Connection(http.client.HTTPSConnection):
            def connect(self):  # 127.0.0.1, verified for the Service's name
                sock = socket.create_connection(("127.0.0.1", port), self.timeout)
                self.sock = context.wrap_socket(sock, server_hostname=NAME)

        return _Connection(NAME, port, timeout=10)

    def post(self, body: bytes, path: str = PATH, method: str = "POST", headers=None):
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            data = response.read()
            return response.status, data, hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest()
        finally:
            conn.close()

    def review(self, obj, operation="CREATE", uid="9f3c1b1e-0000-4000-8000-000000000001") -> dict:
        status, data, _ = self.post(review_of(obj, operation, uid))
        assert status == 200, data
        document = json.loads(data)
        assert (document["apiVersion"], document["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
        assert document["response"]["uid"] == uid
        return document["response"]


def review_of(obj, operation="CREATE", uid="u") -> bytes:
    gvk = {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"}
    meta = obj["metadata"]
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": gvk, "requestKind": gvk,
        "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
        "name": meta["name"], "namespace": meta.get("namespace", "default"), "operation": operation,
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": obj, "oldObject": obj if operation == "UPDATE" else None, "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl-client-side-apply"},
    }}).encode()


def app(name, host, annotations=None, created="2024-05-01T10:00:00Z"):
    return ingress(name, [(host, [("/", "Prefix", "web", 80)])], annotations=annotations, created=created)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("admission")
    (root / "manifests").mkdir()
    write_manifests(root / "manifests" / "objects.yaml",
                    [INGRESS_CLASS, *service("web", [("http", 80, 8080)]), app("a", "a.example.com")])
    webhook = Webhook(root)
    proc = Ingressd(root / "manifests", webhook.args())
    yield proc, webhook
    proc.stop()


def test_a_servable_ingress_is_allowed(files):
    _, webhook = files
    assert webhook.review(app("b", "b.example.com"), uid="uid-allowed") == {"uid": "uid-allowed", "allowed": True}


def test_an_ingress_that_would_not_be_served_is_refused_with_the_reason(files):
    _, webhook = files
    response = webhook.review(app("b", "b.example.com", annotations={N + "modsecurity-snippet": "SecRuleEngine Off"}))
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert "modsecurity-snippet" in response["status"]["message"]


def test_a_path_another_ingress_serves_is_refused(files):
    _, webhook = files
    response = webhook.review(app("b", "a.example.com"))
    assert response["allowed"] is False and "also claimed by Ingress default/a" in response["status"]["message"]
    assert webhook.review(app("a", "a.example.com"), "UPDATE")["allowed"] is True  # itself, updated


def test_differences_come_back_as_warnings(files):
    _, webhook = files
    response = webhook.review(app("b", "b.example.com", annotations={N + "enable-influxdb": "true"}))
    assert response["allowed"] is True
    assert any("enable-influxdb" in warning for warning in response["warnings"])


def test_malformed_requests_are_answered_400_and_the_server_goes_on(files):
    proc, webhook = files
    assert webhook.post(b"{not json")[0] == 400
    assert webhook.post(b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}')[0] == 400
    pod = json.loads(review_of(app("b", "b.example.com")))
    pod["request"]["kind"] = {"group": "", "version": "v1", "kind": "Pod"}
    assert webhook.post(json.dumps(pod).encode())[0] == 400
    assert webhook.post(b"", method="GET")[0] == 405
    assert webhook.post(b"{}", path="/validate")[0] == 404
    assert proc.admin("/healthz")[0] == 200
    assert webhook.review(app("b", "b.example.com"))["allowed"] is True


def test_a_huge_body_is_refused_unread(files):
    _, webhook = files
    with socket.create_connection(("127.0.0.1", webhook.port), timeout=10) as raw:
        context = ssl.create_default_context(cadata=webhook.ca.cert_pem.decode())
        with context.wrap_socket(raw, server_hostname=NAME) as sock:
            sock.sendall(b"POST /networking/v1/ingresses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 104857600\r\n\r\n{")
            answer = b""
            while b"\r\n\r\n" not in answer:
                piece = sock.recv(4096)
                if not piece:
                    break
                answer += piece
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_the_certificate_is_rotated_without_a_restart(files):
    proc, webhook = files
    before = webhook.leaf.fingerprint
    assert webhook.post(b"{}")[2] == before
    pid = proc.process.pid
    after = webhook.rotate().fingerprint
    assert after != before
    assert wait_for(lambda: webhook.post(b"{}")[2] == after)
    assert proc.process.pid == pid and proc.process.poll() is None
    assert "validating webhook: certificate" in proc.log()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("admission-kube")
    (root / "manifests").mkdir()
    api = fakeapi.FakeAPIServer(bookmark_interval=0.5).start()
    kubeconfig = api.write_kubeconfig(str(root / "kubeconfig"))
    c = api.cluster
    c.apply(fakeapi.ingress_class())
    c.apply(fakeapi.service("web"))
    c.apply(fakeapi.endpoint_slice("web-1", "web", addresses=("127.0.0.1",), port=free_port()))
    c.apply(fakeapi.ingress("app", host="app.example.com", service="web"))
    webhook = Webhook(root)
    proc = Ingressd(root / "manifests", ["--kubernetes", "--kubeconfig", kubeconfig, *webhook.args()])
    # The fake API server calls the webhook for Ingress writes through the API, as the real one does
    # with etc/k8s/admission/webhook.yaml (the Python API's apply is not admitted).
    api.webhooks.append(fakeapi.Webhook("validate.ingressd.io", webhook.port, webhook.ca.cert_pem, NAME, PATH))
    yield proc, api, webhook
    proc.stop()
    api.stop()


def test_a_conflict_with_an_ingress_in_the_cluster_is_refused_until_it_is_deleted(cluster):
    proc, api, webhook = cluster
    candidate = fakeapi.ingress("newcomer", host="app.example.com", service="web")
    response = webhook.review(candidate)
    assert response["allowed"] is False and "default/app" in response["status"]["message"]
    api.cluster.remove("Ingress", "default", "app")
    wait_for(lambda: proc.get("/", host="app.example.com").status == 404)
    assert webhook.review(candidate)["allowed"] is True


def test_an_ingress_created_in_the_cluster_is_seen_at_once(cluster):
    proc, api, webhook = cluster
    api.cluster.apply(fakeapi.ingress("shop", host="shop.example.com", service="web"))
    wait_for(lambda: proc.get("/", host="shop.example.com").status != 404)
    response = webhook.review(fakeapi.ingress("shop-2", host="shop.example.com", service="web"))
    assert response["allowed"] is False and "default/shop" in response["status"]["message"]
    other_class = fakeapi.ingress("shop-3", host="shop.example.com", service="web", ingress_class="nginx")
    assert webhook.review(other_class)["allowed"] is True


def api_request(api, method: str, path: str, body: dict | None = None):
    """A write through the fake API server's HTTP API, as kubectl sends it."""
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=20)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def test_kubectl_apply_is_refused_by_the_api_server_with_the_reason(cluster):
    proc, api, webhook = cluster
    collection = "/apis/networking.k8s.io/v1/namespaces/default/ingresses"
    api.cluster.apply(fakeapi.ingress("owner", host="owned.example.com", service="web"))
    wait_for(lambda: proc.get("/", host="owned.example.com").status != 404)
    status, body = api_request(api, "POST", collection, fakeapi.ingress("intruder", host="owned.example.com"))
    assert status == 400, body
    assert body["message"].startswith('admission webhook "validate.ingressd.io" denied the request: ')
    assert "default/owner" in body["message"]
    with pytest.raises(fakeapi.APIError):
        api.cluster.get("ingresses", "default", "intruder")  # never stored

    snippet = fakeapi.ingress("snippet", host="snippet.example.com")
    snippet["metadata"]["annotations"] = {N + "modsecurity-snippet": "SecRuleEngine Off"}
    status, body = api_request(api, "POST", collection, snippet)
    assert status == 400 and "modsecurity-snippet" in body["message"]

    status, body = api_request(api, "POST", collection, fakeapi.ingress("fine", host="fine.example.com"))
    assert status == 201, body
    wait_for(lambda: proc.get("/", host="fine.example.com").status != 404)
    # an UPDATE that would take a path from another Ingress is refused too
    status, current = api_request(api, "GET", collection + "/fine")
    current["spec"]["rules"][0]["host"] = "owned.example.com"
    status, body = api_request(api, "PUT", collection + "/fine", current)
    assert status == 400 and "denied the request" in body["message"]


def test_with_failure_policy_fail_nothing_is_admitted_while_the_webhook_is_down(cluster):
    proc, api, webhook = cluster
    down = fakeapi.Webhook("validate.ingressd.io", free_port(), webhook.ca.cert_pem, NAME, PATH, timeout=2)
    api.webhooks.insert(0, down)
    try:
        status, body = api_request(api, "POST", "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
                                   fakeapi.ingress("while-down", host="down.example.com"))
        assert status == 500 and 'failed calling webhook "validate.ingressd.io"' in body["message"]
    finally:
        api.webhooks.remove(down)
