"""nginx's ``log_format``: a ``$variable`` template compiled once, rendered per access-log line.

``compile_log_format(text, escape)`` parses the template (``log-format-upstream``) into
literal text and variable pieces, each variable resolved to a small function reading the
finished exchange; a variable nginx would not know is a ``ValueError`` naming it (nginx
refuses such a configuration). Nothing from the template or the request is ever evaluated
or used as a format string.

Rendering follows nginx's ``ngx_http_log_module``: a variable that is *not found* (no such
header, no backend asked, no Basic credentials) is ``-`` with the default escaping and
nothing with ``escape=json`` / ``escape=none``; a variable that is set but empty prints
nothing. Default escaping writes ``"``, ``\\``, bytes below 0x20 and from 0x7F as ``\\xHH``;
``json`` escapes as ``ngx_escape_json`` (``\\"``, ``\\\\``, ``\\n``…, ``\\u00XX``); ``none``
writes values as they are. Literal text is written as it is, as nginx does.

The variables read what ``ingressd.interfaces.FinishedExchange`` declares; ``$proxy_protocol_addr``
reads the client connection's ``proxy_protocol_address`` when the listener received a PROXY
protocol header (``-`` otherwise).

``LogSettings`` is what the access log reads per line (format, template, skipped URLs, on
or off): the server builds a new one when the options change and swaps it in.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ingressd import logline
from ingressd.logformat_compile import CompiledPiece, compile_line

# ingress-nginx's default ``log-format-upstream`` (internal/ingress/controller/config/config.go).
DEFAULT_UPSTREAM = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
    '"$http_user_agent" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] '
    '$upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id'
)
ESCAPES = ("default", "json", "none")
FORMATS = ("json", "combined", "nginx")

_Getter = Callable[[Any, float], "str | bytes | None"]  # (exchange, now) -> value, None: not found


# -- escaping -------------------------------------------------------------------------------

_NEEDS_ESCAPE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')  # not printable ASCII, or " or \
_JSON_SPECIAL = re.compile(r'[\x00-\x1f"\\]')
_JSON_SHORT = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r", 0x22: '\\"', 0x5C: "\\\\"}


def _as_text(value: str | bytes) -> str:
    """A value as ``str``; bytes that are not UTF-8 kept as surrogates (written back as the same bytes)."""
    return value if type(value) is str else value.decode("utf-8", "surrogateescape")


def escape_default(value: str | bytes) -> str:
    """nginx's default log escaping: ``"``, ``\\`` and bytes < 0x20 or >= 0x7F as ``\\xHH``."""
    text = _as_text(value)
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    data = text.encode("utf-8", "surrogateescape")
    return "".join(chr(byte) if 0x20 <= byte < 0x7F and byte not in (0x22, 0x5C) else f"\\x{byte:02X}"
                   for byte in data)


def escape_json(value: str | bytes) -> str:
    """``ngx_escape_json``: ``\\"``, ``\\\\``, ``\\n \\r \\t \\b \\f``, other bytes < 0x20 as ``\\u00XX``;
    bytes from 0x80 unchanged."""
    text = _as_text(value)
    if _JSON_SPECIAL.search(text) is None:
        return text
    return _JSON_SPECIAL.sub(lambda m: _JSON_SHORT.get(ord(m.group()), f"\\u{ord(m.group()):04X}"), text)


def _escape_none(value: str | bytes) -> str:
    return _as_text(value)


# One value as a compiled line writes it (``ingressd.logformat_compile``), not found (None)
# included: the value itself when it is printable ASCII without ``"`` or ``\`` (most values:
# C string tests, no regular expression), else the escaping above.

def _write_default(value: str | bytes | None) -> str:
    if value is None:
        return "-"
    if type(value) is bytes:
        if not value.isascii():
            return escape_default(value)
        value = value.decode("ascii")
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return escape_default(value)


def _write_json(value: str | bytes | None) -> str:
    if value is None:
        return ""
    if type(value) is bytes:
        value = value.decode("ascii") if value.isascii() else _as_text(value)
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return escape_json(value)


