"""The access log: one line per finished request, written by a thread so the reactor never waits.

On the reactor, the observer formats the finished exchange's line (JSON, nginx's
``combined`` with ingress-nginx's ``upstreaminfo`` additions, or an nginx ``log_format``
template compiled by ``ingressd.logformat``; a few µs) as the bytes the file gets (UTF-8,
surrogateescape) and appends them to a bounded queue; a writer thread writes them as they are.
The waiting lines are one growing buffer of bytes (``logline.LineBuffer``, with each
line's end): with the C accelerator a round's lines are written straight into it
(``logline.join_line_into``: no str, list or deque entry a line), and the writer takes all that
waits in one call and writes it in one write, without joining or encoding lines; the bounds, the
drops and syslog's datagrams still go by whole lines. (The thread used to format
them too, but it shares the core and the GIL with the reactor: its bursts of formatting
held requests up, p99 7.0 ms against 4.2 ms in bench.py keepalive.) When the writer falls
behind (a slow disk, a full pipe), lines beyond the bound are dropped and counted
(``ingressd_access_log_dropped_lines_total``): at most ``max_pending`` lines (10,000) and
``max_pending_bytes`` bytes (16 Mi: a line can be ~100 KB when a request's URI and headers
are as long as the head limits allow, so 10,000 of them could otherwise hold a gigabyte); a line is
written whole or dropped whole, never split.

The server's proxy notes each finished exchange with the time and its clock and hands a round's
to ``observe_round`` in one call (``Proxy.round_observers``, ``interfaces.RoundObserver``), which
screens them and formats their lines together (``_end_round``); an HTTPS exchange's TLS facts are
read at its end (``observe_tls``, ``Proxy.tls_observers``). ``observe`` (``Proxy.observers``, one
exchange a call) does the same by itself: on ``ingressd.reactor``'s reactor (``call_at_round_end``)
the lines of one round of events are
formatted together when the round ends, after its writes were sent: the observer only notes the
exchange, the time and the proxy's clock (so each line is what it would have been at once), and
the round's end formats them in a row, where the same code costs less than between two requests
(docs/benchmarks.md: the log cost 5.7 µs a request for ``upstreaminfo`` with each line formatted
between two requests, 4.0 with a round's lines formatted together), in one call for the round
(``LogFormat.lines``, ``_json_lines_joined``: the reads of each line in one loop, no call a line;
the round's exchanges share the settings they ended with, so a change ends the round's lines so
far). At most
``_ROUND_LINES`` exchanges wait; the bound on waiting lines counts them. On any other reactor, or
without one, each line is formatted at once.

What is logged and how is a ``LogSettings`` read once per line from ``self.settings``:
``apply()`` swaps in a new one (SIGHUP, a ConfigMap change), so a change takes effect at the
next request without a restart.

Output ``-`` is the process's standard output, shared with twistd's own log: both write
whole lines in single calls to the same buffered writer, so lines never mix mid-line.

``reopen()`` (SIGUSR1, after logrotate moved the file away) has the writer thread close
the file and open its path again, between two batches, so no line is lost or split.

Where lines go is part of the settings too (ingress-nginx's ``access-log-path``,
``http-access-log-path``, ``stream-access-log-path``; else ``--access-log``): the HTTP lines
and the TCP/UDP services' lines (``append_line``) each to their target, opened by the writer
thread when a new one is named and closed when no longer named; with ``enable-syslog`` the
HTTP lines go to the syslog server instead (``ingressd.syslog``), as nginx's template writes
``access_log syslog:server=…`` in place of the file. Requests the controller's default backend
answered are left out unless ``enable-access-log-for-default-backend``.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from json.encoder import encode_basestring_ascii as _quote  # C: a JSON string literal
from typing import Any

from twisted.application.service import Service
from twisted.python import log

from ingressd import logline
from ingressd.logformat import LogSettings, SecondCache, log_settings_from
from ingressd.syslog import SyslogSender

_BATCH = 512  # lines waiting that wake the writer at once (else it wakes every _INTERVAL)
_ROUND_LINES = 256  # exchanges held for the round's end at most: more are formatted at once
_INTERVAL = 0.1  # seconds between the writer's rounds (a line is written at most this late)


def parse_target(value: str | None) -> str | None:
    """``--access-log``: a path, ``-`` for standard output, or ``""``/``off`` to disable (None)."""
    if value is None:
        return None
    value = str(value).strip()
    return None if value in ("", "off", "none", "false") else value


class AccessLog(Service):
    """``Proxy.observers`` callable (``observe``, or the instance) and the service running its writer thread."""

    def __init__(self, target: str, fmt: str = "json", max_pending: int = 10000,
                 settings: LogSettings | None = None, clock=time.time, reactor=None,
                 max_pending_bytes: int = 16 * 1024 * 1024):
        if settings is None:
            settings = log_settings_from({"access_log_format": fmt})
        self.target = target  # --access-log: where lines go when the settings name no path
        self.settings = settings
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.clock = clock
        # Each counter has one writing thread (a += from two threads could lose a count):
        self.overflowed = 0  # reactor: lines not queued (the bound reached, a line that failed to render)
        self.write_failed = 0  # writer thread: lines whose write failed
        self.written = 0  # writer thread
        # The waiting lines as bytes, each queue in one buffer (logline.LineBuffer): appended by the
        # reactor, taken whole by the writer thread. Both count toward one byte bound.
        self._stream_pending = logline.LineBuffer(max_pending_bytes)  # TCP/UDP services' lines
        self._pending = logline.LineBuffer(max_pending_bytes, self._stream_pending)  # HTTP lines
        self._wake = threading.Event()
        self._reopen = threading.Event()
        self.reopened = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._files: dict[str, Any] = {}  # target → open file, owned by the writer thread
        self.syslog: SyslogSender | None = None  # owned by the writer thread
        self._failing: set[str] = set()  # targets whose last write failed (logged once)
        self._route_parts = _RouteParts()  # the reactor thread's: a route's part of the json and combined lines
        # The reactor's end of a round (ingressd.reactor), None: each line formatted at once.
        self._at_round_end = getattr(reactor, "call_at_round_end", None)
        self._round: list[tuple] = []  # the reactor thread's: (exchange, time, clock) to format
        self._round_settings: LogSettings = settings  # … with these settings (a change ends the round's lines)
        # The proxy's ``end_round`` when this observes its rounds (``observe_round``): a settings
        # change and a stop hand the round's exchanges so far over first, logged as they ended.
        self.hand_over = None

    @property
    def format(self) -> str:
        return self.settings.format

    @property
    def dropped(self) -> int:
        """Lines lost, all causes: ``ingressd_access_log_dropped_lines_total``."""
        return self.overflowed + self._pending.dropped + self.write_failed

    @property
    def syslog_dropped(self) -> int:
        syslog = self.syslog
        return syslog.dropped if syslog is not None else 0

    def counts(self) -> dict[str, int]:
        """Lines written, dropped (the bound reached, a line that failed, a write that failed),
        not sent to syslog, and waiting for the writer: the admin page and /routes show them."""
        return {"written": self.written, "dropped": self.dropped, "syslog_dropped": self.syslog_dropped,
                "pending": len(self._pending) + len(self._stream_pending) + len(self._round)}

    def queued_lines(self, stream: bool = False) -> list[str]:
        """The lines waiting for the writer (the HTTP lines, or with ``stream`` the TCP/UDP services'),
        in order, as text, left waiting: what the tests read of the queue."""
        pending = self._stream_pending if stream else self._pending
        lines, bound = pending.take_lines(), pending.max_bytes
        pending.max_bytes = sys.maxsize  # put back as they were, whatever waits beside them now
        for line in lines:
            pending.append(line)
        pending.max_bytes = bound
        return [line.decode("utf-8", "surrogateescape") for line in lines]

    def apply(self, settings: LogSettings) -> None:
        """Log the next lines with these settings (built by ``ingressd.logformat.log_settings_from``);
        a new path or syslog server is taken up by the writer thread before its next batch."""
        if self.hand_over is not None:  # the exchanges that ended under the old settings: logged with them
            self.hand_over()
        self.settings = settings

    # -- the reactor side ----------------------------------------------------------------

    def observe(self, exchange) -> None:
        """``Proxy.observers``' callable (the server adds this bound method: a call of it costs
        less than a call of the instance, which goes through ``type(self).__call__``)."""
        entry = getattr(exchange, "entry", None)
        if entry is not None and not entry.access_log:
            return  # enable-access-log: "false" on the route
        settings = self.settings
        if settings.screens and self._left_out(exchange, settings):
            return
        held = self._round
        if held and settings is self._round_settings and exchange.protocol.scheme != "https" \
                and len(held) < _ROUND_LINES - 1 and len(self._pending) + len(held) < self.max_pending:
            # The usual case on a busy server's round: one more exchange noted (as below).
            held.append((exchange, time.time(), exchange.proxy.clock.seconds()))
            return
        pending = self._pending
        if len(pending) + len(held) >= self.max_pending:
            self.overflowed += 1
            return
        template = settings.template
        at_round_end = self._at_round_end
        if at_round_end is not None and (exchange.protocol.scheme != "https" or _tls_read_now(exchange, template)):
            if not held:  # the round's first: its end asked for
                at_round_end(self._end_round)
                self._round_settings = settings
                held.append((exchange, time.time(), exchange.proxy.clock.seconds()))
                return
            if settings is not self._round_settings:  # apply(): the lines so far with their settings
                self._end_round()
                held = self._round
                self._round_settings = settings
            held.append((exchange, time.time(), exchange.proxy.clock.seconds()))
            if len(held) >= _ROUND_LINES:
                self._end_round()
            return
        try:
            if template is not None:
                line = template.line(exchange, time.time())
            elif settings.format == "json":
                line = _json_line_fast(exchange, time.time(), self._route_parts)
            else:
                line = _combined_line_of(exchange, time.time(), self._route_parts)
            data = line.encode("utf-8", "surrogateescape")
        except Exception:  # one odd record must not stop the log
            self.overflowed += 1
            return
        pending.append(data)  # beyond the byte bound: dropped and counted (pending.dropped)
        # The writer wakes up by itself every _INTERVAL; waking it per request would cost a
        # thread switch per request. A large backlog wakes it at once.
        if len(pending) >= _BATCH and not self._wake.is_set():
            self._wake.set()

    __call__ = observe

    def observe_round(self, batch) -> None:
        """``Proxy.round_observers``' callable (the server's): a round's finished exchanges
        (``interfaces.FinishedNote``: the exchange, the wall time and the proxy's clock at its end),
        screened as ``observe`` screens each and their lines formatted together (``_end_round``).
        A line that reads a TLS connection's live handle was formatted at once (``observe_tls``)."""
        settings = self.settings
        template = settings.template
        at_once = template is not None and template.tls_handle
        screens = settings.screens
        room = self.max_pending - len(self._pending)
        held = []
        for note in batch:
            exchange = note[0]
            entry = getattr(exchange, "entry", None)
            if entry is not None and not entry.access_log:
                continue  # enable-access-log: "false" on the route
            if (screens and self._left_out(exchange, settings)) or (at_once and exchange.protocol.scheme == "https"):
                continue
            if len(held) >= room:
                self.overflowed += 1
                continue
            held.append(note)
        if held:
            self._end_round(held, settings)

    def observe_tls(self, exchange) -> None:
        """``Proxy.tls_observers``' callable: an exchange of a TLS client connection, at its end
        (the connection may close before the round ends): its TLS facts read now, which the
        connection remembers (``_tls_read_now``); a line reading the live TLS handle
        (``$ssl_cipher``) formatted now (``observe``), and left out of the round's."""
        template = self.settings.template
        if template is not None and template.tls_handle:
            self.observe(exchange)
        elif template is None or template.tls_facts:
            exchange.protocol.tls()

    @staticmethod
    def _left_out(exchange, settings: LogSettings) -> bool:
        """Whether the settings leave this exchange's line out (``LogSettings.screens``)."""
        if not settings.enabled or (settings.skip_urls and exchange.request_uri in settings.skip_urls):
            return True  # disable-access-log, skip-access-log-urls
        # enable-access-log-for-default-backend: "false"
        return not settings.default_backend and _default_backend(exchange.route)

    def _end_round(self, held: list | None = None, settings: LogSettings | None = None) -> None:
        """Format the lines of the exchanges held this round (see the module's docstring): one
        call for the round's lines (``LogFormat.lines``, ``_json_lines_fast``, ``_combined_lines``).
        ``held``, ``settings``: a round's (exchange, time, clock) kept by ``observe_round`` and its
        settings, in place of the ones ``observe`` held."""
        if held is None:
            held = self._round
            if not held:
                return
            self._round = []
            settings = self._round_settings
        pending = self._pending
        template = settings.template
        # The lines' bytes go straight into the waiting buffer (beyond its byte bound each line is
        # dropped whole and counted there); the line bound was checked as the exchanges were held.
        if template is not None:
            failed = template.lines(held, pending)
        elif settings.format == "json":
            failed = _json_lines_fast(held, self._route_parts, pending)
        else:
            failed = _combined_lines(held, self._route_parts, pending)
        if failed:
            self.overflowed += failed  # one odd record must not stop the log
        if len(pending) >= _BATCH and not self._wake.is_set():
            self._wake.set()

    def append_line(self, line: str) -> None:
        """A TCP/UDP service's line, formatted by ``l4.stream_log``: written to
        ``stream-access-log-path`` (else ``access-log-path``, else ``--access-log``), never to syslog
        (ingress-nginx's stream block logs to its file only)."""
        if not self.settings.enabled:
            return  # disable-access-log: the stream block's access_log off too
        pending = self._stream_pending
        if len(pending) >= self.max_pending or pending.size + self._pending.size >= self.max_pending_bytes:
            self.overflowed += 1
            return
        try:
            data = line.encode("utf-8", "surrogateescape")
        except UnicodeError:  # one odd line must not stop the log
            self.overflowed += 1
            return
        pending.append(data)

    # -- the service and its thread ------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._open(self.target)  # at start: a target that cannot be opened stops the start
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="ingressd-access-log", daemon=True)
        self._thread.start()

    def stopService(self):
        if self.hand_over is not None:  # the proxy's round in progress
            self.hand_over()
        self._end_round()  # the lines of the round in progress
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for target, file in list(self._files.items()):
            if target not in _SHARED:
                file.close()
        self._files.clear()
        if self.syslog is not None:
            self.syslog.close()
            self.syslog = None
        return super().stopService()

    def reopen(self) -> bool:
        """Open the log files' paths again (logrotate moved the files): done by the writer
        thread before its next batch. Nothing to do for standard output and error: False when
        no file is written."""
        settings = self.settings
        files = {settings.http_target or self.target, settings.stream_target or self.target} - set(_SHARED)
        if self._thread is None or not files:
            return False
        self._reopen.set()
        self._wake.set()
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait(_INTERVAL)
            self._wake.clear()
            if self._reopen.is_set():
                self._reopen.clear()
                self._reopen_files()
            settings = self.settings
            self._drain(self._pending, settings.http_target or self.target, settings.syslog)
            self._drain(self._stream_pending, settings.stream_target or self.target, None)
            self._close_unused(settings)
            if self._stopping:
                return

    def _drain(self, pending, target: str, syslog: tuple[str, int] | None) -> None:
        """Write every waiting line, until none waits (lines the reactor added during a write too: a
        stop finds them written): all that waits taken from the buffer at once and written in one
        write, as it is (whole lines, so the standard output shared with twistd's log never mixes
        mid-line); to syslog, a line a datagram."""
        while len(pending):
            if syslog is not None:
                lines = [line.decode("utf-8", "surrogateescape") for line in pending.take_lines()]
                self._sender(syslog).send(lines, self.clock())
                self.written += len(lines)
                continue
            data, count = pending.take()
            if not self._write(target, data):
                self.write_failed += count
                continue
            self.written += count

    def _sender(self, server: tuple[str, int]) -> SyslogSender:
        sender = self.syslog
        if sender is None or (sender.host, sender.port) != server:
            if sender is not None:
                sender.close()
            sender = self.syslog = SyslogSender(*server)
        return sender

    def _open(self, target: str):
        file = self._files.get(target)
        if file is None:
            if target == "-":
                file = getattr(sys.__stdout__, "buffer", None) or sys.__stdout__
            elif target == "/dev/stderr":
                file = getattr(sys.__stderr__, "buffer", None) or sys.__stderr__
            else:
                file = open(target, "ab")
            self._files[target] = file
        return file

    def _close_unused(self, settings: LogSettings) -> None:
        wanted = {settings.http_target or self.target, settings.stream_target or self.target}
        for target in [target for target in self._files if target not in wanted]:
            file = self._files.pop(target)
            if target not in _SHARED:
                try:
                    file.close()
                except OSError:
                    pass
        if settings.syslog is None and self.syslog is not None:
            self.syslog.close()
            self.syslog = None

    def _reopen_files(self) -> None:
        for target in [target for target in self._files if target not in _SHARED]:
            try:
                replacement = open(target, "ab")
            except OSError as exc:
                log.msg(f"ingressd: reopening the access log {target} failed, writing on to the old file: {exc}")
                continue
            old, self._files[target] = self._files[target], replacement
            try:
                old.close()
            except OSError:
                pass
            self.reopened += 1
            log.msg(f"ingressd: access log {target} reopened")

    def _write(self, target: str, data: bytes) -> bool:
        """Whether ``data`` was written; a failure is logged once per target until one succeeds
        (a path that cannot be opened would otherwise log every round)."""
        try:
            file = self._open(target)
            file.write(data)
            file.flush()
        except (OSError, ValueError) as exc:
            if target not in self._failing:
                self._failing.add(target)
                log.msg(f"ingressd: writing the access log {target} failed (lines dropped and counted): {exc}")
            return False
        self._failing.discard(target)
        return True


