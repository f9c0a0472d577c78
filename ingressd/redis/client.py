"""A small Redis client on Twisted: pipelined connections, a few of them, reconnected with backoff.

Why our own and not txredisapi: ingressd needs four commands (AUTH, SELECT, EVALSHA with an EVAL
fallback, PING), full control of what happens while a connection is down (a call fails at once
instead of queueing behind a reconnect, so a decision never waits for Redis to come back), and
no dependency whose reactor use we cannot see. RESP2 is small (``resp.py``).

``RedisURL.parse``: ``redis://[user:password@]host[:port][/db]``, ``rediss://`` (TLS),
``unix:///path/to/socket[?db=N&password=P]``, and ``redis+sentinel://[user:password@]host[:port],
host[:port]…/master[/db]`` (Sentinel: every connection asks the sentinels in turn for the
master's address, ``SENTINEL get-master-addr-by-name``, and checks with ``ROLE`` that it reached
the master; a connection lost or answered ``-READONLY`` (a master demoted by a failover) is
made again, so it finds the new master). ``RedisClient.call(*args)`` sends one command on the
next ready connection (round robin over ``size`` connections; each one pipelines: many commands in
flight, replies in order) and returns a Deferred of the reply; with no connection up it fails at
once with ``RedisUnavailable``. ``evalsha(script, keys, args)`` sends EVALSHA and, on NOSCRIPT
(a restarted or flushed server), EVAL once, which loads the script again.
``use_credentials(username, password)`` (a rotated ``--redis-secret``): new connections
authenticate with them; each connection already up keeps serving until a replacement is up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.python import log

from ingressd.redis.resp import ProtocolError, ReplyError, ReplyParser, encode


SENTINEL = "redis+sentinel"


class RedisUnavailable(Exception):
    """No connection to Redis is up (or the one used was lost before the reply)."""


@dataclass(frozen=True)
class RedisURL:
    scheme: str  # "redis", "rediss" or "unix"
    host: str = ""
    port: int = 6379
    path: str = ""  # unix socket
    username: str = ""
    password: str = ""
    db: int = 0
    sentinels: tuple = ()  # redis+sentinel: ((host, port), …), asked in turn
    master: str = ""  # redis+sentinel: the master's name

    @classmethod
    def parse(cls, text: str) -> "RedisURL":
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme == SENTINEL:
            return cls._parse_sentinel(parts, text)
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"expected a redis://, rediss://, unix:// or redis+sentinel:// URL, got {text!r}")
        query = parse_qs(parts.query)
        username = unquote(parts.username or "")
        password = unquote(parts.password or "") or (query.get("password") or [""])[0]
        if scheme == "unix":
            if not parts.path:
                raise ValueError(f"a unix:// URL needs the socket's path, got {text!r}")
            db = (query.get("db") or ["0"])[0]
            return cls("unix", path=parts.path, username=username, password=password, db=_db(db, text))
        if not parts.hostname:
            raise ValueError(f"a {scheme}:// URL needs a host, got {text!r}")
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError(f"a bad port in {text!r}") from None
        db = parts.path.strip("/") or (query.get("db") or ["0"])[0]
        return cls(scheme, host=parts.hostname, port=port, username=username, password=password,
                   db=_db(db, text))

    @classmethod
    def _parse_sentinel(cls, parts, text: str) -> "RedisURL":
        userinfo, _, hosts = parts.netloc.rpartition("@")
        username, _, password = userinfo.partition(":")
        sentinels = []
        for each in hosts.split(","):
            host, colon, port = each.rpartition(":") if ":" in each else (each, "", "")
            if not host or (colon and not port.isdigit()) or (port and not 0 < int(port) < 65536):
                raise ValueError(f"expected sentinels as host[:port],host[:port]… in {text!r}")
            sentinels.append((host, int(port) if port else 26379))
        names = parts.path.strip("/").split("/") if parts.path.strip("/") else []
        if not names or len(names) > 2:
            raise ValueError(f"a redis+sentinel:// URL names the master: redis+sentinel://HOST:PORT/MASTER[/DB], "
                             f"got {text!r}")
        return cls(SENTINEL, username=unquote(username), password=unquote(password),
                   db=_db(names[1] if len(names) == 2 else "0", text), sentinels=tuple(sentinels), master=names[0])

    @property
    def shown(self) -> str:
        """The URL without its password (for logs)."""
        if self.scheme == SENTINEL:
            hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"{self.scheme}://{hosts}/{self.master}/{self.db}"
        where = self.path if self.scheme == "unix" else f"{self.host}:{self.port}"
        return f"{self.scheme}://{where}/{self.db}"


def _db(value: str, text: str) -> int:
    if not value.isdigit():
        raise ValueError(f"the database in {text!r} must be a number, got {value!r}")
    return int(value)


class RedisConnection(Protocol):
    """One connection: commands written at once (pipelined), replies matched in order."""

    def __init__(self) -> None:
        self._parser = ReplyParser()
        self._waiting: list[defer.Deferred] = []
        self.ready = False
        self.retired = False  # credentials changed: closed once a replacement is up, never reconnected
        self.lost = defer.Deferred()

    def send(self, *args) -> defer.Deferred:
        waiting = defer.Deferred()
        self._waiting.append(waiting)
        self.transport.write(encode(*args))
        return waiting

    def dataReceived(self, data: bytes) -> None:
        try:
            replies = self._parser.feed(data)
        except ProtocolError as error:
            log.msg(f"redis: {error}; closing the connection")
            self.transport.loseConnection()
            return
        for reply in replies:
            if not self._waiting:
                log.msg("redis: a reply nobody asked for; closing the connection")
                self.transport.loseConnection()
                return
            waiting = self._waiting.pop(0)
            if isinstance(reply, ReplyError):
                waiting.errback(reply)
                if reply.code == "READONLY":  # a replica now (a failover): made again, to the master
                    self.transport.loseConnection()
            else:
                waiting.callback(reply)

    def connectionLost(self, reason=None) -> None:
        self.ready = False
        waiting, self._waiting = self._waiting, []
        for each in waiting:
            each.errback(RedisUnavailable("the connection to redis was lost"))
        self.lost.callback(None)


class RedisClient:
    """``size`` connections to one Redis, each kept up (reconnected with backoff up to ``max_backoff``)."""

    def __init__(self, url: RedisURL, reactor: Any, size: int = 2, connect_timeout: float = 1.0,
                 max_backoff: float = 2.0, tls_options: Any = None):
        self.url = url
        self.reactor = reactor
        self.size = size
        self.connect_timeout = connect_timeout
        self.max_backoff = max_backoff
        self.tls_options = tls_options
        self._ready: list[RedisConnection] = []
        self._next = 0
        self._stopped = True
        self._pending: list = []  # connects in progress and scheduled retries
        self._scripts: dict[str, bytes] = {}  # sha1 → script
        self.connects = 0  # connections made (metrics; a reconnect counts again)
        self.master_address: tuple | None = None  # redis+sentinel: where the sentinels last said it is

    # -- life -------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopped = False
        for _ in range(self.size):
            self._connect(0.0)

    def stop(self) -> None:
        self._stopped = True
        for each in self._pending:
            if hasattr(each, "cancel") and (not hasattr(each, "active") or each.active()):
                each.cancel()
        self._pending = []
        for connection in list(self._ready):
            connection.transport.loseConnection()
        self._ready = []

    @property
    def connected(self) -> int:
        return len(self._ready)

    @property
    def started(self) -> bool:
        return not self._stopped

    def use_credentials(self, username: str, password: str) -> None:
        """Authenticate as ``username`` (empty: the default user) with ``password`` from now on:
        every connection up is replaced by one made with them (the old one serves until then)."""
        if (username, password) == (self.url.username, self.url.password):
            return
        self.url = replace(self.url, username=username, password=password)
        if self._stopped:
            return
        for connection in self._ready:
            if not connection.retired:
                connection.retired = True
                self._connect(0.0)

    def _endpoint(self, address: tuple | None = None):
        from twisted.internet import endpoints

        url = self.url
        if url.scheme == "unix":
            return endpoints.UNIXClientEndpoint(self.reactor, url.path, timeout=self.connect_timeout)
        host, port = address or (url.host, url.port)
        tcp = self._tcp(host, port)
        if url.scheme == "rediss":
            from twisted.internet.ssl import optionsForClientTLS

            options = self.tls_options or optionsForClientTLS(url.host)
            return endpoints.wrapClientTLS(options, tcp)
        return tcp

    def _tcp(self, host: str, port: int):
        from twisted.internet import endpoints

        if _is_ipv4(host):
            return endpoints.TCP4ClientEndpoint(self.reactor, host, port, timeout=self.connect_timeout)
        return endpoints.HostnameEndpoint(self.reactor, host.encode("idna"), port, timeout=self.connect_timeout)

    def _connect(self, delay: float) -> None:
        if self._stopped:
            return
        if delay:
            call = self.reactor.callLater(delay, self._connect_now, delay)
            self._pending.append(call)
        else:
            self._connect_now(0.0)

    def _connect_now(self, delay: float) -> None:
        self._pending = [each for each in self._pending if not hasattr(each, "active") or each.active()]
        if self._stopped:
            return
        if self.url.scheme == SENTINEL:
            attempt = self._ask_sentinels()
            attempt.addCallback(lambda address: self._endpoint(address).connect(_factory()))
        else:
            attempt = self._endpoint().connect(_factory())
        self._pending.append(attempt)
        attempt.addCallback(self._handshake)
        attempt.addCallbacks(self._up, lambda failure: self._retry(failure, delay))
        attempt.addBoth(lambda result: self._forget(attempt, result))

    def _forget(self, attempt, result):
        if attempt in self._pending:
            self._pending.remove(attempt)
        return None

    @defer.inlineCallbacks
    def _handshake(self, connection: RedisConnection):
        url = self.url
        try:
            if url.password:
                yield connection.send(*(("AUTH", url.username, url.password) if url.username
                                        else ("AUTH", url.password)))
            if url.db:
                yield connection.send("SELECT", url.db)
            if url.scheme == SENTINEL:
                role = yield connection.send("ROLE")
                if not role or role[0] != b"master":
                    raise RedisUnavailable(f"the address the sentinels gave for {url.master} is not its master now")
        except Exception:
            connection.transport.loseConnection()
            raise
        return connection

    def _up(self, connection: RedisConnection) -> None:
        if self._stopped:
            connection.transport.loseConnection()
            return
        self.connects += 1
        connection.ready = True
        self._ready.append(connection)
        connection.lost.addCallback(lambda _: self._down(connection))
        retired = [each for each in self._ready if each.retired]
        if retired:  # a replacement is up: one connection made with the old credentials goes
            self._ready.remove(retired[0])
            retired[0].transport.loseConnection()

    def _down(self, connection: RedisConnection) -> None:
        if connection in self._ready:
            self._ready.remove(connection)
        if not self._stopped and not connection.retired:
            self._connect(0.05)

    def _retry(self, failure, delay: float) -> None:
        if failure.check(defer.CancelledError) or self._stopped:
            return
        if delay == 0.0:
            log.msg(f"redis: cannot connect to {self.url.shown}: {failure.getErrorMessage()}; retrying")
        self._connect(min(max(delay * 2, 0.05), self.max_backoff))

    @defer.inlineCallbacks
    def _ask_sentinels(self):
        """The master's (host, port), from the first sentinel that knows it."""
        problems = []
        for host, port in self.url.sentinels:
            try:
                connection = yield self._tcp(host, port).connect(_factory())
                try:
                    asked = connection.send("SENTINEL", "get-master-addr-by-name", self.url.master)
                    reply = yield asked.addTimeout(self.connect_timeout, self.reactor)
                finally:
                    connection.transport.loseConnection()
                if reply:
                    address = (reply[0].decode("ascii"), int(reply[1]))
                    if address != self.master_address:
                        log.msg(f"redis: the sentinels give {address[0]}:{address[1]} as master {self.url.master}")
                        self.master_address = address
                    return address
                problems.append(f"{host}:{port} does not know it")
            except defer.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the next sentinel may answer
                problems.append(f"{host}:{port}: {error}")
        raise RedisUnavailable(f"no sentinel gave the master {self.url.master}: {'; '.join(problems)}")

    # -- commands ---------------------------------------------------------------------------

    def call(self, *args) -> defer.Deferred:
        """The reply to one command; fails at once with RedisUnavailable when no connection is up."""
        if not self._ready:
            return defer.fail(RedisUnavailable(f"no connection to redis at {self.url.shown}"))
        self._next = (self._next + 1) % len(self._ready)
        return self._ready[self._next].send(*args)

    def evalsha(self, script: bytes, keys: tuple = (), args: tuple = ()) -> defer.Deferred:
        """Run ``script`` by its SHA1; when the server does not know it (NOSCRIPT), by its text."""
        sha = hashlib.sha1(script).hexdigest()
        self._scripts[sha] = script

        def unknown(failure):
            failure.trap(ReplyError)
            if failure.value.code != "NOSCRIPT":
                return failure
            return self.call("EVAL", script, len(keys), *keys, *args)

        return self.call("EVALSHA", sha, len(keys), *keys, *args).addErrback(unknown)


def _factory() -> Factory:
    factory = Factory.forProtocol(RedisConnection)
    factory.noisy = False  # a connection per sentinel question: no start/stop lines in the log
    return factory


def _is_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(part.isdigit() and int(part) < 256 for part in parts)
