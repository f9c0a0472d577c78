"""Response compression: the ConfigMap's ``use-gzip`` and ``enable-brotli``, as nginx's gzip and
ngx_brotli filters compress what ingress-nginx proxies.

ingress-nginx's template (nginx.tmpl) renders, in the http block: with ``use-gzip`` ``gzip on``,
``gzip_comp_level`` (``gzip-level``, 1), ``gzip_disable`` (``gzip-disable``: a regular expression
on User-Agent, case-insensitive; ``msie6``: MSIE 4 to 6 without SV1), ``gzip_http_version 1.1``,
``gzip_min_length`` (``gzip-min-length``, 256), ``gzip_types`` (``gzip-types``), ``gzip_proxied
any`` and ``gzip_vary on``; with ``enable-brotli`` ``brotli on``, ``brotli_comp_level``
(``brotli-level``, 4), ``brotli_min_length`` (``brotli-min-length``, 20) and ``brotli_types``
(``brotli-types``). Both filters compress a response (the backend's or ingressd's own) only when:

- its status is 200, 403 or 404, and the request is not HEAD;
- it has no Content-Encoding of its own (a backend's gzip is passed on as it is);
- its Content-Type is ``text/html`` or one of the types (``*``: any);
- its length is at least the minimum, or unknown (streamed);
- the client's Accept-Encoding lists ``br`` or ``gzip`` with a quality above 0 (``*`` is not
  read as either, as nginx does not); gzip also needs HTTP/1.1 or later and a User-Agent
  ``gzip-disable`` does not match.

Brotli comes first when both are on and accepted (its filter runs before gzip's in nginx's
chain, and gzip then sees the Content-Encoding). A compressed response loses its Content-Length
(it is sent chunked, or as HTTP/2 DATA frames) and Accept-Ranges, its ETag is weakened (``W/``;
an ETag that is not a quoted string is removed, as ngx_http_weak_etag) and it carries
``Content-Encoding``. Every response that could be compressed but for the client's
Accept-Encoding carries ``Vary: Accept-Encoding`` (gzip_vary; with brotli alone too, where nginx
adds it only when gzip_vary is on as well: a cache must never hand a compressed answer to a client
that did not ask for it). The body is compressed as it streams, each piece flushed (nginx flushes
with each unbuffered read), so server-sent events arrive as they are sent; nothing is held whole.

Options (each the ConfigMap key of the same name, applied live): ``--use-gzip``, ``--gzip-level``,
``--gzip-min-length``, ``--gzip-types``, ``--gzip-disable``, ``--enable-brotli``,
``--brotli-level``, ``--brotli-min-length``, ``--brotli-types``. Brotli uses Google's ``brotli``
bindings (a dependency of ingressd).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

import brotli
import re2

from ingressd import AnnotationError, Option, Phase, hookimpl, parse_bool, re2_reason
from ingressd import same_for_every_path

# ingress-nginx's defaults (internal/ingress/controller/config/config.go: gzipTypes, brotliTypes).
GZIP_TYPES = ("application/atom+xml application/javascript application/x-javascript application/json "
              "application/rss+xml application/vnd.ms-fontobject application/x-font-ttf "
              "application/x-web-app-manifest+json application/xhtml+xml application/xml font/opentype "
              "image/svg+xml image/x-icon text/css text/javascript text/plain text/x-component")
BROTLI_TYPES = "application/xml+rss " + GZIP_TYPES
_STATUSES = frozenset((200, 403, 404))  # the statuses nginx's gzip and brotli filters compress
_VARY = b"vary"
_ACCEPT_ENCODING = b"accept-encoding"
_MSIE = re.compile(rb"MSIE [4-6]\.")
_SV1 = re.compile(rb"MSIE 6\..*SV1")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
STATE = "compression"  # this plugin's name in BuildContext.plugin_state


# -- options ------------------------------------------------------------------------------------


def _switch(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    try:
        return parse_bool(str(value).strip())
    except AnnotationError as exc:
        raise ValueError(str(exc)) from None


def _level(low: int, high: int):
    def parse(value: Any) -> int:
        text = str(value).strip()
        if not re.fullmatch(r"[0-9]+", text) or not low <= int(text) <= high:
            raise ValueError(f"expected a compression level from {low} to {high}, got {value!r}")
        return int(text)
    return parse


def _length(value: Any) -> int:
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]+", text):
        raise ValueError(f"expected a length in bytes such as 256, got {value!r}")
    return int(text)


def _types(value: Any) -> frozenset[str]:
    """A MIME type list as nginx's ``gzip_types`` reads it: space-separated, ``*`` for any."""
    names = value if isinstance(value, (frozenset, tuple, list)) else str(value).split()
    types = frozenset(str(name).strip().lower() for name in names if str(name).strip())
    for name in types:
        if name != "*" and not re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+*-]+", name):
            raise ValueError(f"{name!r} is not a MIME type")
    return types


