"""``ingressd check --redis URL``: is this Redis usable for ingressd's global limits? (Blocking; a CLI.)

One finding per line, in the order ingressd itself would meet them: the master found through
the sentinels (``redis+sentinel://``), the connection, AUTH (and SELECT), that the server is a
master (a replica refuses the decisions' writes), that the decision scripts load (SCRIPT LOAD,
the SHA1 the servers will call), and the round-trip time of a few PINGs against
``--redis-timeout``. ``probe`` returns the findings; the first failed step ends the list. It uses
plain sockets and ``resp.py`` (no reactor): the server's client is not involved, so what this
says does not depend on its reconnect logic.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import statistics
import time
from dataclasses import dataclass
from typing import Callable

from ingressd.redis.client import SENTINEL, RedisURL
from ingressd.redis.decisions import LEAKY_BUCKETS, SLIDING_WINDOW
from ingressd.redis.resp import ReplyError, ReplyParser, encode

OK, WARNING, PROBLEM = "ok", "warning", "problem"


@dataclass(frozen=True)
class Finding:
    level: str  # OK, WARNING or PROBLEM
    text: str

    def __str__(self) -> str:
        return f"redis: {self.level}: {self.text}"


class _Connection:
    def __init__(self, sock: socket.socket, timeout: float):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.parser = ReplyParser()
        self.replies: list = []

    def ask(self, *args):
        self.sock.sendall(encode(*args))
        while not self.replies:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.replies += self.parser.feed(data)
        return self.replies.pop(0)

    def close(self) -> None:
        self.sock.close()


def _connect(url: RedisURL, address: tuple[str, int] | None, timeout: float) -> _Connection:
    if url.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(url.path)
    else:
        host, port = address or (url.host, url.port)
        sock = socket.create_connection((host, port), timeout=timeout)
        if url.scheme == "rediss":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    return _Connection(sock, timeout)


def _fails(reply) -> bool:
    return isinstance(reply, ReplyError)


def probe(url: RedisURL, timeout: float = 0.005, pings: int = 5, connect_timeout: float = 2.0,
          clock: Callable[[], float] = time.perf_counter) -> list[Finding]:
    """What ingressd would meet using ``url`` with ``--redis-timeout timeout``."""
    findings: list[Finding] = []
    address = None
    if url.scheme == SENTINEL:
        address = _ask_sentinels(url, connect_timeout, findings)
        if address is None:
            return findings
    where = url.shown if address is None else f"{address[0]}:{address[1]} (master {url.master})"
    try:
        connection = _connect(url, address, connect_timeout)
    except (OSError, ssl.SSLError) as error:
        findings.append(Finding(PROBLEM, f"cannot connect to {where}: {error}"))
        return findings
    try:
        findings.append(Finding(OK, f"connected to {where}"))
        if not _handshake(connection, url, findings):
            return findings
        _scripts(connection, findings)
        if findings[-1].level != PROBLEM:
            _latency(connection, timeout, pings, clock, findings)
    except (OSError, ConnectionError) as error:
        findings.append(Finding(PROBLEM, f"the connection to {where} failed: {error}"))
    finally:
        connection.close()
    return findings


def _ask_sentinels(url: RedisURL, connect_timeout: float, findings: list[Finding]):
    for host, port in url.sentinels:
        try:
            connection = _connect(RedisURL("redis", host=host, port=port), None, connect_timeout)
            try:
                reply = connection.ask("SENTINEL", "get-master-addr-by-name", url.master)
            finally:
                connection.close()
        except (OSError, ConnectionError) as error:
            findings.append(Finding(WARNING, f"sentinel {host}:{port}: {error}"))
            continue
        if _fails(reply) or not reply:
            findings.append(Finding(WARNING, f"sentinel {host}:{port} does not know the master {url.master}"
                                    + (f": {reply}" if reply else "")))
            continue
        address = (reply[0].decode("ascii"), int(reply[1]))
        findings.append(Finding(OK, f"sentinel {host}:{port} gives the master {url.master} at "
                                    f"{address[0]}:{address[1]}"))
        return address
    findings.append(Finding(PROBLEM, f"no sentinel gave the master {url.master}"))
    return None


def _handshake(connection: _Connection, url: RedisURL, findings: list[Finding]) -> bool:
    if url.password:
        reply = connection.ask(*(("AUTH", url.username, url.password) if url.username else ("AUTH", url.password)))
        if _fails(reply):
            findings.append(Finding(PROBLEM, f"AUTH{' as ' + url.username if url.username else ''} refused: {reply}"))
            return False
        findings.append(Finding(OK, f"AUTH accepted{' as ' + url.username if url.username else ''}"))
    if url.db:
        reply = connection.ask("SELECT", url.db)
        if _fails(reply):
            findings.append(Finding(PROBLEM, f"SELECT {url.db} refused: {reply}"))
            return False
    reply = connection.ask("PING")
    if _fails(reply):
        hint = " (give the password in the URL or with --redis-secret)" if reply.code == "NOAUTH" else ""
        findings.append(Finding(PROBLEM, f"PING refused: {reply}{hint}"))
        return False
    info = connection.ask("INFO", "server")
    version = ""
    if not _fails(info) and isinstance(info, bytes):
        for line in info.decode("utf-8", "replace").splitlines():
            if line.startswith(("redis_version:", "valkey_version:")):
                version = line.replace(":", " ", 1)
    role = connection.ask("ROLE")
    if not _fails(role) and role and role[0] != b"master":
        findings.append(Finding(PROBLEM, f"the server is a {role[0].decode('ascii', 'replace')}, not a master: every "
                                         "decision would be refused (READONLY)"))
        return False
    findings.append(Finding(OK, f"the server answers{' (' + version + ')' if version else ''}"
                                f"{', database ' + str(url.db) if url.db else ''}"))
    return True


def _scripts(connection: _Connection, findings: list[Finding]) -> None:
    for name, script in (("sliding window (global-rate-limit)", SLIDING_WINDOW),
                         ("leaky buckets (limit-scope: global)", LEAKY_BUCKETS)):
        reply = connection.ask("SCRIPT", "LOAD", script)
        if _fails(reply):
            findings.append(Finding(PROBLEM, f"the {name} script does not load: {reply}"))
            return
        expected = hashlib.sha1(script).hexdigest()
        if reply.decode("ascii", "replace") != expected:
            findings.append(Finding(PROBLEM, f"the {name} script loads as {reply!r}, not {expected}"))
            return
    findings.append(Finding(OK, "the decision scripts load (SCRIPT LOAD)"))


def _latency(connection: _Connection, timeout: float, pings: int, clock, findings: list[Finding]) -> None:
    times = []
    for _ in range(pings):
        started = clock()
        connection.ask("PING")
        times.append(clock() - started)
    median = statistics.median(times)
    text = (f"{pings} PINGs: min {min(times) * 1000:.2f} ms, median {median * 1000:.2f} ms, "
            f"max {max(times) * 1000:.2f} ms (--redis-timeout {timeout * 1000:g} ms)")
    if median >= timeout:
        findings.append(Finding(WARNING, text + ": most decisions would time out and get the failure mode's answer"))
    elif max(times) >= timeout:
        findings.append(Finding(WARNING, text + ": some decisions would time out"))
    else:
        findings.append(Finding(OK, text))


def exit_status(findings: list[Finding]) -> int:
    """3 when Redis cannot be used as given, else 0 (warnings do not change it)."""
    return 3 if any(finding.level == PROBLEM for finding in findings) else 0