_SHARED = ("-", "/dev/stderr")  # the process's own standard output and error: never closed here


def _tls_read_now(exchange, template) -> bool:
    """A TLS client connection may close before the round ends (the exchange may even finish as
    it closes), and then its TLS facts cannot be read any more: read them now, which the
    connection remembers (``protocol.tls()``). False when the line reads the connection's live
    TLS handle (``$ssl_cipher``): that line is formatted at once."""
    if template is None or template.tls_facts:
        exchange.protocol.tls()
    return template is None or not template.tls_handle


def _default_backend(route) -> bool:
    """Whether a request was answered by the controller's default backend: no Ingress route
    (ingressd's own 404) or ``--default-backend-service`` (its route names the Service)."""
    return route is None or getattr(route.ingress, "kind", "Ingress") == "Service"


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "backslashreplace")


def _json(value: Any) -> str:
    """One JSON value, as ``json.dumps`` writes it (strings through its C escaper)."""
    kind = type(value)
    if kind is str:
        return _quote(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is bytes:
        return _quote(value.decode("utf-8", "backslashreplace"))
    if kind is float and value - value == 0.0:  # finite: json.dumps writes float's repr
        return float.__repr__(value)
    return json.dumps(value)


_utc_second = SecondCache(lambda second: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
_local_second = SecondCache(lambda second: time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second)))


