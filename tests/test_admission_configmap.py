"""The validating webhook's reviews of ConfigMaps: the controller ConfigMap (``--nginx-configmap``)
judged with the reading the server applies (refusals deny with their reasons, warnings allow
with them as ``warnings``), a ConfigMap its ``add-headers`` names judged as part of it, any other
ConfigMap allowed; and the admission metrics, ingress-nginx's names with ``--metrics-compat
nginx`` and ingressd's own otherwise. Reviews are shaped as the API server sends them."""

from __future__ import annotations

import json

import pytest
from twisted.internet.task import Clock

from harness import INGRESS_CLASS, service
from test_admission import app, body_of, connect, post, review_of, status_of

from ingressd.admin.metrics import Metrics
from ingressd.admission.judge import Judge
from ingressd.admission.review import BadReview, parse_review
from ingressd.config.store import KINDS, ObjectStore
from ingressd.config.translate import TranslateSettings
from ingressd.plugin_manager import load_plugins
from ingressd.testing import restore_plugin_configuration

CM = "ingress-nginx/ingress-nginx-controller"
CONFIGMAP_GVK = {"group": "", "version": "v1", "kind": "ConfigMap"}


@pytest.fixture(autouse=True)
def _plugins_as_they_were():
    yield
    restore_plugin_configuration()


def configmap(name="ingress-nginx-controller", namespace="ingress-nginx", data=None):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": dict(data or {})}


def cm_review(obj=None, operation="UPDATE", old=None, uid="6d5c0a3e-1f7e-4e1b-9e0b-2d8d9c0f1a22"):
    """An AdmissionReview of a ConfigMap, as the API server sends it."""
    body = json.loads(review_of(obj, operation, uid=uid, old=old))
    request = body["request"]
    request["kind"] = request["requestKind"] = CONFIGMAP_GVK
    request["resource"] = request["requestResource"] = {"group": "", "version": "v1", "resource": "configmaps"}
    meta = (obj or old or {}).get("metadata") or {}
    request["namespace"] = meta.get("namespace", "default")
    return json.dumps(body).encode()


@pytest.fixture
def judged():
    """A store with the controller ConfigMap (add-headers naming another) and a judge for it."""
    plugins = load_plugins()
    plugins.configure({}, Clock())
    store = ObjectStore()
    world = [INGRESS_CLASS, *service("web", [("http", 80, 8080)]), app("a", "a.example.com"),
             configmap(data={"add-headers": "ingress-nginx/custom-headers"}),
             configmap("custom-headers", data={"X-Served-By": "ingressd"}),
             configmap("unrelated", "default", {"anything": "goes"})]
    for kind in KINDS:
        store.replace("test", kind, [o for o in world if o["kind"] == kind])
    store.set_synced("test")
    judge = Judge(plugins, TranslateSettings(), {"nginx_configmap": CM}, configmap_name=CM)

    def decide(obj, operation="UPDATE", synced=True, old=None):
        return judge.decide(parse_review(cm_review(obj, operation, old)), store.snapshot(), synced)

    decide.judge = judge
    return decide


def test_a_configmap_review_is_read():
    review = parse_review(cm_review(configmap(data={"hsts": "false"})))
    assert (review.kind, review.namespace, review.name) == ("ConfigMap", "ingress-nginx", "ingress-nginx-controller")
    assert review.object["data"] == {"hsts": "false"} and review.object["apiVersion"] == "v1"
    with pytest.raises(BadReview, match="not a ConfigMap"):
        parse_review(cm_review({"metadata": {"name": "x"}, "data": ["not", "a", "map"]}))
    body = json.loads(cm_review(configmap()))
    body["request"]["kind"] = {"group": "", "version": "v1", "kind": "Secret"}
    with pytest.raises(BadReview, match="Ingresses and v1 ConfigMaps, not core/v1 Secret"):
        parse_review(json.dumps(body).encode())


def test_a_usable_change_is_allowed(judged):
    decision = judged(configmap(data={"hsts": "false", "proxy-body-size": "8m",
                                      "add-headers": "ingress-nginx/custom-headers"}))
    assert decision.allowed and not decision.warnings


def test_a_refused_change_is_denied_with_the_reasons(judged):
    decision = judged(configmap(data={"log-format-upstream": "$nope", "proxy-body-size": "lots"}))
    assert not decision.allowed and decision.code == 400
    assert decision.message.startswith(f"ingressd would refuse ConfigMap {CM} (and keep its previous version): ")
    assert "unknown log variable $nope" in decision.message and "key proxy-body-size" in decision.message
    decision = judged(configmap(data={"enable-syslog": "true"}))
    assert not decision.allowed and "enable-syslog needs syslog-host" in decision.message