def _write_none(value: str | bytes | None) -> str:
    return "" if value is None else _as_text(value)


_WRITERS = {"default": _write_default, "json": _write_json, "none": _write_none}


# -- the variables --------------------------------------------------------------------------

class SecondCache:
    """``format(second)`` remembered for the current second: a log line's clock part (also the
    access log's json and combined formats)."""

    __slots__ = ("_format", "_second", "_text")

    def __init__(self, format_second) -> None:
        self._format = format_second
        self._second = -1
        self._text = ""

    def __call__(self, second: int) -> str:
        if second != self._second:
            self._text = self._format(second)
            self._second = second
        return self._text


def _iso8601(second: int) -> str:
    text = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(second))
    return f"{text[:-2]}:{text[-2:]}"  # nginx: +01:00


_time_local = SecondCache(lambda second: time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second)))
_time_iso8601 = SecondCache(_iso8601)


def _version(exchange) -> bytes:
    version = exchange.version
    return b"2.0" if version == b"2" else version


def _sent(exchange) -> int:
    sent = exchange.bytes_sent
    return sent + exchange.tunnel_bytes[1] if exchange.status == 101 else sent


def _received(exchange) -> int:
    received = exchange.request_bytes
    return received + exchange.tunnel_bytes[0] if exchange.status == 101 else received


def _remote_user(exchange, now):
    value = exchange.headers.get(b"authorization")
    if not value or value[:6].lower() != b"basic ":
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True)
    except ValueError:
        return None
    user, colon, _ = decoded.partition(b":")
    return user if colon else None


# $proxy_upstream_name by route: id(route) → (route, name), the route held so that its id is
# not reused while it is here; emptied when full (routes change with the configuration). The
# compiled line reads it inline (_RAW), the getter fills it.
_upstream_names: dict[int, tuple[Any, str]] = {}
_UPSTREAM_NAMES_BOUND = 1024


def _upstream_name(exchange, now):
    route = exchange.route
    if route is not None:
        known = _upstream_names.get(id(route))
        if known is not None and known[0] is route:
            return known[1]
        name = f"{route.ingress.namespace}-{route.backend.service}-{route.backend.port}"
        if len(_upstream_names) >= _UPSTREAM_NAMES_BOUND:
            _upstream_names.clear()
        _upstream_names[id(route)] = (route, name)
        return name
    # ingress-nginx: the default server's location answers unknown hosts (upstream-default-backend);
    # the server block's own answers (a malformed request) keep its "-".
    return "upstream-default-backend" if exchange.status == 404 else "-"


def _alternative_upstream_name(exchange, now):
    """The canary's upstream name when the request went to the canary (ingress-nginx's balancer
    sets it then): the endpoint asked is one of the canary backend's."""
    entry, endpoint = exchange.entry, exchange.upstream_endpoint
    alternatives = getattr(entry, "alternatives", None)
    if alternatives and endpoint is not None:
        for _, canary in alternatives:
            route = canary.route
            if endpoint in route.backend.endpoints:
                return f"{route.ingress.namespace}-{route.backend.service}-{route.backend.port}"
    return ""


def _route_part(attribute: Callable[[Any], Any]) -> _Getter:
    def getter(exchange, now):
        route = exchange.route
        return str(attribute(route)) if route is not None else ""
    return getter


def _upstream_time(end: str) -> _Getter:
    """Seconds from asking the backend (the last try) to ``end`` (an exchange attribute)."""
    def getter(exchange, now):
        began, ended = exchange.upstream_started, getattr(exchange, end, 0.0)
        if not began or not ended:
            return None
        return f"{max(0.0, ended - began):.3f}"
    return getter


def _upstream_response_time(exchange, now):
    if not exchange.upstream_started or not exchange.upstream_ended:
        return None
    return f"{max(0.0, exchange.upstream_ended - exchange.upstream_started):.3f}"


