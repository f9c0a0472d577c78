"""The ConfigMap's ``retry-non-idempotent`` (POST, LOCK and PATCH retried too, as ingress-nginx's
buildNextUpstream appends non_idempotent to every location's list) and ``upstream-keepalive-time``
(nginx's keepalive_time: a backend connection opened that long ago is not reused)."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from ingressd.compat.check import server_settings_from
from ingressd.config.nginx_configmap import read_configmap
from ingressd.features import BuildContext
from ingressd.plugin_manager import load_plugins
from ingressd.proxy.http1_upstream import HTTP1Upstream
from ingressd.proxy.next_upstream import may_retry
from ingressd.testing import features_for, restore_plugin_configuration
from ingressd_plugins import proxy_settings

ROOT = Path(__file__).resolve().parent.parent
NAME = "ingress-nginx/ingress-nginx-controller"


@pytest.fixture(autouse=True)
def _plugins_as_they_were():
    yield
    restore_plugin_configuration()


def _read(data):
    plugins = load_plugins()
    options = {option.name: option.coerce for option in plugins.options}
    return read_configmap(NAME, data, plugins.annotations, options, server_settings_from(()))


def _policy(annotations, retry):
    context = BuildContext(settings={"retry_non_idempotent": retry}, reactor=None)
    features = features_for(proxy_settings, annotations, context=context)
    return features[0].upstream.next_upstream if features else None


# -- retry-non-idempotent ---------------------------------------------------------------------------


def test_off_by_default_a_route_without_annotations_keeps_the_servers_policy():
    assert _policy({}, False) is None
    assert _policy({"proxy-next-upstream": "error timeout"}, False).non_idempotent is False


def test_on_every_route_retries_post_lock_and_patch_once_sent():
    default = _policy({}, True)
    assert default.non_idempotent and default.failures == {"error", "timeout"} and default.tries == 3
    own = _policy({"proxy-next-upstream": "error http_503", "proxy-next-upstream-tries": "2"}, True)
    assert own.non_idempotent and own.statuses == {503} and own.tries == 2
    for method in (b"POST", b"LOCK", b"PATCH"):
        assert may_retry(default, "error", method, True, 1, 0.0)
        assert not may_retry(_policy({"proxy-next-upstream": "error"}, False), "error", method, True, 1, 0.0)
    off = _policy({"proxy-next-upstream": "off"}, True)  # "off non_idempotent": off wins, as in nginx
    assert not may_retry(off, "error", b"POST", True, 1, 0.0) and not may_retry(off, "error", b"GET", False, 1, 0.0)
    assert _policy({}, "false") is None and _policy({}, "true").non_idempotent  # an option's text


def test_the_key_is_a_live_setting_and_a_bad_value_refuses_the_configmap():
    reading = _read({"retry-non-idempotent": "true"})
    assert reading.usable and not reading.warnings and dict(reading.settings) == {"retry-non-idempotent": True}
    assert not _read({"retry-non-idempotent": "false"}).settings  # the default asks for nothing
    refused = _read({"retry-non-idempotent": "perhaps"})
    assert not refused.usable and "retry-non-idempotent" in refused.refusals[0]


def test_the_option():
    from ingressd.tap import Options

    options = Options()
    options.parseOptions(["--manifests", str(ROOT / "examples"), "--retry-non-idempotent", "true"])
    assert options["retry-non-idempotent"] is True
    options = Options()
    options.parseOptions(["--manifests", str(ROOT / "examples")])
    assert options["retry-non-idempotent"] is False


# -- upstream-keepalive-time ------------------------------------------------------------------------


class _Transport:
    closed = False

    def loseConnection(self):
        self.closed = True


class _Connection:
    def __init__(self, pool):
        self.connected, self.key, self.served, self.transport = True, ("127.0.0.1", 80), 0, _Transport()
        self.opened_at = pool.clock.seconds()


def test_a_connection_older_than_max_age_is_closed_once_its_request_is_done():
    clock = Clock()
    pool = HTTP1Upstream(clock, max_idle_per_endpoint=4, idle_timeout=60, max_requests=0, max_age=100)
    connection = _Connection(pool)
    for _ in range(3):  # reused while young, whatever the number of requests
        clock.advance(30)
        pool.release(connection)
        assert pool.idle[connection.key] == [connection] and not connection.transport.closed
        pool.idle[connection.key].clear()  # handed out again
    clock.advance(10)  # 100 s since it was opened
    pool.release(connection)
    assert connection.transport.closed and not pool.idle[connection.key]
    pool.use_limits(4, 60, 0, 0)  # 0: no age limit
    old = _Connection(pool)
    clock.advance(10 ** 6)
    pool.release(old)
    assert pool.idle[old.key] == [old] and not old.transport.closed
    pool.close()


def test_the_default_is_an_hour_and_new_connections_remember_when_they_were_opened():
    clock = Clock()
    clock.advance(500)
    pool = HTTP1Upstream(clock)
    assert pool.max_age == 3600
    from ingressd.proxy.http1_upstream import HTTP1Connection

    assert HTTP1Connection(pool, ("127.0.0.1", 80)).opened_at == 500


def test_upstream_keepalive_time_key_option_and_live_pools():
    from ingressd.server import IngressdService
    from ingressd.tap import Options, settings_from

    reading = _read({"upstream-keepalive-time": "30m"})
    assert reading.usable and not reading.warnings and dict(reading.settings) == {"upstream-keepalive-time": 1800}
    refused = _read({"upstream-keepalive-time": "soon"})
    assert not refused.usable and "upstream-keepalive-time" in refused.refusals[0]

    options = Options()
    options.parseOptions(["--manifests", str(ROOT / "examples"), "--nginx-configmap", NAME,
                          "--upstream-keepalive-time", "2h"])
    assert options["upstream-keepalive-time"] == 7200
    service = IngressdService(settings_from(options), load_plugins(), MemoryReactorClock(), [])
    assert service.pool.max_age == service.https_pool.max_age == 7200

    def put(data):
        service.store.replace("test", "ConfigMap", [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "ingress-nginx-controller", "namespace": "ingress-nginx"}, "data": data}])
        service.store.set_synced("test")
        service.store.set_synced("files")
        service.reloader.rebuild()

    put({"upstream-keepalive-time": "10m"})
    assert service.pool.max_age == service.https_pool.max_age == 600
    put({})  # the key gone: the option again
    assert service.pool.max_age == 7200
    with pytest.raises(Exception):
        bad = Options()
        bad.parseOptions(["--manifests", str(ROOT / "examples"), "--upstream-keepalive-time", "soon"])