def test_a_key_narrowing_access_that_ingressd_does_not_honour_is_denied(judged):
    decision = judged(configmap(data={"enable-modsecurity": "true"}))
    assert not decision.allowed and "let in clients it keeps out" in decision.message


def test_warnings_allow_the_change_and_are_passed_on(judged):
    decision = judged(configmap(data={"no-such-key": "1", "ssl-session-ticket-key": "c2VjcmV0"}))
    assert decision.allowed
    assert any("no-such-key is not an ingress-nginx ConfigMap key" in text for text in decision.warnings)
    assert any("ssl-session-ticket-key is not supported" in text for text in decision.warnings)


def test_a_configmap_the_controller_configmap_names_is_judged_as_part_of_it(judged):
    assert judged(configmap("custom-headers", data={"X-Served-By": "ingressd-2"})).allowed
    decision = judged(configmap("custom-headers", data={"Connection": "close"}))  # hop-by-hop: refused
    assert not decision.allowed and "ConfigMap ingress-nginx/ingress-nginx-controller key add-headers" in decision.message


def test_other_configmaps_are_allowed_untouched(judged):
    assert judged(configmap("unrelated", "default", {"enable-modsecurity": "true"})).allowed
    assert judged(configmap("ingress-nginx-controller", "elsewhere", {"log-format-upstream": "$nope"})).allowed


def test_delete_is_allowed_with_a_warning_and_unsynced_reviews_wait(judged):
    decision = judged(None, "DELETE", old=configmap())
    assert decision.allowed and "last usable version" in decision.warnings[0]
    decision = judged(configmap(data={"hsts": "false"}), synced=False)
    assert not decision.allowed and decision.code == 503


def test_without_nginx_configmap_every_configmap_is_allowed():
    plugins = load_plugins()
    plugins.configure({}, Clock())
    store = ObjectStore()
    store.set_synced("test")
    judge = Judge(plugins, TranslateSettings())
    review = parse_review(cm_review(configmap(data={"log-format-upstream": "$nope"})))
    assert judge.decide(review, store.snapshot(), True).allowed


# -- over HTTP, and the metrics ---------------------------------------------------------------


def test_the_answer_over_http_and_the_metrics(judged):
    judge = judged.judge
    store = ObjectStore()
    for kind in KINDS:
        store.replace("test", kind, [o for o in [INGRESS_CLASS, *service("web", [("http", 80, 8080)]),
                                                 app("a", "a.example.com"), configmap()] if o["kind"] == kind])
    store.set_synced("test")
    protocol, transport, _, handler = connect(lambda review: judge.decide(review, store.snapshot(), True))
    handler.figures = lambda: judge.last
    protocol.dataReceived(post(cm_review(configmap(data={"no-such-key": "1", "proxy-body-size": "lots"}), uid="c-1")))
    value = transport.value()
    assert status_of(value) == 200
    response = json.loads(body_of(value))["response"]
    assert response["uid"] == "c-1" and response["allowed"] is False
    assert "proxy-body-size" in response["status"]["message"]
    assert any("no-such-key" in text for text in response["warnings"])
    transport.clear()
    protocol.dataReceived(post(review_of(app("b", "b.example.com"), uid="i-1")))
    assert json.loads(body_of(transport.value()))["response"]["allowed"] is True
    assert handler.counts == {("ConfigMap", False): 1, ("Ingress", True): 1}
    assert judge.last.kind == "Ingress" and judge.last.objects == 2 and judge.last.size > 0

    own = Metrics(Clock())
    own.attach(admission=handler)
    text = own.render()[0].decode()
    assert 'ingressd_admission_reviews_total{allowed="false",kind="ConfigMap"} 1.0' in text
    assert 'ingressd_admission_reviews_total{allowed="true",kind="Ingress"} 1.0' in text
    assert "ingressd_admission_last_tested_ingresses 2.0" in text
    assert "ingressd_admission_last_roundtrip_seconds" in text
    assert "nginx_ingress_controller_admission" not in text

    nginx = Metrics(Clock(), compat="nginx")
    nginx.attach(admission=handler)
    text = nginx.render()[0].decode()
    for name in ("tested_ingresses", "tested_duration", "render_ingresses", "render_duration", "config_size",
                 "roundtrip_duration"):
        assert f"# TYPE nginx_ingress_controller_admission_{name} gauge" in text, name
    line = next(line for line in text.splitlines() if line.startswith("nginx_ingress_controller_admission_tested_ingresses{"))
    assert 'controller_class="ingressd"' in line and "controller_namespace=" in line and "controller_pod=" in line
    assert line.endswith(" 2.0")
