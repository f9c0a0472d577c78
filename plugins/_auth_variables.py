"""nginx variables in external-authentication annotations (``auth-url``, ``auth-signin``,
``auth-cache-key``, ``auth-proxy-set-headers`` values), parsed when routes are built and
substituted per request as data.

A ``Template`` is literal bytes and variables. ``expand(exchange, safe=True)`` percent-encodes
every substituted byte that is not visible ASCII (and ``#``), so a header value or query
argument can never put a space, CR, LF or NUL into the URL or header it lands in (nginx pastes
variables as they are; only ``$http_NAME`` values could carry such bytes there, and nginx would
send a broken request). ``$escaped_request_uri`` is ``$request_uri`` escaped as ingress-nginx's
``set_escape_uri`` does (set-misc-nginx-module: everything but letters, digits and ``-_.~!*'()``).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Callable

from ingressd import AnnotationError

from ._cookies import cookie

_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]*))")
_NAME = re.compile(r"[A-Za-z0-9_]+")
# set_escape_uri (set-misc-nginx-module's uri_component table): these stay as they are.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~!*'()")
_HEX = b"0123456789ABCDEF"


def escape_uri(value: bytes) -> bytes:
    """nginx ``set_escape_uri``: every byte but letters, digits and ``-_.~!*'()`` as ``%XX``."""
    out = bytearray()
    for byte in value:
        if byte in _UNRESERVED:
            out.append(byte)
        else:
            out += b"%" + _HEX[byte >> 4:(byte >> 4) + 1] + _HEX[byte & 15:(byte & 15) + 1]
    return bytes(out)


def make_safe(value: bytes) -> bytes:
    """A substituted value made safe in a URL or header: every byte outside visible ASCII
    (space, CR, LF, NUL, 8-bit) and ``#`` as ``%XX``; the rest as it is, as nginx pastes it."""
    if all(0x21 <= byte <= 0x7E and byte != 0x23 for byte in value):
        return value
    out = bytearray()
    for byte in value:
        if 0x21 <= byte <= 0x7E and byte != 0x23:
            out.append(byte)
        else:
            out += b"%" + _HEX[byte >> 4:(byte >> 4) + 1] + _HEX[byte & 15:(byte & 15) + 1]
    return bytes(out)


def _header(name: bytes) -> Callable[[Any], bytes]:
    def value(exchange: Any) -> bytes:
        found = exchange.headers.get_all(name)
        if name == b"cookie":
            return b"; ".join(found)
        return found[0] if found else b""
    return value


def _cookie(name: bytes) -> Callable[[Any], bytes]:
    def value(exchange: Any) -> bytes:
        return cookie(exchange.headers, name) or b""
    return value


def _arg(name: bytes) -> Callable[[Any], bytes]:
    wanted = name.lower()

    def value(exchange: Any) -> bytes:
        for item in exchange.query.split(b"&"):
            key, _, found = item.partition(b"=")
            if key.lower() == wanted:
                return found
        return b""
    return value


def _remote_user(exchange: Any) -> bytes:
    """nginx's ``$remote_user``: the user of a Basic Authorization header, whoever checks it."""
    scheme, _, encoded = (exchange.headers.get(b"authorization") or b"").strip().partition(b" ")
    if scheme.lower() != b"basic":
        return b""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""
    user, colon, _ = decoded.partition(b":")
    return user if colon else b""


def _connection_scheme(exchange: Any) -> bytes:
    return b"https" if exchange.https else b"http"


VARIABLES: dict[str, Callable[[Any], bytes]] = {
    "host": lambda exchange: exchange.host.encode("utf-8"),
    "best_http_host": lambda exchange: exchange.headers.get(b"host") or exchange.host.encode("utf-8"),
    "scheme": _connection_scheme,  # nginx's $scheme: the client's own connection
    "pass_access_scheme": lambda exchange: exchange.scheme.encode("ascii"),  # with a trusted proxy's say
    "https": lambda exchange: b"on" if exchange.https else b"",
    "request_uri": lambda exchange: exchange.request_uri,
    "escaped_request_uri": lambda exchange: escape_uri(exchange.request_uri),
    "uri": lambda exchange: exchange.path.encode("utf-8"),
    "document_uri": lambda exchange: exchange.path.encode("utf-8"),
    "args": lambda exchange: exchange.query,
    "query_string": lambda exchange: exchange.query,
    "is_args": lambda exchange: b"?" if exchange.query else b"",
    "request_method": lambda exchange: exchange.method,
    "remote_addr": lambda exchange: exchange.client_ip.encode("ascii"),
    "remote_user": _remote_user,
    "request_id": lambda exchange: exchange.request_id.encode("ascii"),
    "req_id": lambda exchange: exchange.request_id.encode("ascii"),
    "server_port": lambda exchange: str(exchange.server_port).encode("ascii"),
    "server_name": lambda exchange: exchange.host.encode("utf-8"),
}
PREFIXED = {"http_": _header, "cookie_": _cookie, "arg_": _arg}


def _variable(name: str, where: str) -> Callable[[Any], bytes]:
    if name in VARIABLES:
        return VARIABLES[name]
    for prefix, make in PREFIXED.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            rest = name[len(prefix):]
            if prefix == "http_":
                return make(rest.lower().replace("_", "-").encode("ascii"))
            return make(rest.encode("ascii"))
    shown = "$" + name if name else "$"
    raise AnnotationError(f"{where}{shown} is not a variable ingressd substitutes (supported: "
                          f"{', '.join('$' + v for v in VARIABLES)}, $http_NAME, $cookie_NAME, $arg_NAME)")


class Template:
    """Literal bytes and variables, expanded per request."""

    __slots__ = ("parts", "text")

    def __init__(self, parts: tuple, text: str):
        self.parts = parts  # bytes, or a function of the exchange giving bytes
        self.text = text

    @property
    def literal(self) -> bytes | None:
        """The value when it has no variable, else None."""
        if all(isinstance(part, bytes) for part in self.parts):
            return b"".join(self.parts)
        return None

    def expand(self, exchange: Any, safe: bool = True) -> bytes:
        """The value for this request; ``safe``: substituted bytes made safe (``make_safe``)."""
        out = []
        for part in self.parts:
            if isinstance(part, bytes):
                out.append(part)
            else:
                value = part(exchange)
                out.append(make_safe(value) if safe else value)
        return b"".join(out)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def parse_template(text: str, where: str = "") -> Template:
    """``text`` with ``$name`` and ``${name}`` variables; an unknown variable is an AnnotationError."""
    parts: list = []
    at = 0
    for match in _VARIABLE.finditer(text):
        name = match.group(1) if match.group(1) is not None else match.group(2)
        if match.start() > at:
            parts.append(text[at:match.start()].encode("utf-8"))
        parts.append(_variable(name, where))
        at = match.end()
    if at < len(text):
        parts.append(text[at:].encode("utf-8"))
    return Template(tuple(parts), text)
