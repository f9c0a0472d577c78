"""External authentication (``auth-url`` and its family), as ingress-nginx's ``auth_request``.

Before a request of the route is proxied, ingressd asks the authentication service at
``auth-url`` (through the server's sub-request client, ``context.subrequests``: pooled
connections, never blocking other requests) and acts on its answer as nginx's
``auth_request`` and ingress-nginx's template do:

- 2xx: the request goes on to its backend, with the headers listed in
  ``auth-response-headers`` taken from the auth answer (a header the answer lacks is removed
  from the request: a client's own copy never reaches the backend, as nginx's
  ``proxy_set_header X $authHeaderN`` with an empty value); the answer's ``Set-Cookie`` lines
  are added to the backend's answer when its status is 200, 201, 204, 206, 301, 302, 303, 304,
  307 or 308 (any status with ``auth-always-set-cookie``).
- 401: with ``auth-signin``, a 302 to the sign-in URL with ``rd=`` (``auth-signin-redirect-param``)
  the original URL (``$pass_access_scheme://$http_host$escaped_request_uri``) and the answer's
  ``Set-Cookie``; without, a 401 with the answer's ``WWW-Authenticate``.
- 403: a 403. Any other status, a timeout, a refused or failed connection: a 500. The backend
  is never asked.

The sub-request (``location = /_external-auth-…`` in nginx.tmpl): method GET (or
``auth-method``), no body, the client's request headers (hop-by-hop headers and ingressd's
forwarding headers left out) with ``Host`` (the auth URL's host, without port),
``X-Original-URL``, ``X-Original-Method``, ``X-Sent-From: nginx-ingress-controller``,
``X-Real-IP``, ``X-Forwarded-For``, ``X-Request-ID``, ``X-Auth-Request-Redirect``
(``auth-request-redirect`` or ``$request_uri``), with ``auth-method`` also ``X-Original-URI``
and ``X-Scheme``, and the ``auth-proxy-set-headers`` ConfigMap's headers. A client's copy of
any of these is replaced. ``X-Forwarded-Proto`` is not sent (nginx.tmpl clears it);
``X-Forwarded-Host`` is the request's host as ingressd decided it (nginx passes on whatever the
client sent). Variables in ``auth-url``, ``auth-signin`` and the ConfigMap's values
(``_auth_variables``) are substituted as data: a substituted byte that is not visible ASCII is
percent-encoded, so CR and LF never reach the sub-request or the redirect.

``auth-cache-key`` and ``auth-cache-duration`` cache answers (``_auth_cache``). The
``auth-keepalive*`` annotations are read and validated; connections to the auth service are
always pooled and reused (the server's upstream pool), which is what they ask for.
``enable-global-auth`` opts a route out of the controller-wide ``--global-auth-url``, which the
ConfigMap's ``global-auth-*`` keys configure as the annotations of the same names do a route
(``--global-auth-signin-redirect-param``, ``--global-auth-request-redirect``,
``--global-auth-cache-key``, ``--global-auth-cache-duration``). Routes whose Ingress path starts
with an item of ``--no-auth-locations`` (ingress-nginx's ``no-auth-locations``; default
``/.well-known/acme-challenge``, so certificates can be issued for guarded hosts) are never
authenticated (``_no_auth``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

from twisted.python import log

from ingressd import (
    Annotation,
    AnnotationError,
    Option,
    Phase,
    SubrequestError,
    check_plain_text,
    hookimpl,
    parse_bool,
    parse_int,
    parse_url,
)

from . import _auth_cache, _no_auth
from ._auth_variables import Template, escape_uri, make_safe, parse_template
from ._header_values import HOP_BY_HOP
from ._responses import DeniedLocation, plain

# ingress-nginx's validators (internal/ingress/annotations/parser/validators.go, authreq/main.go).
_URL_WITH_VARIABLES = re.compile(r"[\-._~a-zA-Z0-9/:, ?&=$]*")  # URLWithNginxVariableRegex
_URL_IS_VALID = re.compile(r"[\-._~a-zA-Z0-9/:,?&=]*")  # URLIsValidRegex
_BASIC_CHARS = re.compile(r"[/\-._~a-zA-Z0-9:]*")  # BasicCharsRegex
_CACHE_KEY = re.compile(r"[A-Za-z0-9\-_${}]*")  # NGINXVariable
_HEADERS = re.compile(r"[A-Za-z0-9\-_, ]*")  # HeadersVariable
_HEADER = re.compile(r"[a-zA-Z0-9\-_]+")  # headerRegexp
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"))

_HOP_BY_HOP = frozenset(name.encode("ascii") for name in HOP_BY_HOP)
# The forwarding headers ingressd sets for backends: a client's copy never reaches the auth service.
_FORWARDING = frozenset((
    b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-forwarded-scheme",
    b"x-real-ip", b"x-request-id", b"x-scheme", b"x-original-forwarded-for", b"x-original-forwarded-host",
))
_SET = frozenset((b"host", b"x-original-url", b"x-original-method", b"x-sent-from", b"x-auth-request-redirect",
                  b"x-original-uri"))
# add_header without ``always``: the statuses it adds to.
_COOKIE_STATUSES = frozenset((200, 201, 204, 206, 301, 302, 303, 304, 307, 308))
_CACHED_METHODS = frozenset((b"GET", b"HEAD"))  # proxy_cache_methods


# -- annotations ------------------------------------------------------------------------------


def _auth_url(text: str) -> Template:
    value = check_plain_text(text)
    if not value or not _URL_WITH_VARIABLES.fullmatch(value):
        raise AnnotationError(f"{value!r} is not a valid auth-url (letters, digits, -._~/:,?&=$ and spaces "
                              "as ingress-nginx allows)")
    if not value.startswith(("http://", "https://")):
        raise AnnotationError(f"{value!r}: the auth-url must start with http:// or https://")
    template = parse_template(value, "auth-url: ")
    literal = template.literal
    if literal is not None:
        try:
            parse_url(value)
        except SubrequestError as exc:
            raise AnnotationError(str(exc)) from None
    elif not re.match(r"https?://[^/?]", value):
        raise AnnotationError(f"{value!r} has no host")
    return template


def _method(text: str) -> str:
    if text not in _METHODS:
        raise AnnotationError(f"invalid HTTP method {text!r} (one of {', '.join(sorted(_METHODS))})")
    return text


def _signin(text: str) -> Template:
    value = check_plain_text(text)
    if not _URL_WITH_VARIABLES.fullmatch(value):
        raise AnnotationError(f"{value!r} is not a valid auth-signin URL (letters, digits, -._~/:,?&=$ and "
                              "spaces as ingress-nginx allows)")
    return parse_template(value, "auth-signin: ")


def _redirect_param(text: str) -> str:
    if not text or not _URL_IS_VALID.fullmatch(text) or any(c in text for c in "?&=/:,"):
        raise AnnotationError(f"{text!r} is not a valid query parameter name")
    return text


def _response_headers(text: str) -> tuple[bytes, ...]:
    if not _HEADERS.fullmatch(text):
        raise AnnotationError("invalid headers list (names separated by commas)")
    names = []
    for name in text.split(","):
        name = name.strip()
        if not name:
            continue
        if not _HEADER.fullmatch(name):
            raise AnnotationError(f"invalid header name {name!r}")
        lowered = name.lower().encode("ascii")
        if lowered in _HOP_BY_HOP or lowered == b"host":
            raise AnnotationError(f"{name} is a hop-by-hop or framing header (or Host): it cannot be copied "
                                  "from the auth answer")
        if lowered not in names:
            names.append(lowered)
    return tuple(names)


def _request_redirect(text: str) -> str:
    if not _URL_IS_VALID.fullmatch(text):
        raise AnnotationError(f"{text!r} is not valid (letters, digits and -._~/:,?&=)")
    return text


def _reference(text: str) -> str:
    value = text.strip()
    if not value or not _BASIC_CHARS.fullmatch(value) or value.count("/") > 1:
        raise AnnotationError(f"{text!r} is not a ConfigMap name or namespace/name")
    return value


def _cache_key(text: str) -> Template:
    if not text or not _CACHE_KEY.fullmatch(text):
        raise AnnotationError(f"{text!r} is not a valid cache key (letters, digits, -_ and $variables)")
    return parse_template(text, "auth-cache-key: ")


def _durations(text: str) -> tuple:
    return _auth_cache.parse_durations(text)


@hookimpl
def ingressd_annotations():
    return [
        Annotation("auth-url", _auth_url, None, "the URL of the external authentication service"),
        Annotation("auth-method", _method, None, "the method of the auth sub-request (default GET)"),
        Annotation("auth-signin", _signin, None, "where a 401 from the auth service redirects the client"),
        Annotation("auth-signin-redirect-param", _redirect_param, "rd", "the sign-in URL's parameter for the "
                   "original URL"),
        Annotation("auth-response-headers", _response_headers, (), "headers of the auth answer copied to the "
                   "backend request"),
        Annotation("auth-request-redirect", _request_redirect, None, "the X-Auth-Request-Redirect value"),
        Annotation("auth-proxy-set-headers", _reference, None, "a ConfigMap of headers sent to the auth service",
                   resolve="configmap"),
        Annotation("auth-cache-key", _cache_key, None, "caches auth answers per this key"),
        Annotation("auth-cache-duration", _durations, None, "how long answers are cached, by status"),
        Annotation("auth-always-set-cookie", parse_bool, False, "the auth answer's Set-Cookie on every answer"),
        Annotation("auth-keepalive", parse_int(), 0, "keep-alive connections to the auth service (always pooled)"),
        Annotation("auth-keepalive-requests", parse_int(), 1000, "requests per keep-alive connection"),
        Annotation("auth-keepalive-timeout", parse_int(), 60, "idle keep-alive timeout, seconds"),
        Annotation("auth-keepalive-share-vars", parse_bool, False, "nginx variables shared with the sub-request "
                   "(nothing to share in ingressd)"),
        Annotation("enable-global-auth", parse_bool, True, "false: the route skips --global-auth-url"),
    ]


def _checked(parse):
    """An option's text, checked by ``parse`` when the server starts (a bad value stops it)."""
    def check(text: str) -> str:
        try:
            parse(text)
        except AnnotationError as exc:
            raise ValueError(str(exc)) from None
        return text
    return check