def _upstream_response_length(exchange, now):
    # The body as the backend sent it: what reached the client when ingressd did not replace it.
    return str(_sent(exchange)) if exchange.upstream_status else None


def _upstream_status(exchange, now):
    status = exchange.upstream_statuses
    return str(status) if status else None


def _proxy_add_x_forwarded_for(exchange, now):
    """nginx's ``$proxy_add_x_forwarded_for``: the client's X-Forwarded-For with ``$remote_addr``
    appended, or ``$remote_addr`` alone (common in ingress-nginx users' JSON log formats)."""
    chain = b", ".join(exchange.headers.get_all(b"x-forwarded-for"))
    client = exchange.client_ip
    return chain + b", " + client.encode("ascii", "replace") if chain else client


def _args(exchange, now):
    target = exchange.request_uri
    at = target.find(b"?")
    return None if at < 0 else target[at + 1:]


def _uri(exchange, now):
    return exchange.path or exchange.request_uri.partition(b"?")[0]


def _ssl_protocol(exchange, now):
    if exchange.protocol.scheme != "https":
        return None
    return exchange.protocol.tls()[0] or None


def _ssl_server_name(exchange, now):
    if exchange.protocol.scheme != "https":
        return None
    return exchange.protocol.tls()[1] or None


def _ssl_cipher(exchange, now):
    if exchange.protocol.scheme != "https":
        return None
    protocol = exchange.protocol
    connection = getattr(protocol, "connection", None)  # an HTTP/2 stream's connection
    try:
        return (connection or protocol).transport.getHandle().get_cipher_name() or None
    except Exception:  # noqa: BLE001 - not an OpenSSL connection: not found, as in nginx
        return None


def _bytes_sent(exchange, now):
    """The response head as HTTP/1.1 writes it (status line, headers, blank line) plus the body."""
    head = 0
    pairs = getattr(exchange, "response_headers", None)
    if pairs:
        head = 17 + sum(len(name) + len(value) + 4 for name, value in pairs) + 2
    return str(head + _sent(exchange))


def _request(exchange, now):
    return b"%s %s HTTP/%s" % (exchange.method, exchange.request_uri, _version(exchange))


_HOSTNAME = socket.gethostname()

VARIABLES: dict[str, _Getter] = {
    "remote_addr": lambda ex, now: ex.client_ip,
    "realip_remote_addr": lambda ex, now: ex.peer_ip,
    "binary_remote_addr": None,  # not text: refused below
    "proxy_protocol_addr": lambda ex, now: getattr(ex.protocol, "proxy_protocol_address", None) or None,
    "remote_user": _remote_user,
    "proxy_add_x_forwarded_for": _proxy_add_x_forwarded_for,
    "time_local": lambda ex, now: _time_local(int(now)),
    "time_iso8601": lambda ex, now: _time_iso8601(int(now)),
    "msec": lambda ex, now: f"{now:.3f}",
    "request": _request,
    "request_method": lambda ex, now: ex.method,
    "request_uri": lambda ex, now: ex.request_uri,
    "uri": _uri,
    "document_uri": _uri,
    "args": _args,
    "query_string": _args,
    "is_args": lambda ex, now: "?" if b"?" in ex.request_uri else "",
    "server_protocol": lambda ex, now: b"HTTP/" + _version(ex),
    "scheme": lambda ex, now: ex.protocol.scheme,
    "status": lambda ex, now: f"{ex.status:03d}",
    "body_bytes_sent": lambda ex, now: str(_sent(ex)),
    "bytes_sent": _bytes_sent,
    "request_length": lambda ex, now: str(_received(ex)),
    "request_time": lambda ex, now: f"{max(0.0, ex.proxy.clock.seconds() - ex.started):.3f}",
    "proxy_upstream_name": _upstream_name,
    "proxy_alternative_upstream_name": _alternative_upstream_name,
    "upstream_addr": lambda ex, now: ex.upstream_address or None,
    "upstream_response_length": _upstream_response_length,
    "upstream_response_time": _upstream_response_time,
    "upstream_connect_time": _upstream_time("upstream_connected"),
    "upstream_header_time": _upstream_time("upstream_headed"),
    "upstream_status": _upstream_status,
    "req_id": lambda ex, now: ex.request_id,
    "request_id": lambda ex, now: ex.request_id,
    "host": lambda ex, now: ex.host,
    "server_name": lambda ex, now: ex.route.host if ex.route is not None and ex.route.host else "_",
    "server_port": lambda ex, now: str(ex.server_port),
    "hostname": lambda ex, now: _HOSTNAME,
    "pid": lambda ex, now: str(os.getpid()),
    # A number per client connection (nginx's serial): the connection object's id, an HTTP/2
    # stream's connection's.
    "connection": lambda ex, now: str(id(getattr(ex.protocol, "connection", None) or ex.protocol)),
    "pipe": lambda ex, now: ".",
    "content_length": lambda ex, now: ex.headers.get(b"content-length"),
    "content_type": lambda ex, now: ex.headers.get(b"content-type"),
    "ssl_protocol": _ssl_protocol,
    "ssl_cipher": _ssl_cipher,
    "ssl_server_name": _ssl_server_name,
    "namespace": _route_part(lambda route: route.ingress.namespace),
    "ingress_name": _route_part(lambda route: route.ingress.name),
    "service_name": _route_part(lambda route: route.backend.service),
    "service_port": _route_part(lambda route: route.backend.port),
}