def _json_line(record: tuple) -> str:
    """A JSON object per line; the same document ``json.dumps`` would give, built faster."""
    (now, rid, client, method, host, target, version, status, sent, received, duration, namespace, ingress,
     service, port, upstream_address, upstream_status, upstream, tls_version, sni, referer, agent, scheme) = record
    second = int(now)
    return (
        f'{{"time":"{_utc_second(second)}.{int((now - second) * 1000):03d}+00:00",'
        f'"request_id":{_json(rid)},"client":{_json(client)},"method":{_json(method)},'
        f'"host":{_json(host)},"uri":{_json(target)},"protocol":{_quote(f"HTTP/{_text(version)}")},'
        f'"scheme":{_json(scheme)},"status":{_json(status)},"bytes_sent":{_json(sent)},'
        f'"request_bytes":{_json(received)},"duration":{_json(round(duration, 6))},'
        f'"namespace":{_json(namespace)},"ingress":{_json(ingress)},"service":{_json(service)},'
        f'"service_port":{_json(port)},"upstream_address":{_json(upstream_address or None)},'
        f'"upstream_status":{_json(upstream_status or None)},'
        f'"upstream_duration":{_json(round(upstream, 6) if upstream is not None else None)},'
        f'"tls_version":{_json(tls_version or None)},"sni":{_json(sni or None)},'
        f'"referer":{_json(referer)},"user_agent":{_json(agent)}}}\n'
    )


