"""TLS passthrough without sockets: the plugin, the decision per SNI name, the splice, the hello hand-over."""

from __future__ import annotations

import io
import json
import ssl

import pytest
import yaml
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.compat.check import main as check_main
from ingressd.config.entries import RouteEntry
from ingressd.config.model import Backend, Endpoint, ObjectRef, Route
from ingressd.config.routing import RouteTable
from ingressd.testing import PluginHarness
from ingressd.tls.client_hello import ClientHelloFirst
from ingressd.tls.facts import _ObservedTLSProtocol
from ingressd.tls.passthrough import REFUSED, PassthroughRouter, Splice, passes_through
from ingressd_plugins import ssl_passthrough

N = "nginx.ingress.kubernetes.io/"


# -- the plugin --------------------------------------------------------------------------


def test_without_the_flag_the_ingress_is_rejected_and_says_why():
    with PluginHarness(plugins=[ssl_passthrough], annotations={N + "ssl-passthrough": "true"}) as harness:
        assert harness.rejection is not None
        assert "--enable-ssl-passthrough" in harness.rejection


def test_with_the_flag_the_route_passes_tls_through_and_sends_http_over_tls():
    with PluginHarness(plugins=[ssl_passthrough], annotations={N + "ssl-passthrough": "true"},
                       settings={"enable_ssl_passthrough": True}) as harness:
        assert harness.rejection is None
        assert passes_through(harness.entry)
        assert harness.entry.upstream.protocol == "HTTPS"


def test_the_https_backend_wins_over_backend_protocol():
    with PluginHarness(annotations={N + "ssl-passthrough": "true", N + "backend-protocol": "HTTP"},
                       settings={"enable_ssl_passthrough": True}, entry_points=True) as harness:
        assert harness.entry.upstream.protocol == "HTTPS"


@pytest.mark.parametrize("value", ["false", "0", "F"])
def test_false_asks_for_nothing(value):
    with PluginHarness(plugins=[ssl_passthrough], annotations={N + "ssl-passthrough": value}) as harness:
        assert harness.rejection is None
        assert not passes_through(harness.entry)
        assert harness.entry.upstream.protocol == "HTTP"


def test_a_value_go_cannot_read_is_refused():
    with PluginHarness(plugins=[ssl_passthrough], annotations={N + "ssl-passthrough": "yes"},
                       settings={"enable_ssl_passthrough": True}) as harness:
        assert harness.rejection is not None and "ParseBool" in harness.rejection


# -- ingressd check ----------------------------------------------------------------------