@hookimpl
def ingressd_options():
    return [
        Option("global-auth-url", None, "external authentication for every route without auth-url "
               "(ingress-nginx's global-auth-url; enable-global-auth: false opts a route out)",
               _checked(_auth_url)),
        Option("global-auth-method", None, "the method of the global auth sub-request", _checked(_method)),
        Option("global-auth-signin", None, "where a 401 of the global auth service redirects", _checked(_signin)),
        Option("global-auth-response-headers", None, "headers of the global auth answer copied to backends",
               _checked(_response_headers)),
        Option("global-auth-signin-redirect-param", None, "the global sign-in URL's parameter for the original "
               "URL (default rd)", _checked(_redirect_param)),
        Option("global-auth-request-redirect", None, "the X-Auth-Request-Redirect value sent to the global auth "
               "service", _checked(_request_redirect)),
        Option("global-auth-cache-key", None, "caches the global auth service's answers per this key",
               _checked(_cache_key)),
        Option("global-auth-cache-duration", None, "how long the global auth answers are cached, by status",
               _checked(_durations)),
        Option("no-auth-locations", _no_auth.DEFAULT, "Ingress path prefixes never authenticated (external, "
               "global or basic auth), comma-separated", _no_auth.parse_locations),
    ]


# -- per request ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AuthConfig:
    """One route's external authentication, parsed and checked."""

    url: Template
    method: bytes = b"GET"
    method_set: bool = False  # auth-method given: X-Original-URI and X-Scheme are sent
    signin: Template | None = None
    redirect_param: str = "rd"
    response_headers: tuple[bytes, ...] = ()
    request_redirect: bytes | None = None
    proxy_headers: tuple[tuple[bytes, Template], ...] = ()
    cache_key: Template | None = None
    cache_durations: tuple = ()
    always_set_cookie: bool = False


