"""The TCP/UDP services' live settings without sockets: ``proxy-stream-next-upstream``, ``-tries``
and ``-timeout`` bounding the endpoints a TCP connection tries (read per attempt, so a change
applies to the next one), ``proxy-stream-timeout`` and ``-responses`` read by the next
connection, ``log-format-stream`` compiled and rendered (the default byte for byte
ingress-nginx's), and what the ConfigMap refuses."""

from __future__ import annotations

import pytest

from ingressd.compat.check import server_settings_from
from ingressd.config.nginx_configmap import read_configmap
from ingressd.l4.manager import L4Manager
from ingressd.l4.stream_log import DEFAULT_STREAM, StreamRecord, compile_stream_format, stream_line
from ingressd.l4.stream_settings import StreamSettings, stream_settings_from
from ingressd.plugin_manager import load_plugins
from test_l4_ports import Endpoint, Hub, accept, tcp_port

NAME = "ingress-nginx/ingress-nginx-controller"


def _read(data):
    plugins = load_plugins()
    options = {option.name: option.coerce for option in plugins.options}
    return read_configmap(NAME, data, plugins.annotations, options, server_settings_from(()))


def five(hub):
    return tcp_port(hub, endpoints=[Endpoint(f"10.1.0.{n}", 5432) for n in range(1, 6)])


def fail_all(hub, limit=10):
    """Fail each connect attempt as it comes (at most ``limit``); the number of attempts."""
    seen = 0
    while seen < len(hub.connects) and seen < limit:
        hub.connects[seen][2].clientConnectionFailed(None, None)
        seen += 1
    return len(hub.connects)


# -- the settings -----------------------------------------------------------------------------


def test_ingress_nginx_s_defaults():
    settings = stream_settings_from({})
    assert settings == StreamSettings(600.0, 1, True, 3, 600.0, None)
    assert stream_settings_from({"log_format_stream": DEFAULT_STREAM}).log_format is None  # the fast default line


def test_values_as_the_configmap_writes_them():
    settings = stream_settings_from({"proxy_stream_timeout": "30s", "proxy_stream_responses": "0",
                                     "proxy_stream_next_upstream": "false", "proxy_stream_next_upstream_tries": "5",
                                     "proxy_stream_next_upstream_timeout": "1m", "log_format_stream": "$status"})
    assert (settings.idle_timeout, settings.responses, settings.next_upstream) == (30.0, 0, False)
    assert (settings.next_upstream_tries, settings.next_upstream_timeout) == (5, 60.0)
    assert settings.log_format.text == "$status"


@pytest.mark.parametrize("key, value, words", [
    ("proxy-stream-next-upstream-tries", "-1", "proxy-stream-next-upstream-tries"),
    ("proxy-stream-next-upstream-tries", "many", "proxy-stream-next-upstream-tries"),
    ("proxy-stream-next-upstream-timeout", "soon", "proxy-stream-next-upstream-timeout"),
    ("proxy-stream-next-upstream", "perhaps", "proxy-stream-next-upstream"),
    ("proxy-stream-timeout", "0", "proxy-stream-timeout"),
    ("proxy-stream-responses", "-2", "proxy-stream-responses"),
    ("log-format-stream", "$remote_addr $nope", "unknown stream log variable $nope"),
    ("log-format-stream", "$binary_remote_addr", "not supported (not text)"),
    ("log-format-stream", "$status\\n$status", "one line"),
])
def test_a_bad_value_refuses_the_configmap(key, value, words):
    reading = _read({key: value})
    assert not reading.usable and words in "\n".join(reading.refusals), reading.refusals


def test_the_keys_become_settings():
    reading = _read({"proxy-stream-next-upstream": "false", "proxy-stream-next-upstream-tries": "0",
                     "proxy-stream-next-upstream-timeout": "10s", "log-format-stream": "[$remote_addr] $status"})
    assert reading.usable and not reading.warnings
    assert dict(reading.settings) == {"proxy-stream-next-upstream": False, "proxy-stream-next-upstream-tries": 0,
                                      "proxy-stream-next-upstream-timeout": 10.0,
                                      "log-format-stream": "[$remote_addr] $status"}


# -- next upstream on a TCP port --------------------------------------------------------------


@pytest.mark.parametrize("settings, attempts", [
    (StreamSettings(), 3),  # ingress-nginx: 3 tries
    (StreamSettings(next_upstream=False), 1),
    (StreamSettings(next_upstream_tries=2), 2),
    (StreamSettings(next_upstream_tries=0), 5),  # no limit but the endpoints: each once
    (StreamSettings(next_upstream=False, next_upstream_tries=0), 1),
])
def test_the_endpoints_tried_per_connection(settings, attempts):
    hub = Hub()
    hub.stream = settings
    port = five(hub)
    accept(port)
    assert fail_all(hub) == attempts
    assert hub.lines[-1][2] == 502
    assert len({(host, number) for host, number, _, _ in hub.connects}) == attempts  # never one twice


