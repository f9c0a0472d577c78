"""The ingress-nginx ConfigMap's access-log keys, without a server: ``access-log-path``,
``http-access-log-path``, ``stream-access-log-path``, ``access-log-params``,
``enable-access-log-for-default-backend``, ``enable-syslog``/``syslog-host``/``syslog-port``
read into ``LogSettings`` (refusals with their reasons), and the access log's writer thread
writing HTTP and TCP/UDP lines where they say, switching live, and sending syslog datagrams
in nginx's format to a UDP receiver on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import time
from types import SimpleNamespace

import pytest

from harness import wait_for
from ingressd.accesslog import AccessLog
from ingressd.config.nginx_configmap import read_configmap
from ingressd.logformat import log_settings_from, parse_log_params, parse_log_path, parse_syslog
from ingressd.plugin_manager import load_plugins
from ingressd.syslog import PRI, SyslogSender, syslog_message, syslog_time
from ingressd.compat.check import server_settings_from
from test_log_format import exchange

NAME = "ingress-nginx/ingress-nginx-controller"


def _read(data):
    plugins = load_plugins()
    options = {option.name: option.coerce for option in plugins.options}
    return read_configmap(NAME, data, plugins.annotations, options, server_settings_from(()))


# -- reading the keys -------------------------------------------------------------------------


def test_paths_as_nginx_means_them():
    assert parse_log_path("/dev/stdout") == "-"
    assert parse_log_path("/dev/stderr") == "/dev/stderr"
    assert parse_log_path(" /var/log/ingress/access.log ") == "/var/log/ingress/access.log"
    assert parse_log_path("") is None and parse_log_path(None) is None
    for bad, words in [("syslog:server=10.0.0.1", "enable-syslog"), ("off", "disable-access-log"),
                       ("logs/access.log", "not an absolute path"), ("/tmp/a\nb", "not an absolute path")]:
        with pytest.raises(ValueError, match=words):
            parse_log_path(bad)


def test_access_log_params_buffer_and_flush_accepted_the_rest_refused_with_a_reason():
    assert parse_log_params("buffer=16k flush=5m") == ("buffer=16k", "flush=5m")
    assert parse_log_params("") == ()
    for bad, words in [("gzip", "uncompressed"), ("gzip=9", "uncompressed"), ("if=$loggable", "skip-access-log-urls"),
                       ("buffer=lots", "buffer=SIZE"), ("flush=soon", "flush=TIME"), ("open_file_cache=10", "knows")]:
        with pytest.raises(ValueError, match=words):
            parse_log_params(bad)


def test_syslog_needs_a_host_and_defaults_to_port_514():
    assert parse_syslog({}) is None
    assert parse_syslog({"enable_syslog": False, "syslog_host": "10.0.0.1"}) is None
    assert parse_syslog({"enable_syslog": True, "syslog_host": "logs.example"}) == ("logs.example", 514)
    assert parse_syslog({"enable_syslog": "true", "syslog_host": "127.0.0.1", "syslog_port": "5514"}) == ("127.0.0.1", 5514)
    with pytest.raises(ValueError, match="needs syslog-host"):
        parse_syslog({"enable_syslog": True})
    with pytest.raises(ValueError, match="syslog-port"):
        parse_syslog({"enable_syslog": True, "syslog_host": "h", "syslog_port": 70000})


def test_settings_paths_http_and_stream_before_the_common_path():
    settings = log_settings_from({"access_log_path": "/var/log/a.log", "stream_access_log_path": "/dev/stderr"})
    assert (settings.http_target, settings.stream_target) == ("/var/log/a.log", "/dev/stderr")
    settings = log_settings_from({"access_log_path": "/var/log/a.log", "http_access_log_path": "/dev/stdout"})
    assert (settings.http_target, settings.stream_target) == ("-", "/var/log/a.log")
    assert (log_settings_from({}).http_target, log_settings_from({}).stream_target) == (None, None)


def test_the_default_backend_is_logged_unless_ingress_nginx_s_configmap_says_otherwise():
    assert log_settings_from({}).default_backend is True  # ingressd alone: every request
    assert log_settings_from({"nginx_configmap": NAME}).default_backend is False  # ingress-nginx's default
    assert log_settings_from({"nginx_configmap": NAME, "enable_access_log_for_default_backend": True}).default_backend


def test_the_configmap_keys_become_settings():
    reading = _read({"access-log-path": "/var/log/ingress.log", "http-access-log-path": "/dev/stdout",
                     "stream-access-log-path": "/dev/stderr", "access-log-params": "buffer=16k flush=1m",
                     "enable-access-log-for-default-backend": "true", "enable-syslog": "true",
                     "syslog-host": "127.0.0.1", "syslog-port": "5140"})
    assert reading.usable and not reading.warnings, reading
    settings = dict(reading.settings)
    assert settings["access-log-path"] == "/var/log/ingress.log" and settings["syslog-port"] == 5140
    assert settings["enable-syslog"] is True and settings["enable-access-log-for-default-backend"] is True
    # ingress-nginx's defaults ask for nothing (the image's /var/log/nginx/access.log is its stdout).
    reading = _read({"access-log-path": "/var/log/nginx/access.log", "syslog-port": "514", "enable-syslog": "false"})
    assert reading.usable and not reading.settings and not reading.warnings


@pytest.mark.parametrize("data, words", [
    ({"access-log-params": "gzip"}, "access-log-params: 'gzip' is not supported"),
    ({"access-log-params": "if=$loggable"}, "if=$loggable"),
    ({"enable-syslog": "true"}, "enable-syslog needs syslog-host"),
    ({"enable-syslog": "true", "syslog-host": "h", "syslog-port": "x"}, "syslog-port"),
    ({"access-log-path": "syslog:server=10.0.0.1:514"}, "syslog targets are set by enable-syslog"),
    ({"stream-access-log-path": "relative.log"}, "stream-access-log-path: 'relative.log' is not an absolute path"),
    ({"enable-access-log-for-default-backend": "maybe"}, "enable-access-log-for-default-backend"),
])
def test_a_bad_value_refuses_the_configmap_with_its_reason(data, words):
    reading = _read(data)
    assert not reading.usable
    assert words in "\n".join(reading.refusals), reading.refusals


# -- the writer thread ------------------------------------------------------------------------


def _started(log: AccessLog) -> AccessLog:
    log.startService()
    return log


def _text(path) -> str:
    return path.read_text() if path.exists() else ""


def test_http_and_stream_lines_go_to_their_paths_and_move_live(tmp_path):
    first, http, stream = tmp_path / "first.log", tmp_path / "http.log", tmp_path / "stream.log"
    log = _started(AccessLog(str(first), settings=log_settings_from({"log_format_upstream": "$request_uri"})))
    try:
        log(exchange(request_uri=b"/one"))
        log.append_line("[10.0.0.1] tcp one\n")
        wait_for(lambda: "/one" in _text(first) and "tcp one" in _text(first), "both lines in --access-log")
        log.apply(log_settings_from({"log_format_upstream": "$request_uri", "http_access_log_path": str(http),
                                     "stream_access_log_path": str(stream)}))
        log(exchange(request_uri=b"/two"))
        log.append_line("[10.0.0.1] tcp two\n")
        wait_for(lambda: _text(http) == "/two\n" and _text(stream) == "[10.0.0.1] tcp two\n", "the new paths")
        assert _text(first) == "/one\n[10.0.0.1] tcp one\n"
        assert str(first) not in log._files  # no longer named: closed by the writer
        # SIGUSR1 after logrotate moved both files away: both are opened again.
        http.rename(tmp_path / "http.log.1")
        stream.rename(tmp_path / "stream.log.1")
        assert log.reopen() is True
        wait_for(lambda: log.reopened == 2, "both files reopened")
        log(exchange(request_uri=b"/three"))
        wait_for(lambda: _text(http) == "/three\n", "the line in the new file")
        # disable-access-log: the stream lines too, as ingress-nginx's stream block.
        log.apply(log_settings_from({"disable_access_log": True, "stream_access_log_path": str(stream)}))
        log.append_line("[10.0.0.1] tcp off\n")
        assert not log.queued_lines(stream=True)
    finally:
        log.stopService()


def test_standard_output_is_not_reopened():
    log = _started(AccessLog("-"))
    try:
        assert log.reopen() is False
    finally:
        log.stopService()


def test_default_backend_requests_are_left_out_unless_asked():
    settings = log_settings_from({"log_format_upstream": "$request_uri", "nginx_configmap": NAME})
    log = AccessLog("-", settings=settings)
    service_default = SimpleNamespace(ingress=SimpleNamespace(kind="Service", namespace="d", name="fallback"),
                                      backend=SimpleNamespace(service="fallback", port=80))
    log(exchange(request_uri=b"/routed"))
    log(exchange(request_uri=b"/nothing", route=None, status=404))
    log(exchange(request_uri=b"/fallback", route=service_default))
    assert log.queued_lines() == ["/routed\n"]
    log.apply(log_settings_from({"log_format_upstream": "$request_uri", "nginx_configmap": NAME,
                                 "enable_access_log_for_default_backend": "true"}))
    log(exchange(request_uri=b"/nothing", route=None, status=404))
    log(exchange(request_uri=b"/fallback", route=service_default))
    assert log.queued_lines() == ["/routed\n", "/nothing\n", "/fallback\n"]


# -- syslog -----------------------------------------------------------------------------------


def test_the_syslog_message_is_nginx_s():
    now = time.mktime((2026, 12, 6, 9, 4, 5, 0, 0, -1))
    assert syslog_time(now) == "Dec  6 09:04:05"
    assert PRI == 190  # local7.info
    assert syslog_message('1.2.3.4 - - "GET / HTTP/1.1" 200\n', now, "node-1") == \
        b'<190>Dec  6 09:04:05 node-1 nginx: 1.2.3.4 - - "GET / HTTP/1.1" 200'


@pytest.fixture
def receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def test_syslog_lines_go_to_the_server_not_the_file(tmp_path, receiver):
    port = receiver.getsockname()[1]
    path = tmp_path / "access.log"
    log = _started(AccessLog(str(path), settings=log_settings_from(
        {"log_format_upstream": "$remote_addr $status $request_uri", "enable_syslog": True,
         "syslog_host": "127.0.0.1", "syslog_port": port})))
    try:
        log(exchange(request_uri=b"/to-syslog"))
        log.append_line("[10.0.0.1] stream\n")  # the stream lines stay in the file
        data = receiver.recv(65535)
        assert re.fullmatch(rb"<190>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d \S+ nginx: 203\.0\.113\.7 200 /to-syslog",
                            data), data
        assert data.split(b" nginx: ")[0].endswith(socket.gethostname().lower().encode())
        wait_for(lambda: _text(path) == "[10.0.0.1] stream\n", "the stream line in the file")
        log.apply(log_settings_from({"log_format_upstream": "$request_uri"}))  # syslog off, live
        log(exchange(request_uri=b"/back-to-file"))
        wait_for(lambda: "/back-to-file" in _text(path), "the HTTP line in the file again")
        assert log.syslog is None
    finally:
        log.stopService()


def test_a_datagram_that_cannot_be_sent_is_dropped_and_counted():
    sender = SyslogSender("name.invalid", 514)
    sender.send(["a\n", "b\n"], time.time())
    assert (sender.sent, sender.dropped) == (0, 2)
    sender = SyslogSender("127.0.0.1", 9, hostname="h")
    sender.send(["x" * 70000], time.time())  # cut to one datagram's size, never an exception
    assert sender.sent + sender.dropped == 1
    sender.close()


def test_syslog_drops_are_a_metric():
    from twisted.internet.task import Clock

    from ingressd.admin.metrics import Metrics

    log = AccessLog("-")
    log.syslog = SyslogSender("name.invalid", 514)
    log.syslog.send(["a\n"], time.time())
    metrics = Metrics(Clock())
    metrics.attach(access_log=log)
    assert log.syslog_dropped == 1
    assert b"ingressd_access_log_syslog_dropped_lines_total 1.0" in metrics.render()[0]


def test_a_path_that_cannot_be_opened_drops_and_counts_and_says_so_once(tmp_path):
    from twisted.python import log as twisted_log

    said = []
    twisted_log.addObserver(said.append)
    log = _started(AccessLog(str(tmp_path / "ok.log"), settings=log_settings_from(
        {"log_format_upstream": "$request_uri", "http_access_log_path": str(tmp_path / "missing" / "a.log")})))
    try:
        for n in range(3):
            log(exchange(request_uri=b"/lost"))
            wait_for(lambda: log.dropped == n + 1, "the line dropped")
        failures = [e for e in said if "writing the access log" in "".join(map(str, e.get("message") or ()))]
        assert len(failures) == 1
    finally:
        log.stopService()
        twisted_log.removeObserver(said.append)
