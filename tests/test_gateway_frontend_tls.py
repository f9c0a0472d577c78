"""A Gateway's ``spec.tls.frontend`` (config.gateway.frontend_tls): client certificate validation
judged per HTTPS listener (``default``, ``perPort``), put on the listener's routes as a
``ClientCertificateValidation`` filter, given to the TLS handshakes of the routes' hosts by the
route table, and applied per request by auth_tls's ``ListenerValidation``; the listener status
the conformance tests (gateway-with-*clientcertificate-validation*.yaml,
gateway-invalid-default-frontend-client-certificate-validation.yaml) expect."""

from __future__ import annotations

import json

import pytest
import yaml

import certs
from ingressd.config.entries import build_table
from ingressd.config.filters import ClientCertificateValidation
from ingressd.config.gateway_api import translate
from ingressd.config.model import ObjectRef
from ingressd.config.store import object_key, pack
from ingressd.features import BuildContext
from ingressd.plugin_manager import load_plugins
from ingressd.testing import FakeExchange
from ingressd.tls.client_auth import ClientCertificate, load_client_auth
from ingressd_plugins.auth_tls import ListenerValidation
from ingressd_plugins.gateway_filters import features_for

NS = "gateway-conformance-infra"
CA = certs.make_ca("frontend CA").cert_pem.decode()
PER_PORT_CA = certs.make_ca("per-port CA").cert_pem.decode()


def _config_map(name: str, ca: str, namespace: str = NS) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"ca.crt": ca}}


BASE = [
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "ingressd"},
     "spec": {"controllerName": "ingressd.io/gateway-controller"}},
    {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
     "metadata": {"name": "tls-validity-checks-certificate", "namespace": NS},
     "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}},
    _config_map("tls-validity-checks-ca-certificate", CA),
    _config_map("tls-validity-checks-per-port-ca-certificate", PER_PORT_CA),
    _config_map("web-backend-cm", CA, "gateway-conformance-web-backend"),
    _config_map("unreadable", "not a certificate"),
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "infra-backend-v1", "namespace": NS},
     "spec": {"ports": [{"port": 8080}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "infra-backend-v2", "namespace": NS},
     "spec": {"ports": [{"port": 8080}]}},
]


def _ref(name: str, kind: str = "ConfigMap", namespace: str | None = None) -> dict:
    ref = {"group": "", "kind": kind, "name": name}
    if namespace:
        ref["namespace"] = namespace
    return ref


def https(name: str, port: int, hostname: str | None = None) -> dict:
    listener = {"name": name, "port": port, "protocol": "HTTPS", "allowedRoutes": {"namespaces": {"from": "Same"}},
                "tls": {"certificateRefs": [{"group": "", "kind": "Secret", "name": "tls-validity-checks-certificate"}]}}
    if hostname:
        listener["hostname"] = hostname
    return listener


def gateway(name: str, listeners: list, default=None, per_port=(), mode=None) -> dict:
    frontend: dict = {}
    if default is not None:
        frontend["default"] = {"validation": {"caCertificateRefs": default, **({"mode": mode} if mode else {})}}
    if per_port:
        frontend["perPort"] = [{"port": port, "tls": {"validation": {"caCertificateRefs": refs,
                                                                      **({"mode": mode} if mode else {})}}}
                               for port, refs in per_port]
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"gatewayClassName": "ingressd", "tls": {"frontend": frontend}, "listeners": listeners}}


def route(name: str, gateway_name: str, hostnames=(), section=None, backend="infra-backend-v1") -> dict:
    parent = {"name": gateway_name, **({"sectionName": section} if section else {})}
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"parentRefs": [parent], "hostnames": list(hostnames),
                     "rules": [{"backendRefs": [{"name": backend, "port": 8080}]}]}}


def snapshot(*objects) -> dict:
    found: dict = {}
    for obj in [*BASE, *objects]:
        found.setdefault(obj["kind"], {})[object_key(obj)] = pack(obj)
    return found


