"""The response headers the client gets: ``proxy-redirect-from``/``-to``, ``proxy-cookie-domain``,
``proxy-cookie-path`` and ingressd's typed ``response-headers`` / ``remove-response-headers``.

What ingress-nginx renders (nginx.tmpl, defaults in internal/ingress/defaults) and so what
ingressd does, on the backend's answers only (as nginx's ``proxy_*`` directives):

- ``proxy-redirect-from: FROM`` with ``proxy-redirect-to: TO`` → ``proxy_redirect FROM TO``:
  a ``Location`` value that starts with FROM (case-sensitive) gets TO in its place, and so
  does the URL after ``url=`` in a ``Refresh`` value. Both default to ``off`` (nothing is
  rewritten: ingress-nginx renders ``proxy_redirect off``). FROM ``default`` is nginx's
  default rule for ``proxy_pass http://upstream_balancer``: ``http://upstream_balancer/``
  becomes ``/`` (a backend never sends it, since it gets the client's Host); so is a FROM
  with TO left ``off`` (ingress-nginx then renders nothing and nginx's default applies).
  Values: ingress-nginx's URLIsValidRegex characters (letters, digits, ``-._~/:,?&=``); a
  FROM starting with ``~`` (an nginx regular expression) is refused, here and for cookies.
- ``proxy-cookie-domain: FROM TO`` → ``proxy_cookie_domain``: a ``Set-Cookie`` whose
  ``Domain`` attribute equals FROM (case-insensitive; leading dots ignored, the cookie's
  own kept) gets TO. ``proxy-cookie-path: FROM TO`` → ``proxy_cookie_path``: a ``Path``
  that starts with FROM (case-sensitive) gets TO in its place. ``off`` (the default): no
  change. One word other than ``off`` is refused (nginx would not load it).
- ``ingressd.io/response-headers``: one ``Name: value`` per line, set on every answer of the
  route, the backend's and ingressd's own (replacing a header of that name); values may use
  ``$host``, ``$request_id``, ``$remote_addr``, ``$scheme``, ``$request_uri``.
  ``ingressd.io/remove-response-headers``: names (comma- or line-separated) removed from
  every answer. Hop-by-hop and framing headers, ``Server`` and ``Date`` (ingressd writes
  them itself) are refused; an error names the annotation and the line. The changes are made
  by ``_header_changes.HeaderChange``, the code the Gateway API's ResponseHeaderModifier uses.
"""

from __future__ import annotations

import re
from typing import Any

from ingressd import Annotation, AnnotationError, Phase, hookimpl
from ingressd import same_for_every_path

from ._header_changes import HeaderChange
from ._header_values import OWNED_RESPONSE, header_edits, parse_header_lines, parse_header_names

# ingress-nginx's URLIsValidRegex (proxy-redirect-*, proxy-cookie-path) and cookieDomainRegex.
_URL = re.compile(r"[\-._~a-zA-Z0-9/:,?&=]*")
_COOKIE_DOMAIN = re.compile(r"[\-._~a-zA-Z0-9/:]+")
_UPSTREAM = b"http://upstream_balancer/"  # nginx's proxy_redirect default for ingress-nginx's proxy_pass
_URL_IS = re.compile(rb"url=", re.IGNORECASE)


def _parse_redirect(text: str) -> str:
    value = text.strip()
    _no_regex(value)
    if not _URL.fullmatch(value):
        raise AnnotationError(f"{value!r} is not a URL ingress-nginx accepts (letters, digits, -._~/:,?&=)")
    return value


def _no_regex(word: str) -> None:
    # nginx reads a first word starting with ~ as a regular expression (ingress-nginx lets ~
    # through); ingressd matches plain text only and refuses rather than guess.
    if word.startswith("~"):
        raise AnnotationError(f"{word!r} is an nginx regular expression (~…): ingressd matches plain text only")


def _parse_pair(pattern: re.Pattern) -> Any:
    def parse(text: str) -> tuple[str, str] | None:
        words = text.split()
        if words == ["off"]:
            return None
        if words:
            _no_regex(words[0])
        if len(words) != 2 or not all(pattern.fullmatch(word) for word in words):
            raise AnnotationError(f"expected off or 'FROM TO' (two words of letters, digits, -._~/:), got {text!r}")
        return words[0], words[1]

    return parse


