"""The FastCGI parameters of a request: nginx's ``fastcgi_params``, a route's own, its index.

ingress-nginx's FCGI location is ``include /etc/nginx/fastcgi_params;`` (nginx's stock file,
``STOCK`` below), ``fastcgi_index`` from the ``fastcgi-index`` annotation and one
``fastcgi_param`` per key of the ``fastcgi-params-configmap`` ConfigMap, values being nginx
text with ``$variables``. ``FastCGI`` is a route's part of that, compiled when routes are
built (an unknown variable is refused then, as ``nginx -t`` refuses it); ``cgi_params`` makes
the pairs sent for one request. nginx also passes every request header as ``HTTP_NAME``
(``fastcgi_pass_request_headers on``), same-named ones joined, as nginx 1.23+ does; names
nginx ignores (an underscore or another character than letters, digits and ``-``) and the
``Proxy`` header are not passed (httpoxy: nginx's own advice is ``fastcgi_param HTTP_PROXY ""``).
A ConfigMap key replaces the stock parameter of the same name (php-fpm keeps the last of two).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import unquote_to_bytes

from ingressd.proxy.upstream import STREAMED

# nginx's $document_root with no root directive, as in ingress-nginx: the build's --prefix + "html".
DOCUMENT_ROOT = "/usr/local/nginx/html"
SERVER_SOFTWARE = "ingressd"  # nginx/$nginx_version; ingressd says what it is

# nginx's conf/fastcgi_params (HTTPS: "if_not_empty", so absent on plain HTTP).
STOCK = (
    ("QUERY_STRING", "$query_string"),
    ("REQUEST_METHOD", "$request_method"),
    ("CONTENT_TYPE", "$content_type"),
    ("CONTENT_LENGTH", "$content_length"),
    ("SCRIPT_NAME", "$fastcgi_script_name"),
    ("REQUEST_URI", "$request_uri"),
    ("DOCUMENT_URI", "$document_uri"),
    ("DOCUMENT_ROOT", "$document_root"),
    ("SERVER_PROTOCOL", "$server_protocol"),
    ("REQUEST_SCHEME", "$scheme"),
    ("HTTPS", "$https"),
    ("GATEWAY_INTERFACE", "CGI/1.1"),
    ("SERVER_SOFTWARE", "$server_software"),
    ("REMOTE_ADDR", "$remote_addr"),
    ("REMOTE_PORT", "$remote_port"),
    ("SERVER_ADDR", "$server_addr"),
    ("SERVER_PORT", "$server_port"),
    ("SERVER_NAME", "$server_name"),
    ("REDIRECT_STATUS", "200"),
)
_IF_NOT_EMPTY = frozenset(("HTTPS",))

# The variables a value may use; $http_NAME and $arg_NAME besides.
VARIABLES = frozenset((
    "fastcgi_script_name", "document_root", "realpath_root", "document_uri", "uri", "request_uri",
    "query_string", "args", "is_args", "request_method", "content_type", "content_length",
    "server_protocol", "scheme", "https", "remote_addr", "remote_port", "server_addr", "server_port", "server_name", "host",
    "server_software", "fastcgi_path_info", "request_id",
))
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
_NAME = re.compile(r"^[A-Za-z0-9.\-_]+$")


class FastCGIParamError(ValueError):
    """A parameter value nginx would not accept (an unknown variable, a lone ``$``)."""


def compile_value(text: str) -> tuple[tuple[bool, str], ...]:
    """nginx text as parts: (False, literal) or (True, variable name)."""
    parts: list[tuple[bool, str]] = []
    at = 0
    for match in _VARIABLE.finditer(text):
        if match.start() > at:
            parts.append((False, text[at:match.start()]))
        name = match.group(1) or match.group(2)
        if name not in VARIABLES and not name.startswith(("http_", "arg_")):
            raise FastCGIParamError(f"unknown variable ${name}")
        parts.append((True, name))
        at = match.end()
    rest = text[at:]
    if "$" in rest or any("$" in part for is_var, part in parts if not is_var):
        raise FastCGIParamError(f"invalid variable in {text!r}")
    if rest:
        parts.append((False, rest))
    return tuple(parts)


@dataclass(frozen=True)
class FastCGI:
    """A route's FastCGI settings (``UpstreamSettings.fastcgi``): ``fastcgi-index`` and the
    ``fastcgi-params-configmap`` ConfigMap's parameters, compiled."""

    index: str = ""
    params: tuple[tuple[str, tuple[tuple[bool, str], ...]], ...] = ()

    @classmethod
    def of(cls, index: str = "", params: Iterable[tuple[str, str]] = ()) -> "FastCGI":
        """Raises FastCGIParamError for a name or value nginx would refuse."""
        compiled = []
        for name, value in sorted(params):
            if not _NAME.match(name):
                raise FastCGIParamError(f"invalid parameter name {name!r}")
            compiled.append((name, compile_value(value)))
        return cls(index, tuple(compiled))


_DEFAULT = FastCGI()
_STOCK = tuple((name, compile_value(value)) for name, value in STOCK)


_HEADER_NAME = re.compile(rb"^[a-z0-9-]+$")  # nginx's valid header names (ignore_invalid_headers on)