class _Granted:
    """What a 2xx answer gives a request: the copied headers and the cookies to set."""

    __slots__ = ("headers", "cookies")

    def __init__(self, headers: list, cookies: list):
        self.headers = headers
        self.cookies = cookies


class ExternalAuth:
    """Asks the auth service before each request of the route is proxied (phase AUTH)."""

    phase = Phase.AUTH
    access_check = True  # combined with the others under ``satisfy: any``

    def __init__(self, config: AuthConfig, client: Any, cache: Any, route_key: bytes, failures: list):
        self.config = config
        self._client = client
        self._cache = cache
        self._route_key = route_key
        self._failures = failures  # [count], shared by the server's routes: logged 1, 2, 4, 8… times
        self._granted: dict[int, _Granted] = {}
        self._signin = _signin_parts(config.signin, config.redirect_param) if config.signin is not None else None

    # -- the request feature --------------------------------------------------------------

    def request(self, exchange: Any):
        config = self.config
        if self._client is None:
            return self._refuse(exchange, "no sub-request client")
        # The request's slot for what a 2xx grants; gone when the exchange is over, so an
        # answer arriving after that leaves nothing behind.
        slot = id(exchange)
        self._granted[slot] = None
        exchange.on_finish(lambda: self._granted.pop(slot, None))
        try:
            url = parse_url(config.url.expand(exchange).decode("latin-1"))
        except SubrequestError as exc:
            return self._refuse(exchange, str(exc))
        key = None
        if self._cache is not None and config.cache_key is not None and config.method in _CACHED_METHODS:
            key = hashlib.sha256(self._route_key + b"\0" + config.cache_key.expand(exchange, safe=False)).digest()
            cached = self._cache.get(key)
            if cached is not None:
                return self._decide(exchange, cached)
        headers = self._headers(exchange, url)
        sent = self._client.fetch(config.method, url, headers, None, discard=True)
        sent.addCallbacks(self._answered, self._failed, (exchange, key), None, (exchange,))
        return sent

    def _answered(self, answer: Any, exchange: Any, key: bytes | None):
        if key is not None:
            seconds = _auth_cache.lifetime(self.config.cache_durations, answer.status, answer.headers)
            if seconds:
                self._cache.put(key, _kept(answer, self.config.response_headers), seconds)
        return self._decide(exchange, answer)

    def _failed(self, failure: Any, exchange: Any):
        return self._refuse(exchange, failure.getErrorMessage())

    def _refuse(self, exchange: Any, reason: str):
        self._failures[0] += 1
        count = self._failures[0]
        if count & (count - 1) == 0:
            log.msg(f"ingressd: external authentication for {exchange.route.ingress if exchange.route else '?'} "
                    f"failed ({count} so far): {reason}; answering 500")
        return plain(500)

    def _decide(self, exchange: Any, answer: Any):
        status = answer.status
        cookies = [(b"set-cookie", value) for value in answer.header_values(b"set-cookie")]
        if 200 <= status < 300:
            slot = id(exchange)
            if slot in self._granted:  # else the exchange is over: nothing to grant
                self._granted[slot] = _Granted(
                    [(name, _copied(answer, name)) for name in self.config.response_headers], cookies)
            return None
        always = cookies if self.config.always_set_cookie else []
        if status == 401:
            if self._signin is not None:
                redirect = plain(302, [(b"location", self._signin_url(exchange)), *cookies])
                redirect.denial = 401  # nginx's error_page 401 = @signin: a 401 to ``satisfy any``
                return redirect
            challenges = [(b"www-authenticate", value) for value in answer.header_values(b"www-authenticate")]
            return plain(401, [*challenges, *always])
        if status == 403:
            return plain(403, always)
        self._failures[0] += 1
        count = self._failures[0]
        if count & (count - 1) == 0:
            log.msg(f"ingressd: the auth service answered {status} ({count} failures so far); answering 500")
        return plain(500, always)

    def _signin_url(self, exchange: Any) -> bytes:
        template, separator = self._signin
        location = template.expand(exchange)
        if separator is None:
            return location
        host = make_safe(exchange.headers.get(b"host") or b"")
        original = exchange.scheme.encode("ascii") + b"://" + host + escape_uri(exchange.request_uri)
        return location + separator + original

    def _headers(self, exchange: Any, url: Any) -> list:
        config = self.config
        replaced = _SET | _HOP_BY_HOP | _FORWARDING | frozenset(name for name, _ in config.proxy_headers)
        if config.method_set:
            replaced |= {b"x-scheme"}
        connection = b",".join(exchange.headers.get_all(b"connection"))
        if connection:
            replaced |= {token.strip().lower() for token in connection.split(b",") if token.strip()}
        lines = [(b"host", url.host.encode("ascii"))]
        lines.extend(pair for pair in exchange.headers.pairs if pair[0] not in replaced)
        request_uri = make_safe(exchange.request_uri)
        client = exchange.client_ip.encode("ascii")
        http_host = make_safe(exchange.headers.get(b"host") or b"")
        scheme = b"https" if exchange.https else b"http"
        lines += [
            (b"x-request-id", exchange.request_id.encode("ascii")),
            (b"x-original-url", scheme + b"://" + http_host + request_uri),
            (b"x-original-method", exchange.method),
            (b"x-sent-from", b"nginx-ingress-controller"),
            (b"x-real-ip", client),
            (b"x-forwarded-for", client),
            (b"x-forwarded-host", http_host),
            (b"x-auth-request-redirect", config.request_redirect or request_uri),
        ]
        if config.method_set:
            lines += [(b"x-original-uri", request_uri), (b"x-scheme", exchange.scheme.encode("ascii"))]
        lines.extend((name, template.expand(exchange)) for name, template in config.proxy_headers)
        return lines

    # -- the backend request and the answer -------------------------------------------------

    def upstream_request(self, exchange: Any, headers: list) -> None:
        names = self.config.response_headers
        if not names:
            return
        headers[:] = [pair for pair in headers if pair[0] not in names]
        granted = self._granted.get(id(exchange))
        if granted is not None:
            headers.extend(pair for pair in granted.headers if pair[1])

    def response(self, exchange: Any, status: int, headers: list) -> None:
        granted = self._granted.get(id(exchange))
        if granted is not None and granted.cookies and (self.config.always_set_cookie or status in _COOKIE_STATUSES):
            headers.extend(granted.cookies)