def _request_header(name: bytes) -> _Getter:
    return lambda ex, now: ex.headers.get(name)


def _response_header(name: bytes) -> _Getter:
    def getter(ex, now):
        for key, value in getattr(ex, "response_headers", None) or ():
            if key.lower() == name:
                return value
        return None
    return getter


def _cookie(name: bytes) -> _Getter:
    def getter(ex, now):
        for header in ex.headers.get_all(b"cookie"):
            for part in header.split(b";"):
                key, equals, value = part.strip().partition(b"=")
                if equals and key == name:
                    return value
        return None
    return getter


def _argument(name: bytes) -> _Getter:
    def getter(ex, now):
        query = _args(ex, now)
        if not query:
            return None
        for part in query.split(b"&"):
            key, _, value = part.partition(b"=")
            if key.lower() == name:
                return value
        return None
    return getter


# nginx's prefixed variables: the rest of the name picks a header, cookie or argument.
_PREFIXES: tuple[tuple[str, Callable[[bytes], _Getter]], ...] = (
    ("sent_http_", _response_header),
    ("http_", _request_header),
    ("cookie_", lambda name: _cookie(name)),
    ("arg_", _argument),
)


def _variable(name: str) -> _Getter:
    return _resolve(name)[0]


def _resolve(name: str) -> tuple[_Getter, str | None, bytes | None]:
    """The variable's getter, its inline expression (``_INLINE``; None: call the getter) and the
    header name an ``$http_…`` expression reads (passed to the compiled line as an argument)."""
    lowered = name.lower()  # nginx's variable names are case-insensitive
    if lowered in VARIABLES:
        return VARIABLES[lowered], _INLINE.get(lowered), None  # getter None: known to nginx, not text
    for prefix, make in _PREFIXES:
        if lowered.startswith(prefix) and len(lowered) > len(prefix):
            rest = lowered[len(prefix):]
            if prefix == "cookie_":
                rest = name[len(prefix):]  # cookie names are matched as written
            elif prefix in ("http_", "sent_http_"):
                rest = rest.replace("_", "-")
            header = rest.encode("ascii")
            return make(header), ("ex.headers.get({arg})" if prefix == "http_" else None), header
    raise ValueError(f"unknown log variable ${name}")


# Variables whose values never hold a byte any escaping changes (digits, a clock, a fixed
# word): written without the escaping call.
_PLAIN = frozenset((
    "time_local", "time_iso8601", "msec", "status", "body_bytes_sent", "bytes_sent", "request_length",
    "request_time", "upstream_response_length", "upstream_response_time", "upstream_connect_time",
    "upstream_header_time", "upstream_status", "server_port", "pid", "connection", "pipe", "is_args", "scheme",
))

