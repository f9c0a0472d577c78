"""Regular-expression paths and ``rewrite-target``, as ingress-nginx does them.

Annotations: ``use-regex`` (the Ingress's paths are regular expressions), ``rewrite-target``
(the URI the backend is sent, with ``$1``…``$9`` from the path's capture groups) and
``x-forwarded-prefix`` (the ``X-Forwarded-Prefix`` header sent with a rewritten request).

What ingress-nginx renders (internal/ingress/controller/template/template.go) and so what
ingressd does:

- ``use-regex: "true"``, or a ``rewrite-target`` that differs from the path, makes the
  route's path a regular expression; then every path of the same host is matched as one
  (``ingressd.config.regex_routing`` says how: case-insensitive, anchored at the start only,
  longest pattern first). A path RE2 cannot compile rejects the Ingress.
- The rewrite is nginx's ``rewrite "(?i)PATH" TARGET break;``: when the path matches, the
  *whole* URI becomes TARGET with ``$1``…``$9`` replaced by the captures (a capture that did
  not take part is empty). The query string is kept: appended with ``?``, or with ``&``
  when TARGET has a query of its own; a TARGET ending in ``?`` drops it. The new path is
  sent percent-encoded where it must be. ``$scheme``, ``$host``, ``$uri``, ``$args`` and
  ``$request_uri`` are substituted too; any other variable rejects the Ingress (we never
  send a request somewhere we cannot compute).
- A TARGET starting with ``http://``, ``https://`` or ``$scheme`` is, as in nginx, a 302
  redirect to the expanded URL (the query string kept the same way).
- ``x-forwarded-prefix``: ``X-Forwarded-Prefix: VALUE`` on rewritten requests only (an
  empty value sends nothing), as ingress-nginx's template adds it only beside a rewrite.
- ``enable-rewrite-log``: nginx's ``rewrite_log on`` (each rewrite written to the error log at
  notice level): each rewrite of the route's requests is written to ingressd's log, with the
  Ingress, the pattern, the path it matched (or did not) and the new URI or redirect, the
  request's values quoted as JSON strings (a client cannot start a log line of its own).

The new target is made by ``_rewrites.rewritten_target``, the code the Gateway API's URLRewrite
uses. The rewrite runs in the REWRITE phase, before access control and authentication; routing
and the access features saw the original path, the backend sees the new one.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from ingressd import (
    Annotation,
    AnnotationError,
    LocalResponse,
    PathPatternError,
    Phase,
    compile_path,
    hookimpl,
    parse_bool,
)

from twisted.python import log

from ._responses import plain
from ._rewrites import encode_path, rewritten_target, with_args  # noqa: F401 (encode_path re-exported)

# nginx: $1..$9, and variables; ${name} is the braced spelling of the same.
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([0-9])|([A-Za-z_][A-Za-z0-9_]*))")
_VARIABLES = frozenset(("scheme", "host", "uri", "args", "request_uri"))


def _parse_target(value: str) -> str:
    if not value:
        return value
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise AnnotationError("must not contain spaces or control characters")
    for found in _VARIABLE.finditer(value):
        name = found.group(1) or found.group(2) or found.group(3)
        if not name.isdigit() and name not in _VARIABLES:
            raise AnnotationError(
                f"${name} is not substituted by ingressd (supported: $1…$9, "
                f"{', '.join('$' + v for v in sorted(_VARIABLES))})")
        if name.isdigit() and name == "0":
            raise AnnotationError("$0 is not a capture group (use $1…$9)")
    if value.startswith(("http://", "https://", "$scheme")) or value.startswith("/"):
        return value
    raise AnnotationError("must be a path starting with '/' or an http(s) URL")


class _Template:
    """A rewrite target split as nginx splits it: the URI part and the arguments part."""

    def __init__(self, target: str):
        uri, mark, args = target.partition("?")
        self.redirect = target.startswith(("http://", "https://", "$scheme"))
        self.uri = _parts(uri)
        self.has_args = bool(mark)
        self.args = _parts(args)
        self.keep_query = not (mark and not args)  # "…?" at the end: the query is dropped

    def expand(self, exchange: Any, match: Any, groups: int) -> tuple[str, str | None]:
        uri = _expand(self.uri, exchange, match, groups)
        args = _expand(self.args, exchange, match, groups) if self.has_args else None
        return uri, args


def _parts(text: str) -> tuple[tuple[Any, Any], ...]:
    """``text`` cut once into literals (None, "text"), captures ("$", n) and variables ("var", name)."""
    parts: list[tuple[Any, Any]] = []
    at = 0
    for found in _VARIABLE.finditer(text):
        if found.start() > at:
            parts.append((None, text[at:found.start()]))
        name = found.group(1) or found.group(2) or found.group(3)
        parts.append(("$", int(name)) if name.isdigit() else ("var", name))
        at = found.end()
    if at < len(text):
        parts.append((None, text[at:]))
    return tuple(parts)


def _expand(parts: tuple, exchange: Any, match: Any, groups: int) -> str:
    out = []
    for kind, value in parts:
        if kind is None:
            out.append(value)
        elif kind == "$":
            if value <= groups:  # a group beyond the pattern's, or one that took no part: empty
                out.append(match.group(value) or "")
        else:
            out.append(_variable(value, exchange))
    return "".join(out)


def _variable(name: str, exchange: Any) -> str:
    if name == "scheme":
        return exchange.scheme
    if name == "host":
        return exchange.host
    if name == "uri":
        return exchange.path
    if name == "args":
        return exchange.query.decode("latin-1")
    uri = getattr(exchange, "request_uri", None) or exchange.target  # $request_uri: as the client sent it
    return uri.decode("latin-1") if uri.startswith(b"/") else exchange.path


class Rewrite:
    """Sends the backend the rewritten URI (or answers nginx's redirect), REWRITE phase.

    Just after the other REWRITE features: ingress-nginx's HTTPS redirect and CORS preflight
    answer with the request as the client sent it (its Lua reads ``$request_uri``), never the
    rewritten one, whatever order plugins are loaded in."""

    phase = Phase.REWRITE + 1
    regex_paths = True  # the route's path is a regular expression (its host: regex mode)

    def __init__(self, pattern: Any, target: str | None, prefix: str, log_as: str | None = None,
                 say: Callable[[str], None] = log.msg):
        self._pattern = pattern
        self._template = _Template(target) if target is not None else None
        self._prefix = prefix.encode("latin-1") if prefix else b""
        self._log_as = log_as  # enable-rewrite-log: "namespace/name" of the Ingress, else None
        self._say = say

    def request(self, exchange: Any) -> LocalResponse | None:
        template = self._template
        if template is None:
            return None  # use-regex alone: only the matching changes
        match = self._pattern.search(exchange.path)
        if match is None:
            if self._log_as is not None:
                self._log(exchange, "does not match", "")
            return None
        uri, args = template.expand(exchange, match, self._pattern.groups)
        query = exchange.query
        if template.redirect:
            location = uri.encode("utf-8")
            location = with_args(location, args, query, template.keep_query, quote_args=False)
            if self._log_as is not None:
                self._log(exchange, "matches", f", rewritten redirect: {_quoted(location)}")
            return plain(302, [(b"location", location)])
        exchange.target = rewritten_target(uri, query, args, template.keep_query)
        if self._log_as is not None:
            self._log(exchange, "matches", f", rewritten data: {_quoted(exchange.target)}")
        if self._prefix:
            exchange.headers.remove(b"x-forwarded-prefix")
            exchange.headers.add(b"x-forwarded-prefix", self._prefix)
        return None


    def _log(self, exchange: Any, verdict: str, result: str) -> None:
        """nginx's ``rewrite_log`` notice: ``"PATTERN" matches "PATH", rewritten data: "URI"``."""
        self._say(f"ingressd: rewrite_log: Ingress {self._log_as}: {_quoted('(?i)' + self._pattern.path)} {verdict} "
                  f"{_quoted(exchange.path)}{result}, client: {exchange.client_ip}, "
                  f"host: {_quoted(exchange.host)}, request id: {exchange.request_id}")


def _quoted(value: Any) -> str:
    """A value in the log as a JSON string: control characters and quotes escaped."""
    return json.dumps(value.decode("latin-1") if isinstance(value, bytes) else str(value))


class RegexPath:
    """``use-regex`` without a rewrite: only how the host's paths are matched changes."""

    phase = Phase.REWRITE
    regex_paths = True


@hookimpl
def ingressd_annotations():
    return [
        Annotation("use-regex", parse_bool, False, "the Ingress's paths are regular expressions"),
        Annotation("rewrite-target", _parse_target, None, "the URI sent to the backend ($1…$9: the path's captures)"),
        Annotation("x-forwarded-prefix", str, "", "X-Forwarded-Prefix sent with rewritten requests"),
        Annotation("enable-rewrite-log", parse_bool, False, "each rewrite of the route written to ingressd's log"),
    ]


@hookimpl
def ingressd_route_features(route, values, context):
    target = values.get("rewrite-target") or None
    rewrites = target is not None and target != route.path
    if not rewrites and not values.get("use-regex"):
        return None
    try:
        pattern = compile_path(route.path)
    except PathPatternError as exc:
        raise AnnotationError(str(exc)) from None
    prefix = values.get("x-forwarded-prefix") or ""
    if prefix and any(ord(c) < 0x20 or ord(c) == 0x7F for c in prefix):
        raise AnnotationError("x-forwarded-prefix must not contain control characters")
    if not rewrites:
        return RegexPath()
    ingress = route.ingress
    log_as = f"{ingress.namespace}/{ingress.name}" if values.get("enable-rewrite-log") else None
    return Rewrite(pattern, target, prefix, log_as)
