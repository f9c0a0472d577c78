"""Redirects answered instead of proxying: ``app-root``, ``permanent-redirect``, ``temporal-redirect``
and ``from-to-www-redirect``.

What ingress-nginx renders (rootfs/etc/nginx/template/nginx.tmpl) and so what ingressd does:

- ``app-root: /app``: ``if ($uri = /) { return 302 $scheme://$http_host/app; }``. Only a
  request whose (normalised) path is exactly ``/`` is redirected, whatever its query (which
  is dropped: nginx's ``return`` never appends it); the Location is the request's scheme,
  the Host header exactly as sent (with its port), then the root. The value must be a path
  (``/`` then letters, digits, ``- . _ ~ / :``), as ingress-nginx's validation and its
  ``url.ParseRequestURI`` check ask; ingress-nginx ignores a bad one with a log line,
  ingressd rejects the Ingress (fail closed, with the reason). Variables (``$``) are
  refused: nginx would expand them, ingressd never sends a Location it cannot compute.
- ``permanent-redirect: URL`` (+ ``permanent-redirect-code``, default 301) and
  ``temporal-redirect: URL`` (+ ``temporal-redirect-code``, default 302):
  ``return CODE URL;`` for every request of the Ingress's paths. The Location is URL as
  written: no path or query of the request is appended. When both are set the temporal one
  wins (ingress-nginx's redirect parser reads it first). A code outside 300–308 (permanent)
  or 300–307 (temporal) falls back to the default, silently, as there; a code that is not an
  integer rejects the Ingress, as ingress-nginx's validation does. The URL may only hold
  ingress-nginx's URL characters (letters, digits, ``- . _ ~ / : , ? & =``), else the
  Ingress is rejected as there. A temporal URL must be ``http://`` or ``https://`` (ingress-
  nginx ignores the annotation otherwise and proxies; ingressd rejects the Ingress). A
  permanent URL starting with ``/`` becomes absolute as nginx's ``absolute_redirect`` makes
  it: ``$scheme://`` + the request's host (no port: ``port_in_redirect off``) + URL.
  With 301, 302, 303, 307 or 308 the answer is a redirect with nginx's page title as its
  body (``301 Moved Permanently``); with 300, 305 or 306 nginx's ``return`` sends the URL as
  a ``text/html`` body and no Location, and 304 has neither — ingressd does the same. The
  answer is ``_redirects.Redirect``'s, the code the Gateway API's RequestRedirect uses.

- ``from-to-www-redirect: "true"`` on an Ingress of ``foo.com`` (or ``www.foo.com``): requests
  for the other name, ``www.foo.com`` (or ``foo.com``), are redirected to the Ingress's host,
  as ingress-nginx's extra ``server`` block does (pkg/util/ingress BuildRedirects and
  lua/nginx/ngx_srv_redirect.lua): ``--http-redirect-code`` (308) to
  ``$scheme://HOST:$server_port$request_uri``, the request URI's last ``/`` dropped
  (``/`` → ``https://foo.com:443``; the port is always there: the port the request came in
  on). Only when no Ingress has a rule for the other name (then nothing is added, as
  there), and once per host. Over HTTPS the other name is served the Ingress's certificate
  when it names it, the default certificate otherwise (as ingress-nginx). The redirect
  runs nothing else of the Ingress's (no authentication, no HTTPS redirect: nginx's
  redirect server has only its ``return``). These routes come from the hook
  ``ingressd_host_routes``.

Order: ingress-nginx checks app-root at the server level, before any location's
directives, and a location's ``return`` runs in the rewrite phase before the Lua that
redirects HTTP to HTTPS (``rewrite_by_lua`` runs last in that phase). So both answer just
before every other REWRITE feature: a plain-HTTP request for a TLS host gets the redirect
itself, not first a 308 to HTTPS.
"""

from __future__ import annotations

import re
from typing import Any

import dataclasses
from typing import Mapping

from ingressd import (
    Annotation,
    AnnotationError,
    HostRoute,
    LocalResponse,
    Phase,
    hookimpl,
    parse_bool,
    parse_int,
)
from ingressd import same_for_every_path, values_in_use

from ._redirects import REDIRECT_CODES, Redirect as Redirected
from ._responses import absolute_location, plain