_NEEDS_ESCAPE = re.compile(rb'[^\x20\x21\x23-\x5b\x5d-\x7e]')  # not printable ASCII, or " or \\


def _escaped(value: bytes | str | None) -> str:
    """nginx's escaping in text logs: ``"``, ``\\`` and non-printable bytes as ``\\xHH``."""
    if value is None:
        return "-"
    if type(value) is str:
        if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
            return value
        data = value.encode("utf-8")
    else:
        data = value
    if _NEEDS_ESCAPE.search(data) is None:
        return data.decode("ascii")
    return "".join(chr(byte) if 0x20 <= byte < 0x7F and byte not in (0x22, 0x5C) else f"\\x{byte:02X}"
                   for byte in data)


def _combined_line(record: tuple) -> str:
    """``combined`` plus ingress-nginx's upstreaminfo tail, then namespace/ingress, TLS version, SNI."""
    (now, rid, client, method, host, target, version, status, sent, received, duration, namespace, ingress,
     service, port, upstream_address, upstream_status, upstream, tls_version, sni, referer, agent, scheme) = record
    local = _local_second(int(now))
    upstream_name = f"{namespace}-{service}-{port}" if service else ""
    return (
        f'{client or "-"} - - [{local}] "{_escaped(method)} {_escaped(target)} HTTP/{_escaped(version)}" '
        f'{status} {sent} "{_escaped(referer)}" "{_escaped(agent)}" {received} {duration:.3f} '
        f'[{_escaped(upstream_name)}] [] {upstream_address or "-"} - '
        f'{f"{upstream:.3f}" if upstream is not None else "-"} {upstream_status or "-"} {rid or "-"} '
        f'{_escaped(f"{namespace}/{ingress}") if ingress else "-"} {tls_version or "-"} {_escaped(sni) if sni else "-"}\n'
    )