def _check(tmp_path, *flags):
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "argocd", "namespace": "default", "annotations": {N + "ssl-passthrough": "true"}},
        "spec": {"ingressClassName": "ingressd", "rules": [{"host": "argocd.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "argocd", "port": {"number": 443}}}}]}}]}}))
    out = io.StringIO()
    status = check_main([*flags, "--output", "json", str(manifest)], stdout=out)
    return status, json.loads(out.getvalue())["ingresses"][0]


def test_check_says_the_ingress_is_not_served_without_the_flag(tmp_path):
    status, item = _check(tmp_path)
    assert status == 1
    assert item["verdict"] == "not-served"
    assert any("without --enable-ssl-passthrough" in reason for reason in item["reasons"])


def test_check_with_the_flag_serves_it_with_its_differences(tmp_path):
    status, item = _check(tmp_path, "--enable-ssl-passthrough")
    assert item["verdict"] == "served-with-differences"
    assert not any("without --enable-ssl-passthrough" in reason for reason in item["reasons"])


# -- which connections pass through ------------------------------------------------------


class Passing:
    tls_passthrough = True


def entry(host, path="/", path_type="Prefix", passthrough=True, endpoints=(("10.0.0.1", 443),)):
    backend = Backend("default", "svc", "443", tuple(Endpoint(a, p) for a, p in endpoints))
    route = Route(host, path, path_type, backend, ObjectRef("Ingress", "default", host or "any"))
    return RouteEntry(route, [Passing()] if passthrough else [])


class State:
    def __init__(self, *entries):
        self.table = RouteTable(entries)


def router(*entries, connect=None):
    said = []
    made = PassthroughRouter(State(*entries), connect or (lambda *args: None), connect_timeout=3.0, say=said.append)
    made.said = said
    return made


def test_the_root_route_of_an_exact_host_decides():
    root = entry("pass.example")
    decide = router(root, entry("term.example", passthrough=False), entry("*.wild.example"),
                    entry("exact.example", "/", "Exact"), entry("api.example", "/api"))
    assert decide.target("pass.example") is root
    assert decide.target("term.example") is None  # terminated as usual
    assert decide.target("unknown.example") is None
    assert decide.target("a.wild.example") is None  # ingress-nginx compares names: a wildcard never matches
    assert decide.target("exact.example") is REFUSED  # no Prefix "/" route: nothing to pass to
    assert decide.target("api.example") is REFUSED


def test_a_host_whose_root_does_not_pass_through_is_refused():
    assert router(entry("mixed.example", passthrough=False), entry("mixed.example", "/tls")).target(
        "mixed.example") is REFUSED


def test_no_name_is_never_diverted():
    decide = router(entry("pass.example"))
    assert decide.divert(None, FakeTransport(), b"hello") is None
    assert decide.divert("", FakeTransport(), b"hello") is None
    assert decide.accepted == 0


def test_a_new_table_is_read_by_the_next_connection():
    state = State()
    decide = PassthroughRouter(state, lambda *args: None)
    assert decide.target("pass.example") is None
    state.table = RouteTable([entry("pass.example")])
    assert decide.target("pass.example") is not None


# -- the splice --------------------------------------------------------------------------


class FakeTransport(StringTransport):
    def __init__(self):
        super().__init__()
        self.write_closed = False
        self.aborted = False
        self.paused = False

    def loseWriteConnection(self):
        self.write_closed = True

    def abortConnection(self):
        self.aborted = True
        self.disconnecting = True

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False


class Connector:
    def __init__(self):
        self.calls = []

    def __call__(self, host, port, factory, timeout):
        self.calls.append(((host, port), factory, timeout))

    def succeed(self, index=-1):
        factory = self.calls[index][1]
        protocol = factory.buildProtocol(None)
        transport = FakeTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def fail(self, index=-1):
        self.calls[index][1].clientConnectionFailed(None, None)


def started(endpoints=(("10.0.0.1", 443),), held=b"HELLO"):
    connect = Connector()
    decide = router(entry("pass.example", endpoints=endpoints), connect=connect)
    client = FakeTransport()
    splice = decide.divert("pass.example", client, held)
    return decide, connect, client, splice


def test_the_held_hello_goes_first_then_what_came_while_connecting():
    decide, connect, client, splice = started()
    assert isinstance(splice, Splice) and decide.accepted == 1 and decide.open_connections() == 1
    assert client.paused  # nothing read until the backend is there
    assert connect.calls[0][0] == ("10.0.0.1", 443) and connect.calls[0][2] == 3.0
    splice.client_data(b" MORE")
    protocol, backend = connect.succeed()
    assert backend.value() == b"HELLO MORE"
    assert not client.paused
    splice.client_data(b" LIVE")
    assert backend.value() == b"HELLO MORE LIVE"
    protocol.dataReceived(b"SERVER HELLO")
    assert client.value() == b"SERVER HELLO"
    assert splice.bytes_up == len(b"HELLO MORE LIVE") and splice.bytes_down == len(b"SERVER HELLO")


def test_each_side_is_the_others_streaming_producer():
    _, connect, client, _ = started()
    _, backend = connect.succeed()
    assert backend.producer is client and backend.streaming
    assert client.producer is backend and client.streaming


def test_a_failed_connect_tries_the_next_endpoint_then_closes():
    decide, connect, client, splice = started(endpoints=(("10.0.0.1", 443), ("10.0.0.2", 443)))
    connect.fail()
    assert [call[0] for call in connect.calls] == [("10.0.0.1", 443), ("10.0.0.2", 443)]
    connect.fail()
    assert len(connect.calls) == 2  # each endpoint once
    assert client.disconnecting and splice.closed
    assert decide.failed == 1 and decide.open_connections() == 0


def test_the_next_endpoint_gets_the_held_bytes():
    _, connect, _, _ = started(endpoints=(("10.0.0.1", 443), ("10.0.0.2", 443)))
    connect.fail()
    _, backend = connect.succeed()
    assert backend.value() == b"HELLO"


def test_no_endpoints_closes_at_once():
    decide, connect, client, splice = started(endpoints=())
    assert connect.calls == [] and client.disconnecting and decide.failed == 1


def test_a_refused_host_is_closed_and_named_in_the_log():
    connect = Connector()
    decide = router(entry("api.example", "/api"), connect=connect)
    client = FakeTransport()
    assert decide.divert("api.example", client, b"HELLO") is not None
    assert connect.calls == [] and client.disconnecting
    assert "api.example" in decide.said[0] and "no / path" in decide.said[0]


def test_half_close_is_passed_on_both_ways():
    _, connect, client, splice = started()
    protocol, backend = connect.succeed()
    splice.client_read_lost()
    assert backend.write_closed and not splice.closed
    protocol.dataReceived(b"last words")
    assert client.value() == b"last words"
    protocol.readConnectionLost()
    assert splice.closed and client.disconnecting and backend.disconnecting


def test_the_backends_fin_first():
    _, connect, client, splice = started()
    protocol, backend = connect.succeed()
    protocol.readConnectionLost()
    assert client.write_closed and not splice.closed
    splice.client_data(b"more")
    assert backend.value() == b"HELLOmore"
    splice.client_read_lost()
    assert splice.closed


def test_a_fin_before_the_backend_is_there_is_passed_on_once_connected():
    _, connect, _, splice = started()
    splice.client_read_lost()
    _, backend = connect.succeed()
    assert backend.value() == b"HELLO" and backend.write_closed


def test_either_side_lost_closes_the_other():
    decide, connect, client, splice = started()
    protocol, backend = connect.succeed()
    protocol.connectionLost(None)
    assert client.disconnecting and decide.open_connections() == 0
    decide, connect, client, splice = started()
    _, backend = connect.succeed()
    splice.client_lost()
    assert backend.disconnecting


def test_a_client_gone_while_connecting_drops_the_backend_connection():
    _, connect, _, splice = started()
    splice.client_lost()
    _, backend = connect.succeed()
    assert backend.aborted


def test_drain_waits_and_close_closes():
    decide, connect, client, splice = started()
    _, backend = connect.succeed()
    decide.drain_connections()
    assert not splice.closed and decide.open_connections() == 1
    decide.close_connections()
    assert splice.closed and client.disconnecting and backend.disconnecting
    assert decide.open_connections() == 0


# -- the hand-over at the ClientHello ----------------------------------------------------


def hello(name):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class Recorder:
    def __init__(self, take=True):
        self.take = take
        self.asked = []
        self.events = []

    def divert(self, name, transport, held):
        self.asked.append((name, held))
        return self if self.take else None

    def client_data(self, data):
        self.events.append(("data", data))

    def client_read_lost(self):
        self.events.append(("fin",))

    def client_lost(self):
        self.events.append(("lost",))


class HelloFactory:
    def __init__(self, passthrough):
        self.clock, self.hello_timeout = Clock(), 10.0
        self.passthrough = passthrough
        self.created = []
        self.handshakes, self.handshake_failures, self.connections = {}, 0, 1

    def _creatorCallable(self, protocol):
        self.created.append(protocol.server_name_hint)
        raise _Terminated


class _Terminated(Exception):
    pass


def hello_protocol(passthrough, kind=ClientHelloFirst):
    factory = HelloFactory(passthrough)
    protocol = kind.__new__(kind)
    protocol.factory = factory
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, factory, transport


def test_a_split_hello_is_handed_over_whole_with_its_name():
    recorder = Recorder()
    protocol, factory, _ = hello_protocol(recorder, _ObservedTLSProtocol)
    data = hello("pass.example")
    for at in range(0, len(data), 5):
        protocol.dataReceived(data[at:at + 5])  # never asks OpenSSL for a handle it has not made
    assert recorder.asked == [("pass.example", data)]
    assert factory.created == []  # no TLS connection made
    assert IHalfCloseableProtocol.providedBy(protocol)
    protocol.dataReceived(b"next record")
    protocol.readConnectionLost()
    protocol.connectionLost(None)
    assert recorder.events == [("data", b"next record"), ("fin",), ("lost",)]
    assert factory.handshake_failures == 0  # not a failed handshake of ours
    assert protocol.getHandle() is None


def test_a_hello_not_taken_is_terminated_as_before():
    recorder = Recorder(take=False)
    protocol, factory, _ = hello_protocol(recorder)
    with pytest.raises(_Terminated):
        protocol.dataReceived(hello("term.example"))
    assert recorder.asked == [("term.example", hello_bytes_like := recorder.asked[0][1])] and hello_bytes_like
    assert factory.created == ["term.example"]
    assert not IHalfCloseableProtocol.providedBy(protocol)


def test_no_name_is_not_offered_to_passthrough():
    recorder = Recorder()
    protocol, factory, _ = hello_protocol(recorder)
    with pytest.raises(_Terminated):
        protocol.dataReceived(hello(None))
    assert recorder.asked == [] and factory.created == [None]


def test_non_tls_bytes_are_not_offered_to_passthrough():
    recorder = Recorder()
    protocol, factory, _ = hello_protocol(recorder)
    with pytest.raises(_Terminated):
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: pass.example\r\n\r\n")
    assert recorder.asked == [] and factory.created == [None]


def test_a_server_alias_passes_through_as_its_host_does():
    # A documented difference: ingress-nginx's TCP proxy knows only the rule's host name.
    with PluginHarness(annotations={N + "ssl-passthrough": "true", N + "server-alias": "alias.example"},
                       settings={"enable_ssl_passthrough": True}, entry_points=True) as harness:
        decide = PassthroughRouter(harness, lambda *args: None)
        assert decide.target("example.com") is harness.entry
        assert decide.target("alias.example") is not None and decide.target("alias.example") is not REFUSED


def test_a_split_hello_reaches_the_handshake_counters_without_a_handle_and_is_then_terminated():
    # Before getHandle knew about the held state this raised AttributeError on the first piece
    # and the connection was dropped (any ClientHello split across segments, passthrough or not).
    protocol, factory, _ = hello_protocol(None, _ObservedTLSProtocol)
    data = hello("term.example")
    last = len(data) - 1
    for at in range(0, last, 5):
        protocol.dataReceived(data[at:min(at + 5, last)])
        assert protocol.getHandle() is None
    with pytest.raises(_Terminated):
        protocol.dataReceived(data[last:])
    assert factory.created == ["term.example"]