def _copied(answer: Any, name: bytes) -> bytes:
    """nginx's ``$upstream_http_NAME``: the answer's lines of that name (``-`` and ``_`` alike),
    joined with ", "; empty when it has none."""
    wanted = name.replace(b"_", b"-")
    return b", ".join(value for key, value in answer.headers if key.replace(b"_", b"-") == wanted)


def _kept(answer: Any, names: tuple[bytes, ...]) -> Any:
    """What a cached answer needs: its status and the headers a request may take from it."""
    wanted = {name.replace(b"_", b"-") for name in names} | {b"www-authenticate"}
    headers = tuple(pair for pair in answer.headers if pair[0].replace(b"_", b"-") in wanted)
    return dataclasses.replace(answer, headers=headers, body=b"")


def _signin_parts(signin: Template, param: str) -> tuple[Template, bytes | None]:
    """ingress-nginx's buildAuthSignURL: ``?rd=`` when the sign-in URL has no query, nothing when
    it already gives the parameter a value, else ``&rd=``; the original URL follows at run time."""
    _, _, query = signin.text.partition("?")
    if not query:
        return signin, f"?{param}=".encode("ascii")
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if key == param and value:
            return signin, None
    return signin, f"&{param}=".encode("ascii")


# -- per route ----------------------------------------------------------------------------------


