"""The validating webhook without sockets: AdmissionReviews read and answered, verdicts, the HTTP side.

Reviews are shaped as the API server sends them (``admission.k8s.io/v1``, the Kubernetes API
reference's example: uid, kind, resource, operation, namespace, name, object, oldObject,
userInfo, dryRun); malformed ones are answered 400, never a crash.
"""

from __future__ import annotations

import json
import os

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage

import certs
from harness import INGRESS_CLASS, ingress, service

from ingressd.admission import setup
from ingressd.admission.certificate import ReloadingCertificate
from ingressd.admission.endpoint import MAX_BODY, PATH, AdmissionHandler
from ingressd.admission.judge import Judge
from ingressd.admission.review import MAX_WARNINGS, BadReview, Decision, Review, answer, parse_review
from ingressd.config.store import KINDS, ObjectStore
from ingressd.config.translate import TranslateSettings
from ingressd.http.http1 import HTTP1ServerProtocol, ServerSettings
from ingressd.plugin_manager import load_plugins
from ingressd.testing import restore_plugin_configuration

N = "nginx.ingress.kubernetes.io/"
INGRESS_GVK = {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"}


@pytest.fixture(autouse=True)
def _plugins_as_they_were():
    yield
    restore_plugin_configuration()


def review_of(obj=None, operation="CREATE", uid="705ab4f5-6393-11e8-b7cc-42010a800002", old=None, **request):
    """An AdmissionReview as the API server sends it."""
    meta = (obj or old or {}).get("metadata") or {}
    body = {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": INGRESS_GVK,
            "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
            "requestKind": INGRESS_GVK,
            "requestResource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
            "name": meta.get("name", ""), "namespace": meta.get("namespace", "default"),
            "operation": operation,
            "userInfo": {"username": "admin", "uid": "014fbff9a07c", "groups": ["system:authenticated"]},
            "object": obj, "oldObject": old, "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            **request,
        },
    }
    return json.dumps(body).encode()


def app(name, host, path="/", annotations=None, created="2024-05-01T10:00:00Z", class_name="ingressd", kind="Prefix"):
    obj = ingress(name, [(host, [(path, kind, "web", 80)])], annotations=annotations, created=created,
                  class_name=class_name)
    obj["metadata"]["uid"] = f"uid-{name}"
    return obj


# -- reading and answering reviews ---------------------------------------------------------


def test_a_review_is_read():
    review = parse_review(review_of(app("a", "a.example.com")))
    assert review.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert (review.operation, review.namespace, review.name) == ("CREATE", "default", "a")
    assert review.object["spec"]["rules"][0]["host"] == "a.example.com"
    assert not review.dry_run


def test_a_generated_name_and_the_namespace_come_from_the_request():
    obj = app("", "a.example.com")
    del obj["metadata"]["namespace"]
    review = parse_review(review_of(obj, name="web-x7k2", namespace="shop"))
    assert review.object["metadata"]["namespace"] == "shop"
    assert review.object["metadata"]["name"] == "web-x7k2"


def test_delete_carries_no_object():
    review = parse_review(review_of(None, "DELETE", old=app("a", "a.example.com")))
    assert review.operation == "DELETE" and review.object is None


@pytest.mark.parametrize("body, why", [
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}', "expected apiVersion"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "Ingress"}', "expected apiVersion"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "has no request"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": []}', "has no request"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"kind": {}}}', "no uid"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}}', "no uid"),
])
def test_malformed_reviews_are_refused(body, why):
    with pytest.raises(BadReview, match=why):
        parse_review(body)


def test_another_resource_is_not_reviewed():
    body = json.loads(review_of(app("a", "a.example.com")))
    body["request"]["kind"] = {"group": "", "version": "v1", "kind": "Pod"}
    with pytest.raises(BadReview, match="not core/v1 Pod"):
        parse_review(json.dumps(body).encode())
    body["request"]["kind"] = {"group": "extensions", "version": "v1beta1", "kind": "Ingress"}
    with pytest.raises(BadReview, match="networking.k8s.io/v1 Ingresses"):
        parse_review(json.dumps(body).encode())


@pytest.mark.parametrize("change, why", [
    ({"operation": "PATCH"}, "unknown operation"),
    ({"object": None}, "needs request.object"),
    ({"object": {"metadata": "x"}}, "not an Ingress"),
    ({"object": {"metadata": {}, "spec": []}}, "not an Ingress"),
])
def test_reviews_with_bad_fields_are_refused(change, why):
    body = json.loads(review_of(app("a", "a.example.com")))
    body["request"].update(change)
    with pytest.raises(BadReview, match=why):
        parse_review(json.dumps(body).encode())