PERMANENT_DEFAULT, TEMPORAL_DEFAULT = 301, 302

# ingress-nginx's parser.URLIsValidRegex (alphaNumericChars + urlEnabledChars).
_URL_CHARS = re.compile(r"[-._~a-zA-Z0-9/:,?&=]*")
# ingress-nginx's parser.RegexPathWithCapture, without the "$" we refuse.
_ROOT = re.compile(r"/[-._~a-zA-Z0-9/:]*")
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")
_HTTP_URL = re.compile(r"https?://", re.IGNORECASE)
# What may stand for a Host header as sent (nginx's $http_host) in a Location: a DNS name or an
# IP literal, with a port, any case (the client's Host must not change the URL's structure).
_HTTP_HOST = re.compile(rb"([A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")


def _parse_url(value: str) -> str:
    if "$" in value:
        raise AnnotationError("variables ($…) are not supported in a redirect URL")
    if not _URL_CHARS.fullmatch(value):
        raise AnnotationError(
            f"{value!r} is not a URL ingress-nginx accepts (only letters, digits and - . _ ~ / : , ? & =)")
    return value


def _parse_root(value: str) -> str:
    if "$" in value:
        raise AnnotationError("variables ($…) are not supported in app-root")
    if _SCHEME.match(value) or value.startswith("//"):
        raise AnnotationError(f"app-root must be a path, not an absolute URL, got {value!r}")
    if not _ROOT.fullmatch(value):
        raise AnnotationError(
            f"app-root must be a path starting with '/' (letters, digits and - . _ ~ / :), got {value!r}")
    return value


class AppRoot:
    """``app-root``: a request for ``/`` is redirected (302) to the application's root."""

    phase = Phase.REWRITE - 2  # server level: before every location's rewrite directives

    def __init__(self, root: str):
        self._root = root.encode("ascii")

    def request(self, exchange: Any) -> LocalResponse | None:
        if exchange.path != "/":
            return None
        http_host = exchange.headers.get(b"host") or b""  # nginx's $http_host: as sent
        if http_host and not _HTTP_HOST.fullmatch(http_host):
            return plain(400)
        location = exchange.scheme.encode("ascii") + b"://" + http_host + self._root
        return plain(302, [(b"location", location)])


class FixedLocation:
    """``permanent-redirect`` / ``temporal-redirect``'s URL as the Location: as written, a path made
    absolute as nginx makes it (``_responses.absolute_location``)."""

    def __init__(self, url: str, relative: bool = False, with_port: bool = False):
        self._url = url.encode("ascii")
        self._relative = relative  # relative-redirects: absolute_redirect off
        self._with_port = with_port  # use-port-in-redirects: port_in_redirect on

    def __call__(self, exchange: Any) -> bytes | None:
        return absolute_location(exchange, self._url, self._relative, self._with_port)


def _as_written(url: str):
    text = url.encode("ascii")
    return lambda exchange: text  # the body of a ``return`` that is not a redirect: never made absolute


class Redirect(Redirected):
    """``permanent-redirect`` / ``temporal-redirect``: every request answered ``return CODE URL``
    (``_redirects.Redirect``, the code the Gateway API's RequestRedirect uses)."""

    def __init__(self, code: int, url: str, relative: bool = False, with_port: bool = False):
        if code in REDIRECT_CODES:
            super().__init__(code, FixedLocation(url, relative, with_port))
        else:
            super().__init__(code, _as_written(url))


class WWWRedirect:
    """The other name of a ``from-to-www-redirect`` host: every request redirected to the host."""

    phase = Phase.REWRITE - 2

    def __init__(self, to: str, code: int):
        self._to = to.encode("ascii")
        self._code = code

    def request(self, exchange: Any) -> LocalResponse | None:
        # nginx's $request_uri: path and query as sent (normalised where the core normalised
        # it, as plugins/ssl_redirect.py explains); ngx_srv_redirect.lua drops a final "/".
        uri = exchange.target
        if not uri.startswith(b"/"):  # absolute-form or "*": the parsed path and query
            uri = exchange.path.encode("utf-8") + (b"?" + exchange.query if exchange.query else b"")
        if uri.endswith(b"/"):
            uri = uri[:-1]
        location = b"%s://%s:%d%s" % (exchange.scheme.encode("ascii"), self._to, exchange.server_port, uri)
        return plain(self._code, [(b"location", location)])


