"""CORS for a location (``enable-cors``): answer preflights at the edge, add CORS headers to responses.

Annotations (ignored unless ``enable-cors`` is true), with ingress-nginx's defaults:
``cors-allow-origin`` (``*``; or a list of ``scheme://host[:port]``, ``scheme://*.host[:port]``
with ``*`` standing for exactly one DNS label, and ``null``), ``cors-allow-methods``,
``cors-allow-headers``, ``cors-expose-headers`` (none), ``cors-allow-credentials`` (true),
``cors-max-age`` (1728000).

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``, origin
allowed) is answered 204 in the REWRITE phase: before rate limits, allowlists and auth, and
never proxied. Other requests from an allowed origin are proxied and their responses (and
ingressd's own error responses) get the CORS headers, replacing any the backend set. A
request whose origin is not allowed gets no ``Access-Control-*`` header.

Values are read as ingress-nginx reads them (internal/ingress/annotations/cors/main.go):
an empty value means the default (``*`` for the origins); in an origin list, an entry that
is not ``scheme://host[:port]`` (lower-case scheme), ``null`` or ``*`` is ignored, and a
list left with no entry switches CORS off for the location (the template then never sets
``$cors``); a ``*`` entry allows every origin; methods and header lists are sent as
written; a method or expose-headers list with a blank before a comma, or two blanks in a
row, gets the default;
``enable-cors`` and ``cors-max-age`` that Go cannot read as a boolean or an integer get the
default. What was ignored is logged, naming the Ingress.

Where we differ from ingress-nginx, on purpose: a value of ``cors-allow-origin``,
``-methods``, ``-headers`` or ``-expose-headers`` that ingress-nginx's annotation validator
refuses (a character outside the annotation's alphabet, e.g. ``;``, ``$``, a path after an
origin, an upper-case scheme, ``*`` as a header name) rejects the Ingress, where
ingress-nginx logs it and uses the default, which for the origins is ``*`` (every origin,
with credentials): such a value is either an injection attempt or a typo that would
silently open the location to every origin; origins are matched whole (nginx's regex is anchored only at its end);
a ``cors-allow-credentials`` value Go cannot read rejects the Ingress (ingress-nginx would
allow credentials, its default); an allowed origin is echoed with ``Vary: Origin`` (and every response of a list-configured
location carries ``Vary: Origin``, since it depends on it); ``*`` is never sent together
with ``Allow-Credentials: true`` (the origin is echoed instead, which is what browsers
require).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any, Callable

from twisted.logger import Logger

from ingressd import (
    Annotation,
    AnnotationError,
    Phase,
    hookimpl,
    parse_bool,
)
from ingressd import same_for_every_path

from ._cors_policy import CORS_HEADERS, CorsPolicy, add_vary_origin, is_origin  # noqa: F401 (re-exported)

_log = Logger()

DEFAULT_METHODS = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
DEFAULT_HEADERS = (
    "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization"
)
DEFAULT_MAX_AGE = 1728000

_LABEL = re.compile(r"[a-z0-9-]+")

# ingress-nginx's regexes, in Python's re (ASCII classes: Go's \d and \s are ASCII-only).
# An origin entry it keeps:
_NGINX_ORIGIN = re.compile(r"[a-z]+://(?:\*\.)?[A-Za-z0-9.-]*(?::[0-9]+)?|null")
# Its header-list validator (HeadersVariable), applied with the spaces removed:
_NGINX_HEADERS = re.compile(r"[A-Za-z0-9_,-]*")
# ``^((WORD),?\s?)+$`` for methods and exposed headers is checked by _is_word_list, without
# the nested repetition, which backtracks exponentially in Python's re.
_METHOD_WORDS = re.compile(r"[A-Za-z]+")
_EXPOSE_WORDS = re.compile(r"[A-Za-z0-9_*-]+")
_SEPARATOR = re.compile(r",?[\t\n\f\r ]?")
_GO_INT = re.compile(r"[+-]?[0-9]+")
_HOST_CHARS = frozenset(string.ascii_letters + string.digits + "-.")
_DIGITS = frozenset(string.digits)

@dataclass(frozen=True)
class Lenient:
    """The value ingress-nginx uses for an annotation text it does not use as written, and why.

    Annotation parsers cannot name the Ingress; ``ingressd_route_features`` logs ``ignored``.
    """

    value: Any
    ignored: str


def _unwrap(value: Any) -> tuple[Any, str]:
    return (value.value, value.ignored) if isinstance(value, Lenient) else (value, "")


def _show(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:80] + "…")


def _origin_text_valid(text: str) -> bool:
    r"""ingress-nginx's validator for the whole origin list (spaces removed), in linear time.

    Its regex, ``^((((([a-z]+://)?(\*\.)?[A-Za-z0-9\-.]*(:\d+)?,?)|null)+)|\*)?$``, accepts
    exactly this: host characters and commas anywhere, ``*`` only before ``.``, and ``:``
    only before digits (a port) or, after a lower-case letter, before ``//`` (a scheme).
    """
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in _HOST_CHARS or char == ",":
            i += 1
        elif char == "*" and text[i + 1 : i + 2] == ".":
            i += 2
        elif char == ":" and text[i + 1 : i + 3] == "//" and i > 0 and "a" <= text[i - 1] <= "z":
            i += 3
        elif char == ":" and i + 1 < n and text[i + 1] in _DIGITS:
            i += 2
            while i < n and text[i] in _DIGITS:
                i += 1
        else:
            return False
    return True


def parse_origins(value: str) -> tuple[str, ...] | Lenient:
    """The allowed origins, lower-cased; ``("*",)`` for any origin; ``()`` for none (CORS off)."""
    if not value.strip():
        return ("*",)
    entries = [entry for entry in (item.strip() for item in value.split(",")) if entry]
    if "*" in entries:
        return ("*",)
    if not _origin_text_valid(value.replace(" ", "")):
        # ingress-nginx would allow every origin here; we refuse (see the module docstring).
        raise AnnotationError(
            f"{_show(value)} is not a comma-separated list of *, null and scheme://host[:port] "
            "(lower-case scheme, host may start with *., no path)"
        )
    kept = tuple(dict.fromkeys(entry.lower() for entry in entries if _NGINX_ORIGIN.fullmatch(entry)))
    ignored = [entry for entry in entries if not _NGINX_ORIGIN.fullmatch(entry)]
    if kept and not ignored:
        return kept
    why = "no origin listed"
    if ignored:
        why = f"ignored {', '.join(map(_show, ignored))}: not scheme://host[:port] or null"
    if not kept:
        why += "; none is left, so CORS is off for this location, as in ingress-nginx"
    return Lenient(kept, why)


def _is_word_list(text: str, words: re.Pattern) -> bool:
    r"""``^((WORD),?\s?)+$``: words, each followed by at most a comma and then one blank."""
    gaps = words.split(text)
    return bool(text) and gaps[0] == "" and all(_SEPARATOR.fullmatch(gap) for gap in gaps[1:])


def _list_parser(words: re.Pattern, what: str, default: str) -> Callable[[str], Any]:
    """Methods or exposed headers, as ingress-nginx reads them: validated without spaces,
    then checked again as written (trimmed), which is what it sends."""

    def parse(value: str) -> str | Lenient:
        text = value.strip()
        if not text:
            return default
        if not _is_word_list(value.replace(" ", ""), words):
            # ingress-nginx would log it and use the default; we refuse (see the module docstring).
            raise AnnotationError(f"{_show(value)} is not a comma-separated list of {what}")
        if not _is_word_list(text, words):
            return Lenient(default, f"{_show(value)} has a blank before a comma or two blanks in a row; "
                                    f"using the default {default!r}")
        return text

    return parse


def _parse_headers(value: str) -> str:
    text = value.strip()
    if not text:
        return DEFAULT_HEADERS
    if not _NGINX_HEADERS.fullmatch(value.replace(" ", "")):
        # ingress-nginx would log it and use the default; we refuse (see the module docstring).
        raise AnnotationError(f"{_show(value)} may only hold header names (letters, digits, - and _), "
                              "commas and spaces")
    return text


def _go_bool(default: bool) -> Callable[[str], Any]:
    """Go's strconv.ParseBool, with ingress-nginx's default for what it cannot read."""

    def parse(value: str) -> bool | Lenient:
        try:
            return parse_bool(value)
        except AnnotationError:
            return Lenient(default, f"{_show(value)} is not true or false; using {str(default).lower()}")

    return parse


def _parse_max_age(value: str) -> int | Lenient:
    """Go's strconv.Atoi (a 64-bit integer, sign allowed), else ingress-nginx's default."""
    digits = value.lstrip("+-").lstrip("0")
    if _GO_INT.fullmatch(value) and len(digits) <= 19:
        number = int(value)
        if -(2**63) <= number < 2**63:
            return number
    return Lenient(DEFAULT_MAX_AGE, f"{_show(value)} is not an integer; using {DEFAULT_MAX_AGE}")


class OriginMatcher:
    """Whole, case-insensitive matching of an ``Origin`` header against the allowed entries."""

    def __init__(self, origins: tuple[str, ...]):
        self._exact = frozenset(o for o in origins if "://*." not in o)
        # "https://*.example.com:8443" → ("https://", ".example.com", ":8443")
        self._wildcards = []
        for origin in origins:
            if "://*." in origin:
                scheme, _, rest = origin.partition("://*")
                match = re.fullmatch(r"(.*?)(:[0-9]+)?", rest)
                self._wildcards.append((scheme + "://", match.group(1), match.group(2) or ""))

    def __contains__(self, origin: str) -> bool:
        if origin in self._exact:
            return True
        for prefix, suffix, port in self._wildcards:
            if not origin.startswith(prefix):
                continue
            host = origin[len(prefix) :]
            if port:
                if not host.endswith(port):
                    continue
                host = host[: -len(port)]
            if host.endswith(suffix) and _LABEL.fullmatch(host[: -len(suffix)]):
                return True
        return False


class Cors(CorsPolicy):
    """Phase REWRITE: the preflight answer, and the CORS headers on every response
    (``_cors_policy.CorsPolicy``, the code the Gateway API's CORS filter uses)."""

    def __init__(
        self,
        origins: tuple[str, ...] = ("*",),
        methods: str = DEFAULT_METHODS,
        headers: str = DEFAULT_HEADERS,
        expose: str = "",
        credentials: bool = True,
        max_age: int = DEFAULT_MAX_AGE,
    ):
        any_origin = origins == ("*",)
        common = [
            (b"access-control-allow-methods", methods.encode("ascii")),
            (b"access-control-allow-headers", headers.encode("ascii")),
        ]
        if expose:
            common.append((b"access-control-expose-headers", expose.encode("ascii")))
        common.append((b"access-control-max-age", b"%d" % max_age))
        # ingress-nginx's: "*" to every request when every origin is allowed (unless the origin
        # is echoed with credentials); a preflight from another origin goes to the backend; the
        # Allow-Methods/-Headers/Max-Age on every answer.
        super().__init__(Phase.REWRITE, any_origin, None if any_origin else OriginMatcher(origins), credentials,
                         tuple(common), star_for_any=True, answer_refused_preflight=False)


@hookimpl
def ingressd_annotations():
    return [
        Annotation("enable-cors", _go_bool(False), False, "answer CORS preflights and add CORS headers"),
        Annotation("cors-allow-origin", parse_origins, ("*",), "allowed origins: *, or a list (one-label *.host wildcards)"),
        Annotation("cors-allow-methods", _list_parser(_METHOD_WORDS, "methods", DEFAULT_METHODS), DEFAULT_METHODS,
                   "Access-Control-Allow-Methods"),
        Annotation("cors-allow-headers", _parse_headers, DEFAULT_HEADERS, "Access-Control-Allow-Headers"),
        Annotation("cors-expose-headers", _list_parser(_EXPOSE_WORDS, "header names or *", ""), "",
                   "Access-Control-Expose-Headers"),
        # Not _go_bool: ingress-nginx's default for an unreadable value ("no", "off") is true,
        # the opposite of what was meant and wider; the Ingress is rejected instead.
        Annotation("cors-allow-credentials", parse_bool, True, "send Access-Control-Allow-Credentials: true"),
        Annotation("cors-max-age", _parse_max_age, DEFAULT_MAX_AGE, "Access-Control-Max-Age, seconds"),
    ]


_SETTINGS = (
    ("cors-allow-origin", ("*",)),
    ("cors-allow-methods", DEFAULT_METHODS),
    ("cors-allow-headers", DEFAULT_HEADERS),
    ("cors-expose-headers", ""),
    ("cors-allow-credentials", True),
    ("cors-max-age", DEFAULT_MAX_AGE),
)


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    enabled, ignored = _unwrap(values.get("enable-cors", False))
    if ignored:
        _log.warn("{ingress}: annotation enable-cors: {ignored}", ingress=str(route.ingress), ignored=ignored)
    if not enabled:
        return None
    settings = {}
    for name, default in _SETTINGS:
        settings[name], ignored = _unwrap(values.get(name, default))
        if ignored:
            _log.warn("{ingress}: annotation {name}: {ignored}", ingress=str(route.ingress), name=name, ignored=ignored)
    if not settings["cors-allow-origin"]:
        return None  # every listed origin was ignored: no CORS header for anyone
    return Cors(
        origins=settings["cors-allow-origin"],
        methods=settings["cors-allow-methods"],
        headers=settings["cors-allow-headers"],
        expose=settings["cors-expose-headers"],
        credentials=settings["cors-allow-credentials"],
        max_age=settings["cors-max-age"],
    )