def test_the_answer_echoes_the_uid_api_version_and_kind():
    assert json.loads(answer("abc", Decision(True))) == {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "abc", "allowed": True}}


def test_a_refusal_says_why_with_a_code():
    document = json.loads(answer("abc", Decision(False, "no such thing", 400, ("w1",))))
    assert document["response"] == {
        "uid": "abc", "allowed": False, "warnings": ["w1"],
        "status": {"status": "Failure", "code": 400, "reason": "BadRequest", "message": "no such thing"}}


def test_warnings_are_single_lines_and_bounded():
    decision = Decision(True, warnings=("a\nb\x1bc",) + tuple(f"w{i}" for i in range(100)) + ("x" * 5000,))
    warnings = json.loads(answer("u", decision))["response"]["warnings"]
    assert warnings[0] == "a b c"
    assert len(warnings) == MAX_WARNINGS


# -- the verdicts ----------------------------------------------------------------------------


@pytest.fixture
def judged():
    """A store with one served Ingress (a.example.com, created first), and a judge."""
    plugins = load_plugins()
    plugins.configure({}, Clock())
    store = ObjectStore()
    world = [INGRESS_CLASS, *service("web", [("http", 80, 8080)]), app("a", "a.example.com"),
             app("shop-canary", "shop.example.com", annotations={N + "canary": "true", N + "canary-weight": "10"}),
             app("shop", "shop.example.com", created="2024-04-01T00:00:00Z")]
    for kind in KINDS:
        store.replace("test", kind, [o for o in world if o["kind"] == kind])
    store.set_synced("test")
    judge = Judge(plugins, TranslateSettings())

    def decide(obj, operation="CREATE", synced=True):
        return judge.decide(parse_review(review_of(obj, operation)), store.snapshot(), synced)

    return decide


def test_a_servable_ingress_is_allowed(judged):
    assert judged(app("b", "b.example.com")) == Decision(True)


def test_an_ingress_of_another_class_is_allowed_untouched(judged):
    obj = app("b", "a.example.com", annotations={N + "server-snippet": "deny all;"}, class_name="nginx")
    assert judged(obj) == Decision(True)


def test_delete_and_an_ingress_being_deleted_are_allowed(judged):
    assert judged(None, "DELETE") == Decision(True)
    obj = app("b", "a.example.com", annotations={N + "server-snippet": "deny all;"})
    obj["metadata"]["deletionTimestamp"] = "2024-06-01T00:00:00Z"
    assert judged(obj, "UPDATE") == Decision(True)


def test_an_ingress_not_served_is_refused_with_the_reason(judged):
    decision = judged(app("b", "b.example.com", annotations={N + "modsecurity-snippet": "SecRuleEngine Off"}))
    assert not decision.allowed and decision.code == 400
    assert decision.message.startswith("ingressd would not serve Ingress default/b: ")
    assert "modsecurity-snippet" in decision.message