# The common variables as expressions of ``ex`` (the exchange) and ``now``, written into the compiled
# line in place of a getter call (each is what its ``VARIABLES`` getter returns; the tests hold them
# to it). Our own source text only: nothing from the template or a request is ever part of it.
_INLINE = {
    "remote_addr": "ex.client_ip",
    "time_local": "_time_local(int(now))",
    "request": "ex.method + b' ' + ex.request_uri + (b' HTTP/2.0' if ex.version == b'2' else b' HTTP/' + ex.version)",
    "request_time": "'%.3f' % max(0.0, ex.proxy.clock.seconds() - ex.started)",
    "upstream_response_time": ("'%.3f' % max(0.0, ex.upstream_ended - ex.upstream_started) "
                               "if ex.upstream_started and ex.upstream_ended else None"),
    "upstream_status": "str(ex.upstream_statuses) if ex.upstream_statuses else None",
    "request_method": "ex.method",
    "request_uri": "ex.request_uri",
    "status": "'%03d' % ex.status",
    "body_bytes_sent": "str(ex.bytes_sent + ex.tunnel_bytes[1] if ex.status == 101 else ex.bytes_sent)",
    "request_length": "str(ex.request_bytes + ex.tunnel_bytes[0] if ex.status == 101 else ex.request_bytes)",
    "upstream_addr": "(ex.upstream_address or None)",
    "req_id": "ex.request_id",
    "request_id": "ex.request_id",
    "host": "ex.host",
}

# With the C accelerator (``ingressd.logline``): variables whose raw value is handed to
# ``join_line`` with a kind that formats it in C, or found without a call in the usual case
# (``{getter}`` is the variable's own getter, called in the other cases). Each writes what its
# getter gives; the tests hold them to it. Our own source text only, as ``_INLINE``.
_RAW = {
    "remote_user": ("{getter}(ex, now) if ex.headers.get(b'authorization') else None", logline.ESCAPED),
    "time_local": ("_time_local._text if int(now) == _time_local._second else _time_local(int(now))",
                   logline.PLAIN),
    "proxy_alternative_upstream_name": ("{getter}(ex, now) if getattr(ex.entry, 'alternatives', None) else ''",
                                        logline.ESCAPED),
    "upstream_response_length": ("(ex.bytes_sent + ex.tunnel_bytes[1] if ex.status == 101 else ex.bytes_sent) "
                                 "if ex.upstream_status else None", logline.PLAIN),
    "status": ("ex.status", logline.STATUS),
    "request_time": ("ex.proxy.clock.seconds() - ex.started", logline.SECONDS),
    "upstream_response_time": ("ex.upstream_ended - ex.upstream_started "
                               "if ex.upstream_started and ex.upstream_ended else None", logline.SECONDS),
    "body_bytes_sent": ("ex.bytes_sent + ex.tunnel_bytes[1] if ex.status == 101 else ex.bytes_sent", logline.PLAIN),
    "request_length": ("ex.request_bytes + ex.tunnel_bytes[0] if ex.status == 101 else ex.request_bytes",
                       logline.PLAIN),
    # The backend's one status without the property's frame; after retries, the property.
    "upstream_status": ("ex.upstream_statuses if ex.upstream_trail else (ex.upstream_status or None)",
                        logline.PLAIN),
    # The name remembered for the route without the getter's frame; the getter when it is not.
    "proxy_upstream_name": ("_n[1] if (_n := _upstream_names.get(id(ex.route))) is not None and _n[0] is ex.route "
                            "else {getter}(ex, now)", logline.ESCAPED),
}

# With the C accelerator: variables whose raw value is the exchange itself, read by ``join_line``
# (``logline.REQUEST``: ``$request``'s method, request_uri and version, joined in C).
_READS = {
    "request": ("ex", logline.REQUEST),
}