def gateway_status(config, name: str) -> dict:
    return json.loads(dict(config.status)[ObjectRef("Gateway", NS, name)].body)


def listener_conditions(config, gateway_name: str, listener: str) -> dict:
    [found] = [item for item in gateway_status(config, gateway_name)["listeners"] if item["name"] == listener]
    return {c["type"]: (c["status"], c["reason"]) for c in found["conditions"]}


def validation_of(config, host: str) -> ClientCertificateValidation | None:
    found = {item for r in config.routes if r.host == host for item in r.filters
             if isinstance(item, ClientCertificateValidation)}
    assert len(found) <= 1
    return next(iter(found), None)


VALID = gateway("client-validation-default", [https("https", 443), https("https-with-hostname", 8443,
                                                                           "second-example.org")],
                default=[_ref("tls-validity-checks-ca-certificate")],
                per_port=[(8443, [_ref("tls-validity-checks-per-port-ca-certificate")])])
VALID_ROUTES = (route("client-certificate-validation-https-test", "client-validation-default", ["example.org"]),
                route("client-certificate-validation-https-test-no-hostname", "client-validation-default",
                      section="https-with-hostname", backend="infra-backend-v2"))


def test_default_and_per_port_validation_ride_on_the_listeners_routes():
    config = translate(snapshot(VALID, *VALID_ROUTES))
    first, second = validation_of(config, "example.org"), validation_of(config, "second-example.org")
    assert first.client_auth.ca.strip() == CA.encode().strip()
    assert second.client_auth.ca.strip() == PER_PORT_CA.encode().strip()
    # AllowValidOnly (the default mode): the handshake itself refuses
    assert first.client_auth.refuse and second.client_auth.refuse
    assert not first.insecure_fallback
    for listener in ("https", "https-with-hostname"):
        assert listener_conditions(config, "client-validation-default", listener) == {
            "Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs"),
            "Conflicted": ("False", "NoConflicts"), "Programmed": ("True", "Programmed")}
    types = [c["type"] for c in gateway_status(config, "client-validation-default")["conditions"]]
    assert "InsecureFrontendValidationMode" not in types


def test_the_route_table_gives_each_host_its_policy_for_the_handshakes():
    config = translate(snapshot(VALID, *VALID_ROUTES))
    _table, served = build_table(config, load_plugins(), BuildContext(settings={}, reactor=None))
    policies = dict(served.client_auth)
    assert policies["example.org"] == validation_of(config, "example.org").client_auth
    assert policies["second-example.org"] == validation_of(config, "second-example.org").client_auth


def test_http_listeners_and_listeners_without_frontend_carry_nothing():
    plain = gateway("plain", [{"name": "http", "port": 80, "protocol": "HTTP"}, https("https", 443)])
    config = translate(snapshot(plain, route("r", "plain", ["example.org"])))
    assert validation_of(config, "example.org") is None
    # per port only for another port: the 443 listener asks for nothing
    other = gateway("other", [https("https", 443)], per_port=[(8443, [_ref("tls-validity-checks-ca-certificate")])])
    config = translate(snapshot(other, route("r", "other", ["example.org"])))
    assert validation_of(config, "example.org") is None


def test_insecure_fallback_is_said_on_the_gateway():
    fallback = gateway("client-validation-insecure-fallback", [https("https", 443)],
                       default=[_ref("tls-validity-checks-ca-certificate")], mode="AllowInsecureFallback")
    config = translate(snapshot(fallback, route("r", "client-validation-insecure-fallback", ["example.org"])))
    validation = validation_of(config, "example.org")
    assert validation.insecure_fallback and not validation.client_auth.refuse
    conditions = {c["type"]: (c["status"], c["reason"])
                  for c in gateway_status(config, "client-validation-insecure-fallback")["conditions"]}
    assert conditions["InsecureFrontendValidationMode"] == ("True", "ConfigurationChanged")