def test_an_invalid_ingress_is_refused(judged):
    obj = app("b", "b.example.com")
    obj["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/a/../b"
    decision = judged(obj)
    assert not decision.allowed and "must not contain '/../'" in decision.message


def test_differences_are_warnings(judged):
    decision = judged(app("b", "b.example.com", annotations={N + "enable-influxdb": "true"}))
    assert decision.allowed
    assert any("enable-influxdb" in warning for warning in decision.warnings)


def test_a_missing_service_is_a_warning_not_a_refusal(judged):
    obj = app("b", "b.example.com")
    obj["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "later"
    decision = judged(obj)
    assert decision.allowed and any("Service default/later not found" in w for w in decision.warnings)


def test_a_path_another_ingress_serves_is_refused(judged):
    decision = judged(app("b", "a.example.com"))
    assert not decision.allowed and decision.code == 400
    assert "also claimed by Ingress default/a" in decision.message


def test_taking_a_path_from_a_newer_ingress_is_refused_too(judged):
    decision = judged(app("old", "a.example.com", created="2020-01-01T00:00:00Z"))
    assert not decision.allowed
    assert "Ingress default/a is also claimed by Ingress default/old" in decision.message


def test_other_paths_of_the_same_host_and_updates_of_itself_are_allowed(judged):
    assert judged(app("b", "a.example.com", path="/api")).allowed
    assert judged(app("a", "a.example.com", annotations={N + "proxy-body-size": "8m"}), "UPDATE").allowed


def test_a_canary_may_share_its_main_ingress_path(judged):
    obj = app("shop-canary", "shop.example.com", annotations={N + "canary": "true", N + "canary-weight": "50"})
    assert judged(obj, "UPDATE").allowed
    decision = judged(app("shop-2", "shop.example.com"))  # a second main Ingress is a conflict
    assert not decision.allowed and "also claimed by Ingress default/shop" in decision.message
    second = app("shop-canary-2", "shop.example.com", annotations={N + "canary": "true", N + "canary-weight": "5"})
    decision = judged(second)  # ingress-nginx refuses two canaries of one path too
    assert not decision.allowed and "already have a canary: Ingress default/shop-canary" in decision.message


def test_before_the_first_full_read_reviews_are_refused_as_unavailable(judged):
    decision = judged(app("b", "b.example.com"), synced=False)
    assert not decision.allowed and decision.code == 503


# -- the HTTP side ---------------------------------------------------------------------------


def connect(decide=lambda review: Decision(True), max_body=MAX_BODY, timeout=10.0):
    clock = Clock()
    handler = AdmissionHandler(decide, max_body=max_body)
    settings = ServerSettings(header_timeout=timeout, body_timeout=timeout, keepalive_timeout=60.0)
    protocol = HTTP1ServerProtocol(settings, handler, clock)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555),
                                hostAddress=IPv4Address("TCP", "127.0.0.1", 8443))
    protocol.makeConnection(transport)
    return protocol, transport, clock, handler


def post(body: bytes, path: bytes = PATH, method: bytes = b"POST", content_type: bytes = b"application/json") -> bytes:
    return (b"%s %s HTTP/1.1\r\nHost: ingressd-admission.ingress.svc:443\r\ncontent-type: %s\r\n"
            b"content-length: %d\r\n\r\n%s" % (method, path, content_type, len(body), body))


def status_of(value: bytes) -> int:
    return int(value.split(b" ", 2)[1])


def body_of(value: bytes) -> bytes:
    return value.split(b"\r\n\r\n", 1)[1]


def test_a_review_is_answered_200_with_the_review_and_the_connection_kept():
    seen = []
    protocol, transport, _, handler = connect(lambda review: seen.append(review) or Decision(False, "no", 400))
    protocol.dataReceived(post(review_of(app("a", "a.example.com"), uid="u-1")))
    value = transport.value()
    assert status_of(value) == 200 and b"content-type: application/json" in value
    assert json.loads(body_of(value))["response"] == {
        "uid": "u-1", "allowed": False, "status": {"status": "Failure", "code": 400, "reason": "BadRequest",
                                                   "message": "no"}}
    assert seen[0].name == "a" and (handler.reviews, handler.denied) == (1, 1)
    assert not transport.disconnecting
    transport.clear()
    protocol.dataReceived(post(review_of(app("b", "b.example.com"), uid="u-2")))
    assert json.loads(body_of(transport.value()))["response"]["uid"] == "u-2"


