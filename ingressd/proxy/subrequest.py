"""Sub-requests: HTTP requests ingressd itself sends for a plugin (a mirror copy, an auth check).

``SubrequestClient.fetch(method, url, headers, body)`` returns a Deferred of a ``SubResponse``
(status, headers, the body up to a bound) or fails with a ``SubrequestError``; it never raises
into the caller. ``discard=True`` reads the answer to its end and keeps nothing of its body
(a mirror). Requests go through the server's pooled upstream protocols (``HTTP`` and ``HTTPS``
of ``interfaces.UpstreamProtocol``), so keep-alive connections are reused; a ``_Call`` stands
where an exchange would (``interfaces.ExchangeForUpstream``). A host name is resolved by the
system resolver on the reactor's thread pool (``reactor.nameResolver``), never blocking the
reactor, and remembered for ``RESOLVE_TTL`` seconds (ingress-nginx's ``resolver … valid=30s``);
an IP literal is used as it is. Plugins reach the server's client as ``context.subrequests``
(``BuildContext``), declared as ``interfaces.Subrequests``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IResolutionReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from ingressd.features import BackendTLS, UpstreamSettings

Header = tuple[bytes, bytes]

MAX_BODY = 65536  # bytes of an answer's body kept unless the caller says otherwise
RESOLVE_TTL = 30.0  # seconds a resolved name is used (ingress-nginx: resolver … valid=30s)
_CACHE_SIZE = 1024  # names remembered at most
# Framing and hop-by-hop headers: the upstream protocol frames the request itself.
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"te", b"trailer",
                      b"upgrade", b"proxy-connection", b"expect", b"http2-settings"))
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


class SubrequestError(Exception):
    """A sub-request failed. ``cause`` is a short fixed word: ``invalid_url``, ``resolve_failed``,
    ``connect_failed``, ``connect_timeout``, ``read_timeout``, ``send_timeout``, ``too_large``,
    ``backend_closed``, ``invalid_response``…; ``timeout`` when it was a timeout."""

    def __init__(self, message: str, cause: str = "error", timeout: bool = False):
        super().__init__(message)
        self.cause = cause
        self.timeout = timeout


@dataclass(frozen=True, slots=True)
class TargetURL:
    """An ``http``/``https`` URL, checked: ``host`` a DNS name or an IP literal (no brackets),
    ``target`` the path and query to request (``/`` when the URL has none)."""

    scheme: str
    host: str
    port: int
    target: bytes
    has_path: bool  # the URL gave a path (``http://h/x``), not only an authority (``http://h``)

    @property
    def host_header(self) -> bytes:
        """The Host header for it: the host, and the port unless it is the scheme's."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return (host if self.port == default else f"{host}:{self.port}").encode("ascii")