def _config(values: Any, route: Any) -> AuthConfig | str:
    """The route's AuthConfig, or the reason its requests are refused (503)."""
    method = values.get("auth-method")
    proxy_headers: list = []
    raw = next((value.strip() for name, value in route.annotations
                if name.rpartition("/")[2] == "auth-proxy-set-headers" and value.strip()), None)
    if raw is not None:
        config_map = values.get("auth-proxy-set-headers")
        if config_map is None or not hasattr(config_map, "data"):
            return f"unable to find configMap {raw!r}"
        for name, value in sorted(config_map.data):
            lowered = name.lower().encode("ascii", "replace")
            if not _HEADER.fullmatch(name) or lowered in _HOP_BY_HOP or lowered in (b"host", b"content-length"):
                return "invalid proxy-set-headers in configmap"
            try:
                check_plain_text(value)
                proxy_headers.append((lowered, parse_template(value, f"auth-proxy-set-headers {name}: ")))
            except AnnotationError as exc:
                return f"invalid proxy-set-headers in configmap: {exc}"
    redirect = values.get("auth-request-redirect")
    return AuthConfig(
        url=values["auth-url"],
        method=(method or "GET").encode("ascii"),
        method_set=bool(method),
        signin=values.get("auth-signin"),
        redirect_param=values.get("auth-signin-redirect-param") or "rd",
        response_headers=values.get("auth-response-headers") or (),
        request_redirect=redirect.encode("ascii") if redirect else None,
        proxy_headers=tuple(proxy_headers),
        cache_key=values.get("auth-cache-key"),
        cache_durations=values.get("auth-cache-duration") or _auth_cache.parse_durations(
            _auth_cache.DEFAULT_DURATION),
        always_set_cookie=bool(values.get("auth-always-set-cookie")),
    )