INVALID = gateway("gateway-with-invalid-client-cert-validation",
                  [https("https", 443), https("https-unresolved", 7443, "first-example.org"),
                   https("https-invalid-kind", 8443, "second-example.org"),
                   https("https-grant-missing", 6443, "fourth-example.org"),
                   https("https-unreadable", 5443, "fifth-example.org")],
                  default=[_ref("tls-validity-checks-ca-certificate")],
                  per_port=[(7443, [_ref("non-exisitng-cm")]), (8443, [_ref("infra-backend-v2", "Service")]),
                            (6443, [_ref("web-backend-cm", namespace="gateway-conformance-web-backend")]),
                            (5443, [_ref("unreadable")])])


@pytest.mark.parametrize("listener,resolved", [
    ("https-unresolved", "InvalidCACertificateRef"),
    ("https-invalid-kind", "InvalidCACertificateKind"),
    ("https-grant-missing", "RefNotPermitted"),
    ("https-unreadable", "InvalidCACertificateRef"),
])
def test_an_unusable_ca_leaves_its_listener_unserved(listener, resolved):
    config = translate(snapshot(INVALID, route("r", INVALID["metadata"]["name"], section=listener)))
    conditions = listener_conditions(config, INVALID["metadata"]["name"], listener)
    assert conditions["ResolvedRefs"] == ("False", resolved)
    assert conditions["Accepted"] == ("False", "NoValidCACertificate")
    assert conditions["Programmed"][0] == "False"
    assert not config.routes  # never served without the check


def test_an_invalid_per_port_validation_leaves_the_other_listeners_alone():
    config = translate(snapshot(INVALID, route("r", INVALID["metadata"]["name"], ["example.org"], section="https")))
    conditions = listener_conditions(config, INVALID["metadata"]["name"], "https")
    assert conditions["Accepted"] == ("True", "Accepted")
    assert conditions["ResolvedRefs"] == ("True", "ResolvedRefs")
    assert validation_of(config, "example.org").client_auth.ca.strip() == CA.encode().strip()


def test_a_reference_grant_permits_another_namespaces_config_map():
    grant = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
             "metadata": {"name": "ca", "namespace": "gateway-conformance-web-backend"},
             "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": NS}],
                      "to": [{"group": "", "kind": "ConfigMap"}]}}
    config = translate(snapshot(INVALID, grant, route("r", INVALID["metadata"]["name"], section="https-grant-missing")))
    conditions = listener_conditions(config, INVALID["metadata"]["name"], "https-grant-missing")
    assert conditions["Accepted"] == ("True", "Accepted")
    assert validation_of(config, "fourth-example.org") is not None


def test_an_invalid_default_affects_https_listeners_only():
    invalid_default = gateway("invalid-default-client-validation-config",
                              [https("https", 443), {"name": "http", "port": 80, "protocol": "HTTP",
                                                     "allowedRoutes": {"namespaces": {"from": "Same"}}}],
                              default=[_ref("does-not-exist")],
                              per_port=[(80, [_ref("tls-validity-checks-per-port-ca-certificate")])])
    config = translate(snapshot(invalid_default, route("r", "invalid-default-client-validation-config",
                                                       ["example.org"])))
    name = "invalid-default-client-validation-config"
    assert listener_conditions(config, name, "http")["Accepted"] == ("True", "Accepted")
    assert listener_conditions(config, name, "http")["ResolvedRefs"] == ("True", "ResolvedRefs")
    https_conditions = listener_conditions(config, name, "https")
    assert https_conditions["ResolvedRefs"] == ("False", "InvalidCACertificateRef")
    assert https_conditions["Accepted"] == ("False", "NoValidCACertificate")
    [served] = config.routes
    assert served.schemes == ("http",) and not served.filters  # the HTTP listener's route only


def test_some_usable_references_are_trusted_and_the_others_reported():
    mixed = gateway("mixed", [https("https", 443)],
                    default=[_ref("does-not-exist"), _ref("tls-validity-checks-ca-certificate")])
    config = translate(snapshot(mixed, route("r", "mixed", ["example.org"])))
    conditions = listener_conditions(config, "mixed", "https")
    assert conditions["ResolvedRefs"] == ("False", "InvalidCACertificateRef")
    assert conditions["Accepted"] == ("True", "Accepted")
    assert validation_of(config, "example.org").client_auth.ca.strip() == CA.encode().strip()