@pytest.mark.parametrize("request_bytes, status", [
    (post(b"{}", path=b"/"), 404),
    (post(b"{}", path=b"/networking/v1/ingresses/x"), 404),
    (b"GET /networking/v1/ingresses HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (post(b"{}", method=b"PUT"), 405),
    (post(b"{}", content_type=b"application/yaml"), 415),
    (post(b"not json"), 400),
    (post(b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "x"}}'), 400),
    (b"POST /networking/v1/ingresses HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nabcde", 400),
])
def test_anything_but_a_review_on_the_path_is_refused(request_bytes, status):
    protocol, transport, _, handler = connect(lambda review: pytest.fail("judged"))
    protocol.dataReceived(request_bytes)
    assert status_of(transport.value()) == status
    assert handler.reviews == 0


def test_a_method_not_allowed_names_post():
    protocol, transport, _, _ = connect()
    protocol.dataReceived(b"GET /networking/v1/ingresses HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"allow: POST\r\n" in transport.value()


def test_a_body_over_the_limit_is_refused_before_it_is_read():
    protocol, transport, _, _ = connect(lambda review: pytest.fail("judged"), max_body=1000)
    protocol.dataReceived(b"POST /networking/v1/ingresses HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                          b"content-length: 1001\r\n\r\n" + b"{" * 100)
    assert status_of(transport.value()) == 413
    assert transport.disconnecting


def test_a_chunked_body_over_the_limit_is_refused_as_it_comes():
    protocol, transport, _, _ = connect(lambda review: pytest.fail("judged"), max_body=1000)
    protocol.dataReceived(b"POST /networking/v1/ingresses HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                          b"transfer-encoding: chunked\r\n\r\n")
    for _ in range(3):
        protocol.dataReceived(b"200\r\n" + b" " * 0x200 + b"\r\n")
    assert status_of(transport.value()) == 413
    assert transport.disconnecting


def test_the_body_has_one_deadline_in_all_not_per_read():
    protocol, transport, clock, _ = connect(lambda review: pytest.fail("judged"), timeout=10.0)
    protocol.dataReceived(b"POST /networking/v1/ingresses HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                          b"content-length: 100\r\n\r\n{")
    for _ in range(9):  # a byte a second keeps nothing alive
        clock.advance(1.2)
        if transport.disconnecting:
            break
        protocol.dataReceived(b" ")
    assert status_of(transport.value()) == 408 and transport.disconnecting


def test_a_slow_head_times_out():
    protocol, transport, clock, _ = connect(timeout=10.0)
    protocol.dataReceived(b"POST /networking/v1/ingresses HTTP/1.1\r\nHost: x\r\n")
    clock.advance(10.5)
    assert status_of(transport.value()) == 408


def test_a_judge_that_fails_is_a_500_not_a_crash():
    def broken(review):
        raise RuntimeError("bug")

    protocol, transport, _, _ = connect(broken)
    protocol.dataReceived(post(review_of(app("a", "a.example.com"))))
    assert status_of(transport.value()) == 500


# -- the certificate, read again when its files change ------------------------------------


def write_pair(tmp_path, issued: certs.Issued, crt="tls.crt", key="tls.key"):
    (tmp_path / crt).write_bytes(issued.cert_pem)
    (tmp_path / key).write_bytes(issued.key_pem())
    return str(tmp_path / crt), str(tmp_path / key)


def test_the_certificate_is_read_again_when_the_files_change(tmp_path):
    paths = write_pair(tmp_path, certs.make_leaf("ingressd-admission.ingress.svc"))
    certificate = ReloadingCertificate(*paths)
    first = certificate.current()
    assert certificate.current() is first  # unchanged files: the same context
    write_pair(tmp_path, certs.make_leaf("ingressd-admission.ingress.svc"))
    os.utime(paths[0], ns=(1, 1))  # a different identity even within one clock tick
    second = certificate.current()
    assert second is not first and certificate.reloads == 1


def test_a_pair_that_cannot_be_served_keeps_the_previous_one(tmp_path):
    paths = write_pair(tmp_path, certs.make_leaf("a"))
    certificate = ReloadingCertificate(*paths)
    first = certificate.current()
    (tmp_path / "tls.key").write_bytes(certs.make_leaf("b").key_pem())  # half of a rotation
    assert certificate.current() is first and certificate.reloads == 0
    write_pair(tmp_path, certs.make_leaf("c"))
    os.utime(paths[1], ns=(2, 2))
    assert certificate.current() is not first


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    (":8443", "tcp:8443"),
    ("8443", "tcp:8443"),
    ("127.0.0.1:8443", "tcp:8443:interface=127.0.0.1"),
    ("[::1]:8443", "tcp6:8443:interface=\\:\\:1"),
    ("tcp:8443:interface=127.0.0.1", "tcp:8443:interface=127.0.0.1"),
])
def test_the_address_takes_ingress_nginx_form(value, expected):
    assert setup.endpoint(value) == expected


def parse(*args):
    from ingressd.tap import Options

    options = Options()
    options.parseOptions(["--manifests", os.devnull, *args])
    return options


def test_the_options_need_a_pair_that_can_be_served(tmp_path):
    crt, key = write_pair(tmp_path, certs.make_leaf("a"))
    assert parse()["validating-webhook"] is None
    options = parse("--validating-webhook", ":8443", "--validating-webhook-certificate", crt,
                    "--validating-webhook-key", key)
    assert options["validating-webhook"] == "tcp:8443"
    with pytest.raises(usage.UsageError, match="needs --validating-webhook-certificate"):
        parse("--validating-webhook", ":8443")
    other = certs.make_leaf("b")
    (tmp_path / "other.key").write_bytes(other.key_pem())
    with pytest.raises(usage.UsageError, match="does not match"):
        parse("--validating-webhook", ":8443", "--validating-webhook-certificate", crt,
              "--validating-webhook-key", str(tmp_path / "other.key"))
    with pytest.raises(usage.UsageError, match="no such file"):
        parse("--validating-webhook", ":8443", "--validating-webhook-certificate", str(tmp_path / "none"),
              "--validating-webhook-key", key)


# -- the manifests (etc/k8s/admission) -----------------------------------------------------


def test_the_webhook_manifests_fit_together():
    import pathlib

    import yaml
    from kubernetes import client

    root = pathlib.Path(__file__).resolve().parent.parent / "etc" / "k8s"
    load = lambda path: [d for d in yaml.safe_load_all((root / path).read_text()) if d]  # noqa: E731
    service_obj, configuration = load("admission/webhook.yaml")
    client.V1Service.from_dict(service_obj)
    client.V1ValidatingWebhookConfiguration.from_dict(configuration)
    hook, configmaps = configuration["webhooks"]
    # the controller ConfigMap's hook: one namespace, one name, the same path; Ignore (the server refuses too)
    assert configmaps["rules"] == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                                    "resources": ["configmaps"]}]
    assert configmaps["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    assert "'ingress-nginx-controller'" in configmaps["matchConditions"][0]["expression"]
    assert configmaps["failurePolicy"] == "Ignore" and configmaps["clientConfig"] == hook["clientConfig"]
    assert hook["clientConfig"]["service"]["path"] == PATH.decode()
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["rules"] == [{"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"],
                              "operations": ["CREATE", "UPDATE"], "resources": ["ingresses"]}]
    assert hook["clientConfig"]["service"]["name"] == service_obj["metadata"]["name"]
    assert hook["clientConfig"]["service"]["port"] == service_obj["spec"]["ports"][0]["port"]

    # the Deployment as kustomize patches it (JSON patch "add … /-": append)
    (deployment,) = [d for d in load("deployment.yaml")]
    for op in load("admission/deployment-patch.yaml")[0]:
        assert op["op"] == "add" and op["path"].endswith("/-")
        target = deployment
        for part in op["path"].strip("/").split("/")[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        target.append(op["value"])
    client.V1Deployment.from_dict(deployment)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    options = dict(a[2:].split("=", 1) for a in container["args"] if a.startswith("--") and "=" in a)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service_obj["spec"]["ports"][0]["targetPort"] == "webhook"
    assert setup.endpoint(options["validating-webhook"]) == f"tcp:{ports['webhook']}"
    assert len(set(ports.values())) == len(ports)  # no port twice
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "webhook-cert"]
    for option in ("validating-webhook-certificate", "validating-webhook-key"):
        assert os.path.dirname(options[option]) == mount["mountPath"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "webhook-cert"]

    # cert-manager: the serving certificate is that Secret, for the Service's names
    documents = load("admission/cert-manager/certificate.yaml")
    (serving,) = [d for d in documents if d["kind"] == "Certificate" and not d["spec"].get("isCA")]
    assert serving["spec"]["secretName"] == volume["secret"]["secretName"]
    name, namespace = service_obj["metadata"]["name"], service_obj["metadata"]["namespace"]
    assert f"{name}.{namespace}.svc" in serving["spec"]["dnsNames"]
    kustomization = yaml.safe_load((root / "admission/cert-manager/kustomization.yaml").read_text())
    assert f"{namespace}/{serving['metadata']['name']}" in kustomization["patches"][0]["patch"]


def test_the_options_from_a_config_file_and_with_workers(tmp_path):
    crt, key = write_pair(tmp_path, certs.make_leaf("a"))
    config = tmp_path / "ingressd.yaml"
    config.write_text("validating-webhook: ':8444'\nvalidating-webhook-certificate: tls.crt\n"
                      "validating-webhook-key: tls.key\n")
    options = parse("--config", str(config))  # paths relative to the file's folder
    assert options["validating-webhook"] == "tcp:8444"
    assert options["validating-webhook-certificate"] == crt
    pair = ("--validating-webhook-certificate", crt, "--validating-webhook-key", key)
    assert parse("--workers", "2", "--validating-webhook", ":8444", *pair)["validating-webhook"] == "tcp:8444"
    with pytest.raises(usage.UsageError, match="plain tcp: endpoint for --validating-webhook"):
        parse("--workers", "2", "--validating-webhook", "unix:/tmp/webhook.sock", *pair)