def parse_url(text: str) -> TargetURL:
    """Check ``text`` as a sub-request URL: scheme ``http`` or ``https``, a host, an optional
    port, a path and query of visible ASCII; no user information, no fragment, no control
    character. Raises ``SubrequestError`` (cause ``invalid_url``) saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise SubrequestError("the URL is empty", "invalid_url")
    if any(ord(c) < 0x21 or ord(c) > 0x7e for c in text):
        raise SubrequestError(f"the URL {text!r} contains a space, a control or a non-ASCII character", "invalid_url")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise SubrequestError(f"the URL {text!r} is not valid: {exc}", "invalid_url") from None
    if parts.scheme not in ("http", "https"):
        raise SubrequestError(f"the URL {text!r} must start with http:// or https://", "invalid_url")
    if "@" in parts.netloc:
        raise SubrequestError(f"the URL {text!r} must not carry user information", "invalid_url")
    if parts.fragment or "#" in text:
        raise SubrequestError(f"the URL {text!r} must not have a fragment", "invalid_url")
    host = parts.hostname or ""
    if not host:
        raise SubrequestError(f"the URL {text!r} has no host", "invalid_url")
    if not _is_ip(host) and (not _HOST.fullmatch(host) or len(host) > 253):
        raise SubrequestError(f"the URL {text!r} has an invalid host {host!r}", "invalid_url")
    if port == 0:
        raise SubrequestError(f"the URL {text!r} has port 0", "invalid_url")
    target = parts.path or "/"
    if parts.query or text.endswith("?"):
        target += "?" + parts.query
    return TargetURL(parts.scheme, host, port or (443 if parts.scheme == "https" else 80),
                     target.encode("ascii"), bool(parts.path))


@dataclass(frozen=True, slots=True)
class SubResponse:
    """A sub-request's answer: the status, the headers as received (names in lower case) and
    the body (empty when it was discarded)."""

    status: int
    headers: tuple[Header, ...]
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: bytes) -> list[bytes]:
        """Every value of header ``name`` (lower case), in order (e.g. ``set-cookie``)."""
        return [value for key, value in self.headers if key == name]


class SubrequestClient:
    """Sends sub-requests through the server's upstream protocols (``upstreams``: name →
    ``interfaces.UpstreamProtocol``, "HTTP" and "HTTPS"), on ``clock`` (the reactor).

    ``resolver(name)`` → a Deferred of a list of addresses; by default the reactor's
    ``nameResolver`` (the system resolver, in a thread). The timeouts are the defaults of every
    request (the server's ``--proxy-*-timeout``); ``tls`` how HTTPS URLs are spoken to
    (nginx's defaults: no verification, no SNI).
    """

    def __init__(self, upstreams: Mapping[str, Any], clock: Any, resolver: Callable[[str], Any] | None = None,
                 connect_timeout: float = 5.0, read_timeout: float = 60.0, send_timeout: float = 60.0,
                 tls: BackendTLS | None = None):
        self.upstreams = upstreams
        self.clock = clock
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.send_timeout = send_timeout
        self.tls = tls
        self._resolver = resolver or self._system_resolve
        self._resolved: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._turn = 0
        self.in_flight = 0  # sub-requests sent and not yet answered (or failed)
        self.sent = 0

    def fetch(self, method: bytes, url: "str | TargetURL", headers: Iterable[Header] = (), body: bytes | None = None,
              *, max_body: int = MAX_BODY, discard: bool = False, connect_timeout: float | None = None,
              read_timeout: float | None = None, send_timeout: float | None = None,
              tls: BackendTLS | None = None) -> defer.Deferred:
        """Send ``method url`` with ``headers`` (the caller's; framing headers are dropped and a
        Host made from the URL when none is given) and ``body`` (bytes, or None for none).

        The Deferred fires with a ``SubResponse``: its body up to ``max_body`` bytes (an answer
        announcing or sending more fails with cause ``too_large``), or nothing of it when
        ``discard``. It fails with a ``SubrequestError``, never raises."""
        try:
            if not isinstance(url, TargetURL):
                url = parse_url(url)
            lines = _request_headers(headers, url)
        except SubrequestError as exc:
            return defer.fail(exc)
        settings = UpstreamSettings(
            connect_timeout=self.connect_timeout if connect_timeout is None else connect_timeout,
            read_timeout=self.read_timeout if read_timeout is None else read_timeout,
            send_timeout=self.send_timeout if send_timeout is None else send_timeout,
            tls=(tls or self.tls) if url.scheme == "https" else None,
        )
        upstream = self.upstreams.get("HTTPS" if url.scheme == "https" else "HTTP")
        if upstream is None:
            return defer.fail(SubrequestError(f"this server does not speak {url.scheme.upper()}", "no_protocol"))
        call = _Call(self, method, url, lines, body, settings, upstream, max_body, discard)
        self.in_flight += 1
        self.sent += 1
        resolving = self._address(url.host, settings.connect_timeout)
        resolving.addCallbacks(call.go, call.fail_with)
        return call.result

    # -- names ----------------------------------------------------------------------------

    def _address(self, host: str, timeout: float) -> defer.Deferred:
        if _is_ip(host):
            return defer.succeed(host)
        now = self.clock.seconds()
        known = self._resolved.get(host)
        if known is not None and known[0] > now:
            return defer.succeed(self._one_of(known[1]))

        def resolved(addresses) -> str:
            addresses = tuple(addresses)
            if not addresses:
                raise SubrequestError(f"{host} has no address", "resolve_failed")
            if len(self._resolved) >= _CACHE_SIZE:
                self._resolved.clear()
            self._resolved[host] = (self.clock.seconds() + RESOLVE_TTL, addresses)
            return self._one_of(addresses)

        def failed(failure: Failure):
            if failure.check(SubrequestError):
                return failure
            if failure.check(defer.TimeoutError, defer.CancelledError):
                raise SubrequestError(f"resolving {host} timed out", "resolve_failed", timeout=True)
            raise SubrequestError(f"resolving {host} failed: {failure.getErrorMessage()}", "resolve_failed")

        try:
            resolving = defer.maybeDeferred(self._resolver, host)
        except Exception as exc:  # noqa: BLE001 - a resolver that raises is a failed resolution
            resolving = defer.fail(exc)
        resolving.addTimeout(timeout, self.clock)
        return resolving.addCallbacks(resolved, failed)

    def _one_of(self, addresses: Sequence[str]) -> str:
        self._turn += 1
        return addresses[self._turn % len(addresses)]

    def _system_resolve(self, host: str) -> defer.Deferred:
        receiver = _Addresses()
        self.clock.nameResolver.resolveHostName(receiver, host, 0)
        return receiver.done


@implementer(IResolutionReceiver)
class _Addresses:
    """Collects what ``reactor.nameResolver`` finds for a name."""

    def __init__(self):
        self.done = defer.Deferred()
        self.found: list[str] = []

    def resolutionBegan(self, resolution) -> None:
        pass

    def addressResolved(self, address) -> None:
        if isinstance(address, (IPv4Address, IPv6Address)) and address.host not in self.found:
            self.found.append(address.host)

    def resolutionComplete(self) -> None:
        self.done.callback(self.found)


class _NoClient:
    """What a backend connection corks around each read: nothing, for a sub-request."""

    def cork(self) -> None:
        pass

    def uncork(self) -> None:
        pass


_NO_CLIENT = _NoClient()


class _Call:
    """One sub-request on an upstream connection: where an exchange would stand
    (``interfaces.ExchangeForUpstream``)."""

    protocol = _NO_CLIENT

    def __init__(self, client: SubrequestClient, method: bytes, url: TargetURL, headers: list, body: bytes | None,
                 settings: UpstreamSettings, upstream: Any, max_body: int, discard: bool):
        self.client = client
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.settings = settings
        self.upstream = upstream
        self.max_body = max_body
        self.discard = discard
        self.result = defer.Deferred(self._cancelled)
        self.address = ""
        self.connection = None
        self._cancel_connect = None
        self._status = 0
        self._headers: tuple = ()
        self._pieces: list[bytes] = []
        self._size = 0
        self._retried = False
        self._over = False

    def go(self, address: str) -> None:
        if self._over:
            return
        self.address = address
        self._cancel_connect = self.upstream.acquire(address, self.url.port, self.settings, self._connected,
                                                     self._connect_failed)

    def _connected(self, connection) -> None:
        self._cancel_connect = None
        if self._over:
            connection.release()
            return
        self.connection = connection
        self._status = 0
        self._pieces = []
        self._size = 0
        body = self.body
        connection.start(self, self.method, self.url.target, list(self.headers),
                         None if body is None else len(body), self.settings.read_timeout,
                         self.settings.send_timeout)
        if body:
            connection.send_body(body)
        if body is not None:
            connection.end_body()

    def _connect_failed(self, error: Exception) -> None:
        self._cancel_connect = None
        self._failed(error)

    # -- what the connection calls (interfaces.ExchangeForUpstream) ------------------------

    def upstream_head(self, connection, status: int, headers, length) -> None:
        self._status = status
        self._headers = tuple(headers)
        if not self.discard and length is not None and length > self.max_body:
            connection.abort()
            self._fail(SubrequestError(f"the answer of {self._where()} is {length} bytes long "
                                       f"(at most {self.max_body} are read)", "too_large"))

    def upstream_body(self, data: bytes) -> None:
        if self.discard or self._over:
            return
        self._size += len(data)
        if self._size > self.max_body:
            connection, self.connection = self.connection, None
            if connection is not None:
                connection.abort()
            self._fail(SubrequestError(f"the answer of {self._where()} is over {self.max_body} bytes", "too_large"))
            return
        self._pieces.append(data)

    def upstream_done(self, connection, reusable: bool) -> None:
        self.connection = None
        if reusable:
            connection.release()
        else:
            connection.close()
        if not self._over:
            answer = SubResponse(self._status, self._headers, b"".join(self._pieces))
            self._finish()
            self.result.callback(answer)

    def upstream_failed(self, connection, error: Exception) -> None:
        self.connection = None
        self._failed(error, connection)

    def upstream_upgraded(self, connection, rest: bytes) -> None:
        self.connection = None
        connection.abort()
        self._fail(SubrequestError(f"{self._where()} switched protocols", "invalid_response"))

    def upstream_write_paused(self) -> None:
        pass  # the body was written whole; the transport holds what the backend has not taken

    def upstream_write_resumed(self) -> None:
        pass

    # -- ending -----------------------------------------------------------------------------

    def _failed(self, error: Exception, connection=None) -> None:
        if self._over:
            return
        # A pooled connection the backend had closed meanwhile: once more, on a fresh one.
        if getattr(error, "retryable", False) and connection is not None and connection.reused and not self._retried:
            self._retried = True
            self.go(self.address)
            return
        cause = getattr(error, "cause", "error")
        self._fail(SubrequestError(f"{self._where()}: {error}", cause, bool(getattr(error, "timeout", False))))

    def fail_with(self, failure: Failure) -> None:
        error = failure.value
        if not isinstance(error, SubrequestError):
            error = SubrequestError(f"{self._where()}: {failure.getErrorMessage()}")
        self._fail(error)

    def _fail(self, error: SubrequestError) -> None:
        if self._over:
            return
        self._finish()
        self.result.errback(Failure(error))

    def _finish(self) -> None:
        self._over = True
        self.client.in_flight -= 1
        self._pieces = []

    def _cancelled(self, _result) -> None:
        """The caller cancelled the Deferred: drop the connection (or the attempt)."""
        if self._over:
            return
        if self._cancel_connect is not None:
            self._cancel_connect()
            self._cancel_connect = None
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.abort()
        self._finish()  # the Deferred fails with CancelledError

    def _where(self) -> str:
        return f"{self.method.decode('latin-1')} {self.url.scheme}://{self.url.host}:{self.url.port}"


def _request_headers(headers: Iterable[Header], url: TargetURL) -> list[Header]:
    lines: list[Header] = []
    host = False
    for name, value in headers:
        name = name.lower()
        if name in _FRAMING:
            continue
        if b"\r" in value or b"\n" in value or b"\0" in value:
            raise SubrequestError(f"the header {name.decode('latin-1')} has a line break", "invalid_header")
        if name == b"host":
            host = True
        lines.append((name, value))
    if not host:
        lines.insert(0, (b"host", url.host_header))
    return lines


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