# -- the compiled template ------------------------------------------------------------------

_PIECE = re.compile(r"\$(?:\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]*))")


@dataclass(frozen=True)
class LogFormat:
    """A compiled ``log_format``: ``pieces`` is (literal text before, variable function) pairs,
    ``tail`` the literal text after the last variable; ``line`` renders it in one call
    (``ingressd.logformat_compile``)."""

    text: str
    escape: str
    pieces: tuple[tuple[str, _Getter], ...]
    tail: str
    # line(exchange, now, end=None): ``end`` the proxy's clock at the exchange's end (None: read it now)
    line: Callable[..., str] = field(compare=False, repr=False, default=None)  # type: ignore[assignment]
    # lines(held, out) -> failed: each (exchange, now, end) of ``held``'s line appended to ``out``, a
    # line whose reads fail skipped and counted (the access log's round end: one call a round)
    lines: Callable[..., int] = field(compare=False, repr=False, default=None)  # type: ignore[assignment]
    # What the line reads of the client's TLS connection: its facts (``protocol.tls()``, which the
    # connection remembers once read) and its live handle (``$ssl_cipher``, gone once it closes).
    tls_facts: bool = False
    tls_handle: bool = False

    def render(self, exchange, now: float) -> str:
        """The line for a finished exchange (with its newline)."""
        return self.line(exchange, now)

    def render_slowly(self, exchange, now: float) -> str:
        """The same line, one getter and one escaping call per variable: the reference
        ``line`` is tested against."""
        out = []
        append = out.append
        if self.escape == "default":
            for literal, getter in self.pieces:
                value = getter(exchange, now)
                append(literal)
                append("-" if value is None else escape_default(value))
        else:
            escape = escape_json if self.escape == "json" else _escape_none
            for literal, getter in self.pieces:
                value = getter(exchange, now)
                append(literal)
                if value is not None:
                    append(escape(value))
        append(self.tail)
        return "".join(out)


_QUOTED = re.compile(r"\\(.)|'", re.DOTALL)
_UNQUOTE = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def unquote_nginx(text: str) -> str:
    """The template as nginx reads it between the single quotes ingress-nginx writes it in
    (``log_format upstreaminfo '…';``): ``\\"``, ``\\'``, ``\\\\`` and ``\\t``/``\\r``/``\\n`` are
    unescaped, any other backslash kept; a bare ``'`` would end nginx's string (a configuration
    nginx refuses): ``ValueError``."""
    def one(match: re.Match) -> str:
        if match.group(1) is None:
            raise ValueError("a ' that is not escaped as \\' ends nginx's quoted log_format")
        return _UNQUOTE.get(match.group(1), match.group(0))
    return _QUOTED.sub(one, text) if ("\\" in text or "'" in text) else text


def compile_log_format(text: str, escape: str = "default", quoted: bool = False) -> LogFormat:
    """Parse an nginx ``log_format`` template (``quoted``: as written in ingress-nginx's
    ConfigMap, first unescaped as nginx reads a quoted string). Raises ``ValueError`` (the
    message says what is wrong) for an unknown or malformed variable, an unknown escape or a
    line break in it."""
    if escape not in ESCAPES:
        raise ValueError(f"log format escape must be one of {', '.join(ESCAPES)}, got {escape!r}")
    text = str(text)
    if quoted:
        text = unquote_nginx(text)
    if "\n" in text or "\r" in text:
        raise ValueError("a log format must be one line (a line break would split the log's lines)")
    pieces: list[tuple[str, _Getter]] = []
    compiled: list[CompiledPiece] = []
    position = 0
    for match in _PIECE.finditer(text):
        name = match.group(1) if match.group(1) is not None else match.group(2)
        if not name:
            raise ValueError(f"invalid variable name at {text[match.start():match.start() + 10]!r} in the log format")
        getter, inline, argument = _resolve(name)
        if getter is None:
            raise ValueError(f"log variable ${name} is not supported (not text)")
        literal = text[position:match.start()]
        pieces.append((literal, getter))
        compiled.append(CompiledPiece(literal, getter, inline, argument, name.lower() in _PLAIN,
                                      _RAW.get(name.lower()) or _READS.get(name.lower())))
        position = match.end()
    tail = text[position:] + "\n"
    helpers = {"_time_local": _time_local, "_upstream_names": _upstream_names, "_write": _WRITERS[escape], "_missing": "-" if escape == "default" else ""}
    names = {getter for _, getter in pieces}
    line, lines = compile_line(compiled, tail, escape, helpers)
    return LogFormat(text, escape, tuple(pieces), tail, line, lines,
                     tls_facts=bool(names & {_ssl_protocol, _ssl_server_name}), tls_handle=_ssl_cipher in names)