def _disable(value: Any) -> str:
    """``gzip-disable``: ``msie6`` or a regular expression (RE2: linear time) on User-Agent."""
    text = str(value).strip()
    if text and text != "msie6":
        try:
            re2.compile(text, _RE2_OPTIONS)
        except re2.error as exc:
            raise ValueError(f"gzip-disable {text!r} is not a regular expression ingressd can match "
                             f"({re2_reason(exc)}; look-around and back-references are not supported)") from None
    return text


@hookimpl
def ingressd_options():
    return [
        Option("use-gzip", False, "gzip responses the client accepts (ConfigMap key use-gzip)", _switch),
        Option("gzip-level", 1, "gzip compression level, 1 to 9", _level(1, 9)),
        Option("gzip-min-length", 256, "responses shorter than this (bytes, when known) are not gzipped", _length),
        Option("gzip-types", GZIP_TYPES, "MIME types gzipped besides text/html, space-separated (* any)", _types),
        Option("gzip-disable", "", "no gzip for a User-Agent matching this regular expression (msie6: MSIE 4-6)",
               _disable),
        Option("enable-brotli", False, "brotli-compress responses the client accepts (ConfigMap key enable-brotli)",
               _switch),
        Option("brotli-level", 4, "brotli compression level, 0 to 11", _level(0, 11)),
        Option("brotli-min-length", 20, "responses shorter than this (bytes, when known) are not brotli-compressed",
               _length),
        Option("brotli-types", BROTLI_TYPES, "MIME types brotli-compressed besides text/html, space-separated "
               "(* any)", _types),
    ]


# -- the body filters ------------------------------------------------------------------------------


class GzipBody:
    """A body gzipped as it streams (``features.BodyFilter``): each piece flushed (Z_SYNC_FLUSH)."""

    __slots__ = ("_stream",)

    def __init__(self, level: int):
        self._stream = zlib.compressobj(level, zlib.DEFLATED, 16 + 15, 8)  # nginx: window 32k, memory level 8

    def write(self, data: bytes) -> bytes:
        if not data:
            return b""
        stream = self._stream
        return stream.compress(data) + stream.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._stream.flush(zlib.Z_FINISH)


class BrotliBody:
    """A body brotli-compressed as it streams (``features.BodyFilter``): each piece flushed."""

    __slots__ = ("_stream",)

    def __init__(self, level: int):
        self._stream = brotli.Compressor(quality=level)

    def write(self, data: bytes) -> bytes:
        if not data:
            return b""
        stream = self._stream
        return stream.process(data) + stream.flush()

    def finish(self) -> bytes:
        return self._stream.finish()


# -- the feature ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoder:
    """One encoding's settings: its token, level, minimum length and types."""

    token: bytes  # b"br" or b"gzip"
    level: int
    min_length: int
    types: frozenset[str]

    def wants(self, content_type: str, length: int | None) -> bool:
        if length is not None and length < self.min_length:
            return False
        return content_type == "text/html" or content_type in self.types or "*" in self.types

    def body(self):
        return BrotliBody(self.level) if self.token == b"br" else GzipBody(self.level)