def _header_param(name: bytes) -> bytes | None:
    # A name nginx ignores (``x_real_ip`` would pass for X-Real-IP's HTTP_X_REAL_IP), a pseudo-header,
    # and Proxy (httpoxy) are not passed.
    if name == b"proxy" or not _HEADER_NAME.match(name):
        return None
    return b"HTTP_" + name.upper().replace(b"-", b"_")


def header_params(pairs: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request headers as ``HTTP_NAME`` parameters, same names joined (``; `` for Cookie)."""
    joined: dict[bytes, list[bytes]] = {}
    for name, value in pairs:
        param = _header_param(name.lower())
        if param is not None:
            joined.setdefault(param, []).append(value)
    return [(param, (b"; " if param == b"HTTP_COOKIE" else b", ").join(values)) for param, values in joined.items()]


class _Variables:
    """The request's nginx variables, computed when first asked."""

    def __init__(self, exchange: Any, fastcgi: FastCGI, body_length: int | None):
        self.exchange = exchange
        self.fastcgi = fastcgi
        self.body_length = body_length
        target = exchange.target
        path, _, query = target.partition(b"?")
        self.uri = unquote_to_bytes(path)
        self.query = query
        self._headers: dict[bytes, bytes] | None = None

    def header(self, name: bytes) -> bytes:
        if self._headers is None:
            self._headers = {}
            for key, value in header_params(self.exchange.headers.pairs):
                self._headers[key] = value
        return self._headers.get(b"HTTP_" + name.upper().replace(b"-", b"_"), b"")

    def __call__(self, name: str) -> bytes:
        exchange = self.exchange
        if name in ("fastcgi_script_name", "fastcgi_path_info"):
            if name == "fastcgi_path_info":
                return b""  # no fastcgi_split_path_info in ingress-nginx
            uri = self.uri
            if uri.endswith(b"/") and self.fastcgi.index:
                uri += self.fastcgi.index.encode("ascii")
            return uri
        if name in ("uri", "document_uri"):
            return self.uri
        if name in ("document_root", "realpath_root"):
            return DOCUMENT_ROOT.encode()
        if name == "request_uri":
            return exchange.request_uri
        if name in ("query_string", "args"):
            return self.query
        if name == "is_args":
            return b"?" if self.query else b""
        if name == "request_method":
            return exchange.method
        if name == "content_type":
            return self.header(b"content-type")
        if name == "content_length":
            length = self.body_length
            if length is None or length == STREAMED:
                return self.header(b"content-length")
            return b"%d" % length
        if name == "server_protocol":
            version = exchange.version
            return b"HTTP/2.0" if version.startswith(b"2") else b"HTTP/" + version
        if name == "scheme":
            return b"https" if exchange.https else b"http"
        if name == "https":
            return b"on" if exchange.https else b""
        if name == "remote_addr":
            return exchange.client_ip.encode("ascii", "replace")
        if name == "remote_port":
            # The client's port; none once the real-IP settings took the address from a header
            # (nginx's realip leaves no port then).
            port = getattr(exchange.protocol, "peer_port", 0)
            return b"%d" % port if port and exchange.client_ip == exchange.peer_ip else b""
        if name == "server_addr":
            return getattr(exchange.protocol, "server_ip", "").encode("ascii", "replace")
        if name == "server_port":
            return b"%d" % exchange.server_port
        if name == "server_name":
            host = exchange.route.host if exchange.route is not None else ""
            return (host or "_").encode("ascii", "replace")  # Ingress hosts are ASCII (IDNs as punycode)
        if name == "host":
            return (exchange.host or "").encode("ascii", "replace")
        if name == "server_software":
            return SERVER_SOFTWARE.encode()
        if name == "request_id":
            return str(exchange.request_id or "").encode("ascii", "replace")
        if name.startswith("http_"):
            return self.header(name[5:].encode("ascii"))
        if name.startswith("arg_"):
            return _argument(self.query, name[4:].encode("ascii"))
        return b""  # compile_value lets no other name through


def _argument(query: bytes, name: bytes) -> bytes:
    for piece in query.split(b"&"):
        key, _, value = piece.partition(b"=")
        if key.lower() == name.lower():
            return value
    return b""


def _render(parts: tuple[tuple[bool, str], ...], variables: _Variables) -> bytes:
    return b"".join(variables(text) if is_var else text.encode("utf-8") for is_var, text in parts)


def cgi_params(exchange: Any, fastcgi: FastCGI | None, body_length: int | None) -> list[tuple[bytes, bytes]]:
    """The parameters sent for ``exchange`` (read as an ``interfaces.RequestView``, with its
    ``version`` and ``server_port``): nginx's stock ones, the route's, then the headers."""
    fastcgi = fastcgi or _DEFAULT
    variables = _Variables(exchange, fastcgi, body_length)
    own = {name for name, _ in fastcgi.params}
    params: list[tuple[bytes, bytes]] = []
    for name, parts in _STOCK:
        if name in own:
            continue
        value = _render(parts, variables)
        if value or name not in _IF_NOT_EMPTY:
            params.append((name.encode("ascii"), value))
    for name, parts in fastcgi.params:
        params.append((name.encode("ascii"), _render(parts, variables)))
    taken = {name for name, _ in params}
    params.extend(pair for pair in header_params(exchange.headers.pairs) if pair[0] not in taken)
    return params