def parse_escape(json_escape: Any = False, none_escape: Any = False) -> str:
    """``log-format-escape-json`` / ``log-format-escape-none`` as an escape name; ``none`` wins,
    as in ingress-nginx's template."""
    if _truthy(none_escape):
        return "none"
    return "json" if _truthy(json_escape) else "default"


def parse_skip_urls(value: Any) -> frozenset[bytes]:
    """``skip-access-log-urls``: comma-separated request URIs (``$request_uri``, matched exactly)."""
    if not value:
        return frozenset()
    items = value if isinstance(value, (list, tuple, frozenset, set)) else str(value).split(",")
    return frozenset(str(item).strip().encode("utf-8") for item in items if str(item).strip())


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class LogSettings:
    """What the access log reads per line; replaced whole when the options change."""

    format: str = "json"  # json, combined or nginx
    template: LogFormat | None = None  # the compiled format when ``format`` is nginx
    skip_urls: frozenset[bytes] = frozenset()
    enabled: bool = True  # disable-access-log
    default_backend: bool = True  # enable-access-log-for-default-backend
    http_target: str | None = None  # http-access-log-path / access-log-path; None: --access-log
    stream_target: str | None = None  # stream-access-log-path / access-log-path; None: --access-log
    syslog: tuple[str, int] | None = None  # enable-syslog: (syslog-host, syslog-port), the HTTP lines go there
    # Whether a request may be left out (the log off, skipped URLs, the default backend's left out):
    # the access log looks at the request only then (one read a request in the usual case).
    screens: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "screens", bool(not self.enabled or self.skip_urls or not self.default_backend))


# access-log-path and its http/stream variants: what nginx's ``access_log PATH`` would write to.
_STANDARD = {"/dev/stdout": "-", "/dev/stderr": "/dev/stderr"}


