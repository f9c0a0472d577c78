"""ingressd.testing: the public harness runs the real manager, translate and build_table in memory."""

from __future__ import annotations

import base64

import bcrypt
import pytest

import fakes  # noqa: F401  (makes ingressd_plugins importable)
from ingressd import Annotation, hookimpl
from ingressd.testing import PluginHarness
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
    harness = auth_harness()
    denied = harness.request("GET", "/")
    assert denied.status == 401
    assert denied.local.get("www-authenticate") == 'Basic realm="Staff"'
    allowed = harness.request("GET", "/", basic("ann", "secret"))
    assert allowed.proxied
    assert "authorization" not in dict(allowed.upstream_headers)


def test_missing_secret_fails_closed():
    harness = PluginHarness(plugins=BUILTINS, annotations={"auth-type": "basic", "auth-secret": "nope"})
    assert harness.request("GET", "/", basic("ann", "secret")).status == 503


def test_cors_preflight_answered_before_auth():
    harness = auth_harness(**{"enable-cors": "true"})
    preflight = harness.request("OPTIONS", "/", {"origin": "https://a.example", "access-control-request-method": "PUT"})
    assert preflight.status == 204
    assert preflight.local.get("access-control-allow-origin") == "https://a.example"
    assert harness.request("OPTIONS", "/", {"origin": "https://a.example"}).status == 401


def test_rate_limit_on_the_harness_clock():
    harness = PluginHarness(plugins=BUILTINS, annotations={"limit-rps": "1", "limit-burst-multiplier": "2"},
                            settings={"limit_req_status_code": 429})
    statuses = [harness.request().status for _ in range(4)]
    assert statuses == [None, None, None, 429]  # burst 2 + 1 pass at once
    harness.clock.advance(1.0)
    assert harness.request().proxied


def test_proxy_settings_land_on_the_exchange():
    harness = PluginHarness(plugins=BUILTINS, annotations={"proxy-read-timeout": "7", "proxy-body-size": "8k"})
    outcome = harness.request()
    assert (outcome.exchange.read_timeout, outcome.exchange.max_body_size) == (7, 8192)


def test_invalid_annotation_is_a_rejection_naming_the_annotation():
    harness = PluginHarness(plugins=BUILTINS, annotations={"nginx.ingress.kubernetes.io/limit-rps": "lots"})
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

    outcome = PluginHarness(plugins=[Plugin()], annotations={"stamp": "on"}, name="shop").request()
    assert ("x-stamp", "shop") in outcome.upstream_headers
    assert PluginHarness(plugins=[Plugin()]).request().proxied