def _other_name(host: str) -> str | None:
    """``www.foo.com`` ↔ ``foo.com``; None for a wildcard or a rule without host."""
    if not host or "*" in host:
        return None
    return host[4:] if host.startswith("www.") else f"www.{host}"


def _redirect_code(settings: Mapping[str, Any]) -> int:
    """ingress-nginx's http-redirect-code: ingressd's --http-redirect-code (plugins/ssl_redirect.py)."""
    for key in ("http-redirect-code", "http_redirect_code"):
        if settings.get(key) is not None:
            return int(settings[key])
    return 308


def _code(value: Any, default: int, highest: int) -> int:
    """ingress-nginx: a code outside 300…highest is the default, silently."""
    return value if isinstance(value, int) and 300 <= value <= highest else default


def _style(values) -> tuple[bool, bool]:
    """(relative-redirects, use-port-in-redirects) of the route."""
    return bool(values.get("relative-redirects")), bool(values.get("use-port-in-redirects"))


@hookimpl
def ingressd_annotations():
    return [
        Annotation("app-root", _parse_root, "", "redirect requests for / (302) to this path"),
        Annotation("permanent-redirect", _parse_url, "", "answer every request with a redirect to this URL"),
        Annotation("permanent-redirect-code", parse_int(), PERMANENT_DEFAULT,
                   "status of permanent-redirect (300–308; else 301)"),
        Annotation("temporal-redirect", _parse_url, "", "answer every request with a redirect to this URL"),
        Annotation("temporal-redirect-code", parse_int(), TEMPORAL_DEFAULT,
                   "status of temporal-redirect (300–307; else 302)"),
        Annotation("from-to-www-redirect", parse_bool, False, "redirect www.HOST to HOST, or HOST to www.HOST"),
        Annotation("relative-redirects", parse_bool, False, "keep redirects to a path relative (absolute_redirect off)"),
        Annotation("use-port-in-redirects", parse_bool, False, "put the server port in redirects (port_in_redirect on)"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    features: list = []
    root = values.get("app-root") or ""
    if root:
        features.append(AppRoot(root))
    temporal = values.get("temporal-redirect") or ""
    permanent = values.get("permanent-redirect") or ""
    if temporal:
        if not _HTTP_URL.match(temporal):
            raise AnnotationError(
                f"temporal-redirect must be an http:// or https:// URL, got {temporal!r} "
                "(ingress-nginx would ignore it and proxy the request)")
        features.append(Redirect(_code(values.get("temporal-redirect-code"), TEMPORAL_DEFAULT, 307), temporal,
                                 *_style(values)))
    elif permanent:
        features.append(Redirect(_code(values.get("permanent-redirect-code"), PERMANENT_DEFAULT, 308), permanent,
                                 *_style(values)))
    return features or None


@hookimpl
def ingressd_host_routes(config, context):
    # Which Ingresses ask, by the identity of their (shared) features tuples: a configuration
    # where none does (the usual one) costs a look at its distinct tuples (``context.values_in_use``,
    # followed from the last configuration: no pass over the routes) and no more.
    tuples = values_in_use(config.routes) if context is None else context.values_in_use(config.routes)
    asking = {key for key, features in tuples.items() if dict(features).get("from-to-www-redirect")}
    if not asking:
        return []
    hosts = {route.host for route in config.routes}
    certificates = {}
    for tls_host in config.tls_hosts:
        certificates.setdefault(tls_host.host, tls_host)
    code = _redirect_code(context.settings if context is not None else {})
    added = []
    done: set[str] = set()
    for route in config.routes:  # oldest Ingress first: the first one asking owns the redirect
        if id(route.features) not in asking or route.host in done:
            continue
        other = _other_name(route.host)
        if other is None or other in hosts:
            continue  # ingress-nginx: "Already exists an Ingress with … hostname. Skipping"
        done.add(route.host)
        tls_host = certificates.get(route.host)
        added.append(HostRoute(
            route=dataclasses.replace(route, host=other, path="/", path_type="Prefix"),
            features=(WWWRedirect(route.host, code),),
            tls_host=dataclasses.replace(tls_host, host=other, covered_only=True) if tls_host else None,
        ))
    return added
