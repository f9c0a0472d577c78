"""ingressd.testing: the public harness runs the real manager, translate and build_table in memory."""

from __future__ import annotations

import base64

import bcrypt
import pytest
from twisted.internet.task import Clock

import fakes  # noqa: F401  (makes ingressd_plugins importable)
from ingressd import Annotation, hookimpl
from ingressd.plugin_manager import load_plugins
from ingressd.testing import PluginHarness, one_route_objects, restore_plugin_configuration, serve_in_memory
from ingressd_plugins import allowlist, basic_auth, cors, error_pages, proxy_settings, rate_limit

BUILTINS = [allowlist, basic_auth, cors, error_pages, proxy_settings, rate_limit]
HTPASSWD = b"ann:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)) + b"\n"


def basic(user, password):
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def auth_harness(**annotations):
    return PluginHarness(
        plugins=BUILTINS,
        annotations={"auth-type": "basic", "auth-secret": "users", "auth-realm": "Staff", **annotations},
        secrets={"users": {"auth": HTPASSWD}},
    )


def test_basic_auth_through_the_whole_build_path():
    with auth_harness() as harness:
        denied = harness.request("GET", "/")
        assert denied.status == 401
        assert denied.local.get("www-authenticate") == 'Basic realm="Staff"'
        allowed = harness.request("GET", "/", basic("ann", "secret"))
        assert allowed.proxied
        assert "authorization" not in dict(allowed.upstream_headers)


def test_missing_secret_fails_closed():
    with PluginHarness(plugins=BUILTINS, annotations={"auth-type": "basic", "auth-secret": "nope"}) as harness:
        assert harness.request("GET", "/", basic("ann", "secret")).status == 503


def test_cors_preflight_answered_before_auth():
    with auth_harness(**{"enable-cors": "true"}) as harness:
        preflight = harness.request("OPTIONS", "/", {"origin": "https://a.example",
                                                     "access-control-request-method": "PUT"})
        assert preflight.status == 204
        assert preflight.local.get("access-control-allow-origin") == "https://a.example"
        assert harness.request("OPTIONS", "/", {"origin": "https://a.example"}).status == 401


def test_rate_limit_on_the_harness_clock():
    with PluginHarness(plugins=BUILTINS, annotations={"limit-rps": "1", "limit-burst-multiplier": "2"},
                       settings={"limit_req_status_code": 429}) as harness:
        statuses = [harness.request().status for _ in range(4)]
        assert statuses == [None, None, None, 429]  # burst 2 + 1 pass at once
        harness.clock.advance(1.0)
        assert harness.request().proxied


def test_proxy_settings_land_on_the_exchange():
    with PluginHarness(plugins=BUILTINS, annotations={"proxy-read-timeout": "7", "proxy-body-size": "8k"}) as harness:
        outcome = harness.request()
        assert (outcome.exchange.read_timeout, outcome.exchange.max_body_size) == (7, 8192)


def test_invalid_annotation_is_a_rejection_naming_the_annotation():
    with PluginHarness(plugins=BUILTINS, annotations={"nginx.ingress.kubernetes.io/limit-rps": "lots"}) as harness:
        assert "nginx.ingress.kubernetes.io/limit-rps" in harness.rejection
        with pytest.raises(AssertionError, match="rejected"):
            harness.entry


def test_a_plugin_defined_in_the_test():
    class Stamp:
        phase = 100

        def request(self, exchange):
            exchange.headers.set(b"x-stamp", exchange.route.ingress.name.encode())

    class Plugin:
        @hookimpl
        def ingressd_annotations(self):
            return [Annotation("stamp", lambda text: text == "on", False, "stamp requests")]

        @hookimpl
        def ingressd_route_features(self, values):
            return Stamp() if values["stamp"] else None

    with PluginHarness(plugins=[Plugin()], annotations={"stamp": "on"}, name="shop") as harness:
        assert ("x-stamp", "shop") in harness.request().upstream_headers
    with PluginHarness(plugins=[Plugin()]) as harness:
        assert harness.request().proxied


NOT_CONFIGURED = ({}, None)


class _Keeper:
    """A third-party style plugin that keeps what ``ingressd_configure`` gave it in itself
    (built-in plugins keep their state per server: BuildContext.plugin_state)."""

    def __init__(self, name: str):
        self.__name__ = name
        self.kept = NOT_CONFIGURED

    @hookimpl
    def ingressd_configure(self, settings, reactor):
        self.kept = (settings, reactor)


FIRST, SECOND = _Keeper("first"), _Keeper("second")


def configured():
    """What the two keeping plugins hold."""
    return FIRST.kept, SECOND.kept


@pytest.fixture
def keepers():
    FIRST.kept = SECOND.kept = NOT_CONFIGURED
    yield
    FIRST.kept = SECOND.kept = NOT_CONFIGURED


def test_closing_a_harness_gives_the_plugins_their_configuration_back(keepers):
    outer = PluginHarness(plugins=[FIRST, SECOND], settings={"limit_req_status_code": 429})
    inner = PluginHarness(plugins=[FIRST])
    assert configured() == (({}, inner.clock), ({"limit_req_status_code": 429}, outer.clock))
    outer.close()  # not the latest for FIRST: it keeps inner's; SECOND had none before
    assert configured() == (({}, inner.clock), NOT_CONFIGURED)
    again = PluginHarness(plugins=[FIRST], settings={"limit_req_status_code": 418})
    inner.close()  # not the latest either
    assert configured()[0] == ({"limit_req_status_code": 418}, again.clock)
    with again:
        pass
    assert configured() == (NOT_CONFIGURED, NOT_CONFIGURED)


def test_built_in_plugins_keep_their_state_per_server():
    raw = {"limit-rps": "1", "limit-burst-multiplier": "1"}
    with PluginHarness(plugins=BUILTINS, annotations=raw) as one, PluginHarness(plugins=BUILTINS, annotations=raw) as two:
        assert [one.request().proxied for _ in range(3)] == [True, True, False]
        assert two.request().proxied  # another server: its own limiter
        assert one.plugin_state[rate_limit.STATE]["limiters"] is not two.plugin_state[rate_limit.STATE]["limiters"]


def test_serve_in_memory_listens_in_memory(tmp_path, keepers):
    with PluginHarness(plugins=[FIRST]) as harness:
        service, reactor = serve_in_memory(tmp_path, one_route_objects("web.test"), "--access-log", "off",
                                           "--https", "tcp:8443:interface=127.0.0.1")
        try:
            # Recorded by the memory reactor, so never bound: two servers or test processes
            # at once cannot collide on a port.
            assert sorted((port, interface) for port, _, _, interface in reactor.tcpServers) == [
                (8080, ""), (8443, "127.0.0.1"), (9180, "127.0.0.1")]
        finally:
            service.stopService()
        assert configured() == (({}, harness.clock), NOT_CONFIGURED)  # the server's plugins are others
    assert configured() == (NOT_CONFIGURED, NOT_CONFIGURED)


def test_restore_after_code_that_configures_the_plugins_itself(keepers):
    from ingressd.server import build_server

    keeping = load_plugins(extra=[FIRST, SECOND], entry_points=False)
    with PluginHarness(plugins=[FIRST]) as harness:
        build_server({"manifests": []}, keeping, Clock())  # as ingressd check does
        restore_plugin_configuration(keeping)
        assert configured() == (({}, harness.clock), NOT_CONFIGURED)  # the open harness's
    build_server({"manifests": []}, keeping, Clock())
    restore_plugin_configuration(keeping)
    assert configured() == (NOT_CONFIGURED, NOT_CONFIGURED)