def _record(exchange, now: float) -> tuple:
    """The fields of the json and combined lines, in ``_json_line``'s order: what the fast
    ``_json_line_of`` and ``_combined_line_of`` are tested against."""
    route = exchange.route
    headers = exchange.headers
    tls_version, sni = exchange.protocol.tls() if exchange.protocol.scheme == "https" else ("", "")
    upstream = (exchange.upstream_ended - exchange.upstream_started
                if exchange.upstream_ended and exchange.upstream_started else None)
    sent = exchange.bytes_sent
    received = exchange.request_bytes
    if exchange.status == 101:
        up, down = exchange.tunnel_bytes
        sent += down
        received += up
    return (
        now, exchange.request_id, exchange.client_ip, exchange.method, exchange.host,
        exchange.request.target, exchange.version, exchange.status, sent, received,
        exchange.proxy.clock.seconds() - exchange.started,
        route.ingress.namespace if route is not None else "",
        route.ingress.name if route is not None else "",
        route.backend.service if route is not None else "",
        route.backend.port if route is not None else "",
        exchange.upstream_address, exchange.upstream_statuses, upstream, tls_version, sni,
        headers.get(b"referer"), headers.get(b"user-agent"), exchange.scheme,
    )


class _RouteParts:
    """A route's fixed part of the json line (namespace … service_port) and of the combined line
    (``[upstream name] [] `` and ``namespace/ingress``), made on the route's first line. Keyed by the
    route object's identity (hashing a frozen route would cost more than the formatting it saves);
    the cached route is held, so its id is not reused while cached; emptied beyond ``limit``
    routes (routes of replaced configurations are not looked up again)."""

    __slots__ = ("_parts", "limit")

    def __init__(self, limit: int = 4096):
        self._parts: dict[int, tuple] = {}
        self.limit = limit

    def of(self, route) -> tuple:
        parts = self._parts.get(id(route))
        if parts is not None and parts[0] is route:
            return parts
        if route is None:
            namespace = ingress = service = port = ""
        else:
            namespace, ingress = route.ingress.namespace, route.ingress.name
            service, port = route.backend.service, route.backend.port
        upstream_name = f"{namespace}-{service}-{port}" if service else ""
        parts = (
            route,
            f',"namespace":{_json(namespace)},"ingress":{_json(ingress)},"service":{_json(service)},'
            f'"service_port":{_json(port)},',
            f"[{_escaped(upstream_name)}] [] ",
            _escaped(f"{namespace}/{ingress}") if ingress else "-",
        )
        if len(self._parts) >= self.limit:
            self._parts.clear()
        self._parts[id(route)] = parts
        return parts


