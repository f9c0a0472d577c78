"""Misdirected requests (tls/misdirected.py): which Gateway HTTPS listener a name belongs to, the
421 rule over the conformance case's listeners, the listeners' hostnames put on the Config by
the Gateway API translation and on the route table by build_table, and the exchange answering
421 before any route is matched (the traffic: tests/test_e2e_gateway_misdirected.py)."""

from __future__ import annotations

import base64

import pytest
import yaml
from twisted.internet.task import Clock

from ingressd.config.entries import RouteEntry, build_table
from ingressd.config.gateway_api import translate
from ingressd.config.model import Backend, Config, Endpoint, ObjectRef, Route
from ingressd.config.routing import RouteTable
from ingressd.proxy.exchange import Proxy, ProxySettings
from ingressd.tls.client_auth import ClientCertificate
from ingressd.tls.misdirected import ListenerHostnames

import certs
from test_exchange import FakeClient, FakePool, State, request
from test_gateway_translate import snapshot

SUITE = ListenerHostnames(["", "second-example.org", "*.wildcard.org", "fourth-example.wildcard.org"])


@pytest.mark.parametrize("name, listener", [
    ("example.org", ""),
    ("second-example.org", "second-example.org"),
    ("third-example.wildcard.org", "*.wildcard.org"),
    ("a.b.wildcard.org", "*.wildcard.org"),
    ("wildcard.org", ""),  # the wildcard covers names below it only
    ("fourth-example.wildcard.org", "fourth-example.wildcard.org"),
])
def test_each_name_belongs_to_the_most_specific_listener(name, listener):
    assert SUITE.listener_of(name) == listener


@pytest.mark.parametrize("server_name, host, misdirected", [
    ("example.org", "example.org", False),
    ("example.org", "second-example.org", True),
    ("example.org", "unknown-example.org", False),
    ("second-example.org", "example.org", True),
    ("second-example.org", "unknown-example.org", True),
    ("third-example.wildcard.org", "fith-example.wildcard.org", False),
    ("third-example.wildcard.org", "fourth-example.wildcard.org", True),
    ("third-example.wildcard.org", "second-example.org", True),
    ("fourth-example.wildcard.org", "fith-example.wildcard.org", True),
    ("unknown-example.org", "example.org", False),
    ("unknown-example.org", "unknown-example.org", False),
    ("", "second-example.org", False),  # no SNI: never judged
])
def test_the_conformance_cases(server_name, host, misdirected):
    assert SUITE.misdirected(server_name, host) is misdirected


def test_without_a_listener_lacking_a_hostname_other_names_are_not_judged():
    names = ListenerHostnames(["secure.example", "*.wild.example"])
    assert names.listener_of("app.test") is None
    assert not names.misdirected("secure.example", "app.test")  # an Ingress host: as before
    assert not names.misdirected("app.test", "secure.example")
    assert names.misdirected("secure.example", "a.wild.example")
    assert names.listener_of("A.wild.example".lower()) == "*.wild.example"


def test_the_most_specific_wildcard_wins():
    names = ListenerHostnames(["*.example.com", "*.a.example.com"])
    assert names.listener_of("x.a.example.com") == "*.a.example.com"
    assert names.listener_of("x.b.example.com") == "*.example.com"
    assert names.misdirected("x.a.example.com", "x.b.example.com")


GATEWAYS = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ingressd}
spec: {controllerName: ingressd.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: ingressd
  listeners:
  - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}}
  - {name: second, port: 443, protocol: HTTPS, hostname: second.example, tls: {certificateRefs: [{name: cert}]}}
  - {name: plain, port: 80, protocol: HTTP, hostname: plain.example}
  - {name: broken, port: 443, protocol: HTTPS, hostname: broken.example, tls: {certificateRefs: [{name: missing}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: another, namespace: ns}
spec:
  gatewayClassName: ingressd
  listeners:
  - {name: wild, port: 8443, protocol: HTTPS, hostname: '*.wild.example', tls: {certificateRefs: [{name: cert}]}}
"""


def _secret() -> str:
    leaf = certs.make_leaf("second.example")
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                           "metadata": {"name": "cert", "namespace": "ns"},
                           "data": {"tls.crt": base64.b64encode(leaf.cert_pem).decode(),
                                    "tls.key": base64.b64encode(leaf.key_pem()).decode()}})


def test_the_translation_lists_the_https_listeners_hostnames():
    config = translate(snapshot(GATEWAYS, _secret()))
    # the usable HTTPS listeners' (not the one whose certificate is missing, not HTTP ones)
    assert config.https_listeners == ("", "*.wild.example", "second.example")


def test_no_gateway_no_listeners_and_no_check():
    assert translate(snapshot()).https_listeners == ()
    table, _ = build_table(Config(), None, None)
    assert table.misdirected is None


def test_build_table_puts_the_check_on_the_table():
    table, _ = build_table(Config(https_listeners=("", "second.example")), None, None)
    assert isinstance(table.misdirected, ListenerHostnames)
    assert table.misdirected.misdirected("first.example", "second.example")
    assert RouteTable([], misdirected="given").misdirected == "given"


# -- the exchange ----------------------------------------------------------------------------------

class _TLSClient(FakeClient):
    def __init__(self, server_name: str):
        super().__init__(scheme="https")
        self._certificate = ClientCertificate(server_name=server_name, tls=True)

    def client_certificate(self):
        return self._certificate


def _proxy():
    route = Route("", "/", "Prefix", Backend("default", "web", "80", (Endpoint("10.0.0.1", 80),)),
                  ObjectRef("HTTPRoute", "default", "web"))
    table = RouteTable([RouteEntry(route, ())], misdirected=ListenerHostnames(["", "second.example"]))
    pool = FakePool()
    return Proxy(State(table), {"HTTP": pool}, ProxySettings(), Clock()), pool


@pytest.mark.parametrize("server_name, host, status", [
    ("first.example", "second.example", 421),
    ("second.example", "first.example", 421),
])
def test_the_exchange_answers_421_before_routing(server_name, host, status):
    proxy, pool = _proxy()
    client = _TLSClient(server_name)
    proxy(client, request(host=host.encode()))
    assert client.head[0] == status and pool.asked == []


def test_the_exchange_routes_a_request_of_the_listener_its_sni_chose():
    proxy, pool = _proxy()
    client = _TLSClient("second.example")
    proxy(client, request(host=b"second.example"))
    assert client.head is None and len(pool.asked) == 1


def test_plain_http_is_not_judged():
    proxy, pool = _proxy()
    client = FakeClient()
    proxy(client, request(host=b"second.example"))
    assert client.head is None and len(pool.asked) == 1