def test_an_unknown_mode_is_not_accepted():
    odd = gateway("odd", [https("https", 443)], default=[_ref("tls-validity-checks-ca-certificate")], mode="Sometimes")
    config = translate(snapshot(odd, route("r", "odd", ["example.org"])))
    assert listener_conditions(config, "odd", "https")["Accepted"] == ("False", "UnsupportedValue")
    assert not config.routes


# -- the request side (auth_tls.ListenerValidation, through gateway_filters) ------------------------

POLICY = load_client_auth(CA.encode(), None, "on", 10, "ConfigMap x/y", refuse=True)
OTHER = load_client_auth(PER_PORT_CA.encode(), None, "on", 10, "ConfigMap x/z", refuse=True)


def _exchange(certificate: ClientCertificate, https_: bool = True) -> FakeExchange:
    return FakeExchange(https=https_, scheme="https" if https_ else "http", client_certificate=certificate)


def test_the_filter_becomes_the_listener_validation_feature():
    config = translate(snapshot(VALID, *VALID_ROUTES))
    [served] = [r for r in config.routes if r.host == "example.org"]
    [feature] = features_for(served, BuildContext(settings={}, reactor=None))
    assert isinstance(feature, ListenerValidation) and feature.client_auth.refuse


@pytest.mark.parametrize("certificate,status", [
    (ClientCertificate("SUCCESS", "CN=a", "CN=ca", b"pem", 0, POLICY, "example.org", True), None),
    (ClientCertificate(policy=POLICY, server_name="example.org", tls=True), 400),  # none sent
    (ClientCertificate("FAILED:x", "CN=a", "CN=b", b"pem", 20, POLICY, "example.org", True), 400),
    (ClientCertificate("SUCCESS", "CN=a", "CN=ca", b"pem", 0, OTHER, "other.org", True), 421),  # another name's
    (ClientCertificate(server_name="open.org", tls=True), 421),  # a name that asked for nothing
    (ClientCertificate(tls=True), 400),  # no SNI: the default context asked for nothing
])
def test_allow_valid_only_serves_only_connections_verified_under_its_policy(certificate, status):
    answer = ListenerValidation(POLICY).request(_exchange(certificate))
    assert (answer.status if answer is not None else None) == status


def test_insecure_fallback_serves_everyone_and_plain_http_is_not_its_business():
    assert ListenerValidation(POLICY, insecure_fallback=True).request(_exchange(ClientCertificate(tls=True))) is None
    assert ListenerValidation(POLICY).request(_exchange(ClientCertificate(), https_=False)) is None


def test_a_listener_sets_https_listeners_use_their_gateways_validation():
    parent = dict(VALID, spec=dict(VALID["spec"], allowedListeners={"namespaces": {"from": "Same"}}))
    listener_set = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ListenerSet",
                    "metadata": {"name": "more", "namespace": NS},
                    "spec": {"parentRef": {"kind": "Gateway", "group": "gateway.networking.k8s.io",
                                           "name": "client-validation-default"},
                             "listeners": [https("set-8443", 8443, "third-example.org")]}}
    attached = route("through-the-set", "more", ["third-example.org"])
    attached["spec"]["parentRefs"] = [{"kind": "ListenerSet", "group": "gateway.networking.k8s.io", "name": "more"}]
    config = translate(snapshot(parent, listener_set, attached))
    validation = validation_of(config, "third-example.org")
    assert validation is not None and validation.client_auth.ca.strip() == PER_PORT_CA.encode().strip()


def test_refusing_is_part_of_the_policy():
    # a refusing policy never shares a handshake context with an asking-only one of the same CAs
    assert load_client_auth(CA.encode(), None, "on", 10, "x", refuse=True) != \
        load_client_auth(CA.encode(), None, "on", 10, "x")