def parse_log_path(value: Any, key: str = "access-log-path") -> str | None:
    """An ``access-log-path`` value as the access log's target: ``-`` for ``/dev/stdout``
    (shared with twistd's own log, as ingress-nginx's image links its log files there),
    ``/dev/stderr``, or an absolute file path; None when not given. ``syslog:…`` (use
    ``enable-syslog``), ``off`` (use ``disable-access-log``), a relative path (nginx reads it
    from its prefix, which ingressd has not) and line breaks are ``ValueError``."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if text in _STANDARD:
        return _STANDARD[text]
    if text.startswith("syslog:"):
        raise ValueError(f"{key}: {text!r}: syslog targets are set by enable-syslog, syslog-host and syslog-port")
    if text == "off":
        raise ValueError(f"{key}: 'off' is not a path (disable-access-log turns the log off)")
    if not text.startswith("/") or any(c in text for c in "\r\n\0"):
        raise ValueError(f"{key}: {text!r} is not an absolute path")
    return text


_DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d)?$")
_SIZE = re.compile(r"^[0-9]+[kKmM]?$")


def parse_log_params(value: Any) -> tuple[str, ...]:
    """``access-log-params`` (nginx's ``access_log`` parameters): ``buffer=SIZE`` and
    ``flush=TIME`` are accepted (the writer thread already buffers, and writes each line
    within 0.1 s: sooner than any flush= asks); ``gzip`` (ingressd writes plain lines:
    a compressed file would not be what the pipeline reading it expects) and ``if=``
    (ingress-nginx's template already sets ``if=$loggable``) are refused, as is anything
    else: ``ValueError`` naming the parameter."""
    accepted = []
    for part in str(value or "").split():
        name, equals, rest = part.partition("=")
        if name == "buffer" and equals and _SIZE.match(rest):
            accepted.append(part)
        elif name == "flush" and equals and _DURATION.match(rest):
            accepted.append(part)
        elif name == "gzip":
            raise ValueError(f"access-log-params: {part!r} is not supported (ingressd writes the lines uncompressed)")
        elif name == "if":
            raise ValueError(f"access-log-params: {part!r} is not supported (ingress-nginx already writes "
                             "if=$loggable: skip-access-log-urls says which requests are not logged)")
        else:
            raise ValueError(f"access-log-params: {part!r} is not an access_log parameter ingressd knows "
                             "(buffer=SIZE, flush=TIME)")
    return tuple(accepted)


def parse_syslog(settings: dict[str, Any]) -> tuple[str, int] | None:
    """``enable-syslog`` with ``syslog-host`` and ``syslog-port`` (default 514), or None."""
    if not _truthy(settings.get("enable_syslog")):
        return None
    host = str(settings.get("syslog_host") or "").strip()
    if not host or any(c in host for c in " /\r\n\0"):
        raise ValueError(f"enable-syslog needs syslog-host: a host name or IP address (got {host!r})")
    port = settings.get("syslog_port")
    try:
        port = 514 if port in (None, "") else int(port)
    except (TypeError, ValueError):
        raise ValueError(f"syslog-port: {port!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ValueError(f"syslog-port: {port} is not a port number")
    return host.strip("[]"), port


def log_settings_from(settings: dict[str, Any]) -> LogSettings:
    """The access-log settings the options give (``access_log_format``, ``log_format_upstream``,
    ``log_format_escape_json``, ``log_format_escape_none``, ``skip_access_log_urls``,
    ``disable_access_log``, ``enable_access_log_for_default_backend``, ``access_log_path``,
    ``http_access_log_path``, ``stream_access_log_path``, ``access_log_params``, ``enable_syslog``,
    ``syslog_host``, ``syslog_port``). A ``log_format_upstream`` implies the nginx format.
    Without ``access_log_format``, the format is json, or nginx with ``nginx_configmap``: an
    ingress-nginx installation's log pipelines read its upstreaminfo line.
    Raises ``ValueError`` with a message naming the option."""
    template_text = settings.get("log_format_upstream")
    fmt = str(settings.get("access_log_format") or ("nginx" if settings.get("nginx_configmap") else "json"))
    if template_text:
        fmt = "nginx"
    if fmt not in FORMATS:
        raise ValueError(f"--access-log-format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    template = None
    if fmt == "nginx":
        escape = parse_escape(settings.get("log_format_escape_json"), settings.get("log_format_escape_none"))
        try:
            template = compile_log_format(template_text or DEFAULT_UPSTREAM, escape, quoted=True)
        except ValueError as exc:
            raise ValueError(f"--log-format-upstream: {exc}") from None
    parse_log_params(settings.get("access_log_params"))
    base = parse_log_path(settings.get("access_log_path"))
    default_backend = settings.get("enable_access_log_for_default_backend")
    if default_backend is None:  # ingress-nginx's default (false) with its ConfigMap, else every request
        default_backend = not settings.get("nginx_configmap")
    return LogSettings(fmt, template, parse_skip_urls(settings.get("skip_access_log_urls")),
                       not _truthy(settings.get("disable_access_log")), _truthy(default_backend),
                       parse_log_path(settings.get("http_access_log_path"), "http-access-log-path") or base,
                       parse_log_path(settings.get("stream_access_log_path"), "stream-access-log-path") or base,
                       parse_syslog(settings))