class ResponseHeaders:
    """Rewrites the backend's Location, Refresh and Set-Cookie; sets and removes headers."""

    phase = Phase.PROXY

    def __init__(self, redirect: tuple[bytes, bytes] | None, cookie_domain: tuple[bytes, bytes] | None,
                 cookie_path: tuple[bytes, bytes] | None, drop: frozenset, pairs: tuple):
        self._redirect = redirect
        self._domain = cookie_domain
        self._path = cookie_path
        self._change = HeaderChange(drop, pairs)

    def response(self, exchange: Any, status: int, headers: list) -> None:
        if exchange.upstream_status and (self._redirect or self._domain or self._path):
            for index, (name, value) in enumerate(headers):
                if name == b"location" and self._redirect:
                    headers[index] = (name, _redirected(value, 0, self._redirect))
                elif name == b"refresh" and self._redirect:
                    found = _URL_IS.search(value)
                    if found:
                        headers[index] = (name, _redirected(value, found.end(), self._redirect))
                elif name == b"set-cookie" and (self._domain or self._path):
                    headers[index] = (name, _cookie(value, self._domain, self._path))
        self._change.apply(headers, exchange)


def _redirected(value: bytes, at: int, rule: tuple[bytes, bytes]) -> bytes:
    start, replacement = rule
    if value.startswith(start, at):
        return value[:at] + replacement + value[at + len(start):]
    return value


def _cookie(value: bytes, domain: tuple[bytes, bytes] | None, path: tuple[bytes, bytes] | None) -> bytes:
    """nginx's proxy_cookie_domain / proxy_cookie_path on one Set-Cookie value (attributes
    after the first ``;``, names case-insensitive)."""
    parts = value.split(b";")
    changed = False
    for index in range(1, len(parts)):
        attribute = parts[index]
        name, equals, text = attribute.partition(b"=")
        if not equals:
            continue
        key = name.strip().lower()
        stripped = text.strip()
        if key == b"domain" and domain is not None:
            dot = b"." if stripped.startswith(b".") else b""
            if stripped[len(dot):].lower() == domain[0]:
                parts[index] = name + b"=" + dot + domain[1]
                changed = True
        elif key == b"path" and path is not None and stripped.startswith(path[0]):
            parts[index] = name + b"=" + path[1] + stripped[len(path[0]):]
            changed = True
    return b";".join(parts) if changed else value


@hookimpl
def ingressd_annotations():
    return [
        Annotation("proxy-redirect-from", _parse_redirect, "off", "Location/Refresh prefix to rewrite (off, default)"),
        Annotation("proxy-redirect-to", _parse_redirect, "off", "what replaces proxy-redirect-from"),
        Annotation("proxy-cookie-domain", _parse_pair(_COOKIE_DOMAIN), None, "'FROM TO': Set-Cookie Domain rewrite"),
        Annotation("proxy-cookie-path", _parse_pair(_URL), None, "'FROM TO': Set-Cookie Path prefix rewrite"),
        Annotation("response-headers", parse_header_lines, (),
                   "response headers set on every answer, one 'Name: value' a line", lines=True),
        Annotation("remove-response-headers", parse_header_names, (),
                   "response headers removed from every answer (comma- or line-separated)", lines=True),
    ]


def _redirect_rule(source: str, target: str) -> tuple[bytes, bytes] | None:
    if source == "off" or not source:
        return None
    if source == "default" or target == "off" or not target:
        return _UPSTREAM, b"/"
    return source.encode("ascii"), target.encode("ascii")


def _lowered_domain(pair: tuple[str, str] | None) -> tuple[bytes, bytes] | None:
    if pair is None:
        return None
    return pair[0].lstrip(".").lower().encode("ascii"), pair[1].lstrip(".").encode("ascii")


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    redirect = _redirect_rule(values.get("proxy-redirect-from") or "off", values.get("proxy-redirect-to") or "off")
    domain = _lowered_domain(values.get("proxy-cookie-domain"))
    path = values.get("proxy-cookie-path")
    lines = values.get("response-headers") or ()
    names = values.get("remove-response-headers") or ()
    if redirect is None and domain is None and path is None and not lines and not names:
        return None
    drop, pairs = header_edits(lines, names, OWNED_RESPONSE, False, request=False,
                               annotation="response-headers", remove_annotation="remove-response-headers")
    return ResponseHeaders(redirect, domain, tuple(part.encode("ascii") for part in path) if path else None,
                           drop, pairs)