def _global_config(settings: Any) -> AuthConfig | None:
    text = settings.get("global_auth_url")
    if not text:
        return None
    url = _auth_url(text)
    method = settings.get("global_auth_method")
    signin = settings.get("global_auth_signin")
    headers = settings.get("global_auth_response_headers")
    param = settings.get("global_auth_signin_redirect_param")
    redirect = settings.get("global_auth_request_redirect")
    cache_key = settings.get("global_auth_cache_key")
    durations = settings.get("global_auth_cache_duration")
    return AuthConfig(
        url=url,
        method=_method(method).encode("ascii") if method else b"GET",
        method_set=bool(method),
        signin=_signin(signin) if signin else None,
        redirect_param=_redirect_param(param.strip()) if param else "rd",
        response_headers=_response_headers(headers) if headers else (),
        request_redirect=_request_redirect(redirect).encode("ascii") if redirect else None,
        cache_key=_cache_key(cache_key) if cache_key else None,
        cache_durations=_durations(durations) if durations else _auth_cache.parse_durations(
            _auth_cache.DEFAULT_DURATION),
    )


@hookimpl
def ingressd_route_features(route, values, context):
    if _no_auth.exempt(route.path, context.settings if context is not None else None):
        return None
    if values.get("auth-url") is not None:
        config = _config(values, route)
    elif values.get("enable-global-auth", True):
        config = _global_config(context.settings)
        if config is None:
            return None
    else:
        return None
    if isinstance(config, str):
        return DeniedLocation(config, Phase.AUTH)
    state = context.plugin_state("ext_auth")
    cache = state.get("cache")
    if cache is None:
        cache = state["cache"] = _auth_cache.AuthCache(context.reactor)
    failures = state.setdefault("failures", [0])
    route_key = "\0".join((route.host, route.path, route.path_type)).encode("utf-8")
    return ExternalAuth(config, context.subrequests, cache, route_key, failures)