class Compression:
    """Compresses a route's answers (response phase, after every other feature set its headers)."""

    phase = Phase.PROXY + 50

    def __init__(self, encoders: tuple[Encoder, ...], disable: str):
        self._encoders = encoders  # brotli first
        self._disable = None if disable in ("", "msie6") else re2.compile(b"(?i)" + disable.encode("utf-8"),
                                                                              _RE2_OPTIONS)
        self._msie6 = disable == "msie6"

    def response(self, exchange: Any, status: int, headers: list) -> None:
        if status not in _STATUSES or exchange.method == b"HEAD":
            return
        content_type = b""
        for name, value in headers:
            if name == b"content-encoding" and value.strip():
                return  # encoded already (a backend's gzip): as it is
            if name == b"content-type":
                content_type = value
        kind = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
        length = getattr(exchange, "response_length", None)
        wanted = [encoder for encoder in self._encoders if encoder.wants(kind, length)]
        if not wanted:
            return
        _add_vary(headers)
        accepted = _accepted(exchange.headers.get_all(_ACCEPT_ENCODING))
        for encoder in wanted:
            if encoder.token in accepted and (encoder.token == b"br" or self._gzip_ok(exchange)):
                _compressed_headers(headers, encoder.token)
                exchange.body_filter = encoder.body()
                return

    def _gzip_ok(self, exchange: Any) -> bool:
        """gzip_http_version 1.1 and gzip_disable."""
        if exchange.version in (b"1.0", b"0.9"):
            return False
        if self._disable is None and not self._msie6:
            return True
        agent = exchange.headers.get(b"user-agent") or b""
        if self._msie6:
            return not (_MSIE.search(agent) and not _SV1.search(agent))
        return self._disable.search(agent) is None


def _accepted(values: list) -> frozenset[bytes]:
    """The codings an Accept-Encoding allows (quality above 0), by exact token as nginx reads them."""
    found = set()
    for value in values:
        for item in value.split(b","):
            token, _, params = item.partition(b";")
            token = token.strip().lower()
            if not token:
                continue
            quality = 1.0
            for param in params.split(b";"):
                key, _, number = param.partition(b"=")
                if key.strip().lower() == b"q":
                    try:
                        quality = float(number.strip())
                    except ValueError:
                        quality = 0.0
            if quality > 0:
                found.add(token)
    return frozenset(found)


def _add_vary(headers: list) -> None:
    for name, value in headers:
        if name == _VARY and (value.strip() == b"*" or _ACCEPT_ENCODING in
                              (part.strip().lower() for part in value.split(b","))):
            return
    headers.append((_VARY, b"Accept-Encoding"))


def _compressed_headers(headers: list, token: bytes) -> None:
    """Content-Encoding set; Accept-Ranges gone; the ETag weak (ngx_http_weak_etag)."""
    kept = []
    for name, value in headers:
        if name == b"accept-ranges":
            continue
        if name == b"etag":
            if value.startswith(b"W/"):
                pass
            elif value.startswith(b'"'):
                value = b"W/" + value
            else:
                continue  # not an entity tag nginx can weaken: removed
        kept.append((name, value))
    kept.append((b"content-encoding", token))
    headers[:] = kept


# -- per route -------------------------------------------------------------------------------------


def _setting(settings: Any, name: str, default: Any) -> Any:
    for key in (name.replace("-", "_"), name):
        value = settings.get(key)
        if value is not None:
            return value
    return default


def feature_for(settings: Any) -> Compression | None:
    """The server's Compression feature for these settings, or None when neither is on."""
    encoders = []
    if _switch(_setting(settings, "enable-brotli", False)):
        encoders.append(Encoder(b"br", _level(0, 11)(_setting(settings, "brotli-level", 4)),
                                _length(_setting(settings, "brotli-min-length", 20)),
                                _types(_setting(settings, "brotli-types", BROTLI_TYPES))))
    if _switch(_setting(settings, "use-gzip", False)):
        encoders.append(Encoder(b"gzip", _level(1, 9)(_setting(settings, "gzip-level", 1)),
                                _length(_setting(settings, "gzip-min-length", 256)),
                                _types(_setting(settings, "gzip-types", GZIP_TYPES))))
    if not encoders:
        return None
    return Compression(tuple(encoders), _disable(_setting(settings, "gzip-disable", "")))


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    settings = context.settings if context is not None else {}
    if not (_setting(settings, "use-gzip", False) or _setting(settings, "enable-brotli", False)):
        return None
    # One feature for the server's settings, shared by every route (its regex compiled once).
    state = context.plugin_state(STATE)
    key = tuple(repr(_setting(settings, name, None)) for name in (
        "use-gzip", "gzip-level", "gzip-min-length", "gzip-types", "gzip-disable",
        "enable-brotli", "brotli-level", "brotli-min-length", "brotli-types"))
    if state.get("key") != key:
        state["key"], state["feature"] = key, feature_for(settings)
    return state["feature"]