def _json_text(value: bytes | None) -> str:
    """Request bytes as a JSON string, as ``_json(_text(value))``."""
    if value is None:
        return "null"
    return _quote(value.decode("ascii") if value.isascii() else value.decode("utf-8", "backslashreplace"))


def _json_line_of(exchange, now: float, route_parts: _RouteParts, end: float | None = None) -> str:
    """``_json_line(_record(exchange, now))``, read straight from the exchange (no record tuple,
    the route's fields formatted once per route, the escaper chosen by each field's type).
    ``end``: the proxy's clock as read when the exchange finished (None: read now)."""
    if end is None:
        end = exchange.proxy.clock.seconds()
    status = exchange.status
    sent = exchange.bytes_sent
    received = exchange.request_bytes
    if status == 101:
        up, down = exchange.tunnel_bytes
        sent += down
        received += up
    protocol = exchange.protocol
    tls_version, sni = protocol.tls() if protocol.scheme == "https" else ("", "")
    began, ended = exchange.upstream_started, exchange.upstream_ended
    headers = exchange.headers
    second = int(now)
    return (
        f'{{"time":"{_utc_second(second)}.{int((now - second) * 1000):03d}+00:00",'
        f'"request_id":{_json(exchange.request_id)},"client":{_json(exchange.client_ip)},'
        f'"method":{_json_text(exchange.method)},"host":{_json(exchange.host)},'
        f'"uri":{_json_text(exchange.request.target)},"protocol":{_protocol(exchange.version)},'
        f'"scheme":{_json(exchange.scheme)},"status":{status},"bytes_sent":{sent},"request_bytes":{received},'
        f'"duration":{_seconds(end - exchange.started)}'
        f'{route_parts.of(exchange.route)[1]}"upstream_address":{_json(exchange.upstream_address or None)},'
        f'"upstream_status":{_json(exchange.upstream_statuses or None)},'
        f'"upstream_duration":{_seconds(ended - began) if ended and began else "null"},'
        f'"tls_version":{_json(tls_version or None)},"sni":{_json(sni or None)},'
        f'"referer":{_json_text(headers.get(b"referer"))},"user_agent":{_json_text(headers.get(b"user-agent"))}}}\n'
    )