def test_no_next_endpoint_once_the_timeout_has_passed():
    hub = Hub()
    hub.stream = StreamSettings(next_upstream_timeout=10.0)
    accept(five(hub))
    hub.connects[0][2].clientConnectionFailed(None, None)
    assert len(hub.connects) == 2
    hub.clock.advance(10.0)
    hub.connects[1][2].clientConnectionFailed(None, None)
    assert len(hub.connects) == 2 and hub.lines[-1][2] == 502
    hub = Hub()
    hub.stream = StreamSettings(next_upstream_timeout=0, next_upstream_tries=0)  # 0: no limit
    accept(five(hub))
    hub.clock.advance(599)  # long past a limit, before the idle timeout (600 s) ends the connection
    assert fail_all(hub) == 5


def test_a_change_applies_to_the_next_attempt_and_connection():
    hub = Hub()
    port = five(hub)
    accept(port)
    hub.connects[0][2].clientConnectionFailed(None, None)
    hub.stream = StreamSettings(next_upstream=False)  # between two attempts of one connection
    hub.connects[1][2].clientConnectionFailed(None, None)
    assert len(hub.connects) == 2 and hub.lines[-1][2] == 502
    accept(port)
    hub.connects[2][2].clientConnectionFailed(None, None)
    assert len(hub.connects) == 3


def test_the_line_names_every_endpoint_tried_and_the_ports():
    hub = Hub()
    port = five(hub)
    accept(port, peer=("192.0.2.7", 40000))
    hub.connects[0][2].clientConnectionFailed(None, None)
    assert len(hub.connects) == 2
    hub.connections.close_connections()  # the connection ends (the drain's last step): its line is written
    more = hub.more[-1]
    assert more["upstream_addr"] == "10.1.0.1:5432, 10.1.0.2:5432"
    assert more["server_port"] == 9000 and more["remote_port"] == 40000
    assert more["proxy_protocol_addr"] is None


# -- the manager: settings swapped, the line rendered ----------------------------------------


class _Log:
    def __init__(self):
        self.lines = []

    def append_line(self, line):
        self.lines.append(line)


def test_the_manager_applies_settings_and_renders_the_line():
    from twisted.internet.task import Clock

    from ingressd.config.store import ObjectStore

    clock = Clock()
    clock.advance(1_790_000_000)
    manager = L4Manager(ObjectStore(), clock, "ingress-nginx/tcp", None)
    manager.access_log = _Log()
    manager.log_line("192.0.2.1", "TCP", 200, 12, 34, 1.5)
    assert manager.access_log.lines[-1] == stream_line("192.0.2.1", clock.seconds(), "TCP", 200, 12, 34, 1.5)
    manager.apply({"log_format_stream": "$remote_addr:$remote_port>$server_port $status [$upstream_addr] "
                                        "$upstream_bytes_sent/$upstream_bytes_received $proxy_protocol_addr",
                   "proxy_stream_timeout": 30, "proxy_stream_responses": 2})
    assert (manager.idle_timeout, manager.responses) == (30.0, 2)
    manager.log_line("192.0.2.1", "TCP", 200, 12, 34, 1.5, remote_port=40000, server_port=9000,
                     upstream_addr="10.1.0.1:5432", upstream_bytes_sent=34, upstream_bytes_received=12)
    assert manager.access_log.lines[-1] == "192.0.2.1:40000>9000 200 [10.1.0.1:5432] 34/12 -\n"
    with pytest.raises(ValueError):
        manager.apply({"log_format_stream": "$nope"})
    assert manager.stream.log_format is not None and manager.idle_timeout == 30.0  # kept


def test_the_default_format_is_ingress_nginx_s_line_byte_for_byte():
    record = StreamRecord("192.0.2.1", 1_790_000_000.25, "UDP", 502, 0, 7, 0.0004)
    assert compile_stream_format(DEFAULT_STREAM).render(record) == stream_line(
        "192.0.2.1", 1_790_000_000.25, "UDP", 502, 0, 7, 0.0004)


def test_values_are_escaped_as_nginx_does():
    record = StreamRecord('a"b\x01', 0.0, "TCP", 200, 1, 2, 0.0)
    assert compile_stream_format("$remote_addr ${status}x").render(record) == 'a\\x22b\\x01 200x\n'