def _seconds(value: float) -> str:
    """``_json(round(value, 6))`` without the rounding and the shortest-repr search for the usual
    durations: below 10^6 s (where a double tells every 6-decimal number apart) the shortest repr
    of the rounded float is its 6-decimal form without trailing zeros; from 10^-4 s (below, repr
    writes an exponent)."""
    if type(value) is float and 0.0001 <= value < 1e6:
        text = "%.6f" % value
        text = text.rstrip("0")
        return text + "0" if text[-1] == "." else text
    return _json(round(value, 6))


_PROTOCOLS = {b"1.1": '"HTTP/1.1"', b"1.0": '"HTTP/1.0"', b"2": '"HTTP/2"'}


def _protocol(version: bytes) -> str:
    text = _PROTOCOLS.get(version)
    return text if text is not None else _quote(f"HTTP/{_text(version)}")


_J, _P, _S, _T = logline.JSON, logline.PLAIN, logline.JSON_SECONDS, logline.UTC_TIME
# The json line for join_line: the text before each field, and how the field's value is written.
_JSON_FORM = (
    ('{"time":"', '+00:00","request_id":', ',"client":', ',"method":', ',"host":', ',"uri":', ',"protocol":',
     ',"scheme":', ',"status":', ',"bytes_sent":', ',"request_bytes":', ',"duration":', "",
     '"upstream_address":', ',"upstream_status":', ',"upstream_duration":', ',"tls_version":', ',"sni":',
     ',"referer":', ',"user_agent":'),
    bytes((_T, _J, _J, _J, _J, _J, _P, _J, _J, _J, _J, _S, _P, _J, _J, _S, _J, _J, _J, _J)),
    "}\n", 0,
)
_NO_TLS = ("", "")
_JSON_HEADERS = (b"referer", b"user-agent")


def _json_line_joined(exchange, now: float, route_parts: _RouteParts, join=logline.join_line,
                      end: float | None = None, header_values=logline.header_values) -> str:
    """``_json_line_of`` as one ``join_line`` call: the fields' raw values in a tuple, written
    and joined by the C accelerator (``join``: its twin in the tests)."""
    status = exchange.status
    sent = exchange.bytes_sent
    received = exchange.request_bytes
    if status == 101:
        up, down = exchange.tunnel_bytes
        sent += down
        received += up
    protocol = exchange.protocol
    tls_version, sni = protocol.tls() if protocol.scheme == "https" else _NO_TLS
    began, ended = exchange.upstream_started, exchange.upstream_ended
    referer, agent = header_values(exchange.headers, _JSON_HEADERS)  # in one pass over the headers
    version = exchange.version
    route = exchange.route
    parts = route_parts._parts.get(id(route))  # _RouteParts.of without the call when cached
    if parts is None or parts[0] is not route:
        parts = route_parts.of(route)
    return join(_JSON_FORM, (
        now, exchange.request_id, exchange.client_ip, exchange.method, exchange.host,
        exchange.request.target, _PROTOCOLS.get(version) or _protocol(version), exchange.scheme, status, sent,
        received, (exchange.proxy.clock.seconds() if end is None else end) - exchange.started, parts[1],
        exchange.upstream_address or None, exchange.upstream_statuses or None,
        ended - began if ended and began else None, tls_version or None, sni or None, referer, agent,
    ))


def _json_lines_joined(held: list[tuple], route_parts: _RouteParts, out, into=logline.join_line_into,
                       header_values=logline.header_values) -> int:
    """A round's json lines: ``_json_line_joined(exchange, now, route_parts, end=end)`` for each
    ``(exchange, now, end)`` of ``held``, its bytes appended to the ``logline.LineBuffer`` ``out``
    (``into``: ``join_line_into``, its twin in the tests), in one frame (the same reads, in a loop); a
    line whose reads fail is skipped and counted (the count returned)."""
    cached = route_parts._parts
    failed = 0
    for exchange, now, end in held:
        try:
            status = exchange.status
            sent = exchange.bytes_sent
            received = exchange.request_bytes
            if status == 101:
                up, down = exchange.tunnel_bytes
                sent += down
                received += up
            protocol = exchange.protocol
            tls_version, sni = protocol.tls() if protocol.scheme == "https" else _NO_TLS
            began, ended = exchange.upstream_started, exchange.upstream_ended
            referer, agent = header_values(exchange.headers, _JSON_HEADERS)
            version = exchange.version
            route = exchange.route
            parts = cached.get(id(route))  # _RouteParts.of without the call when cached
            if parts is None or parts[0] is not route:
                parts = route_parts.of(route)
            into(_JSON_FORM, (
                now, exchange.request_id, exchange.client_ip, exchange.method, exchange.host,
                exchange.request.target, _PROTOCOLS.get(version) or _protocol(version), exchange.scheme, status,
                sent, received, end - exchange.started, parts[1],
                exchange.upstream_address or None,
                # upstream_statuses without the property's frame after one try (its value then)
                exchange.upstream_statuses if exchange.upstream_trail else (exchange.upstream_status or None),
                ended - began if ended and began else None, tls_version or None, sni or None, referer, agent,
            ), out)
        except Exception:  # one odd record must not stop the log
            failed += 1
    return failed


def _lines_of(line_of):
    """A round's lines by ``line_of(exchange, now, route_parts, end)`` each (in the form of
    ``_json_lines_joined``, encoded as the writer writes them): the json line without the C
    accelerator, the combined line."""
    def lines(held: list[tuple], route_parts: _RouteParts, out) -> int:
        append = out.append
        failed = 0
        for exchange, now, end in held:
            try:
                append(line_of(exchange, now, route_parts, end).encode("utf-8", "surrogateescape"))
            except Exception:  # one odd record must not stop the log
                failed += 1
        return failed
    return lines


# With the C accelerator the json line is one join_line call; without it, the f-string.
_json_line_fast = _json_line_joined if logline.accelerated else _json_line_of
_json_lines_fast = _json_lines_joined if logline.accelerated else _lines_of(_json_line_of)


def _combined_line_of(exchange, now: float, route_parts: _RouteParts, end: float | None = None) -> str:
    """``_combined_line(_record(exchange, now))``, read straight from the exchange (``end``: as
    ``_json_line_of``'s)."""
    status = exchange.status
    sent = exchange.bytes_sent
    received = exchange.request_bytes
    if status == 101:
        up, down = exchange.tunnel_bytes
        sent += down
        received += up
    protocol = exchange.protocol
    tls_version, sni = protocol.tls() if protocol.scheme == "https" else ("", "")
    began, ended = exchange.upstream_started, exchange.upstream_ended
    headers = exchange.headers
    parts = route_parts.of(exchange.route)
    duration = (exchange.proxy.clock.seconds() if end is None else end) - exchange.started
    upstream_status = exchange.upstream_statuses
    rid = exchange.request_id
    return (
        f'{exchange.client_ip or "-"} - - [{_local_second(int(now))}] "{_escaped(exchange.method)} '
        f'{_escaped(exchange.request.target)} HTTP/{_escaped(exchange.version)}" {status} {sent} '
        f'"{_escaped(headers.get(b"referer"))}" "{_escaped(headers.get(b"user-agent"))}" {received} {duration:.3f} '
        f'{parts[2]}{exchange.upstream_address or "-"} - '
        f'{f"{ended - began:.3f}" if ended and began else "-"} {upstream_status or "-"} {rid or "-"} '
        f'{parts[3]} {tls_version or "-"} {_escaped(sni) if sni else "-"}\n'
    )


_combined_lines = _lines_of(_combined_line_of)


def make_access_log(settings: dict[str, Any], reactor=None) -> AccessLog | None:
    """The access log the options ask for (None: ``--access-log off``); ``reactor``: the server's,
    whose rounds of events the lines are formatted at the end of (when it ends rounds)."""
    target = parse_target(settings.get("access_log", "-"))
    if target is None:
        return None
    return AccessLog(target, settings=log_settings_from(settings), reactor=reactor)
