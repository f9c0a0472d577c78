"""HTTP → HTTPS redirects and the HSTS header, as ingress-nginx does them.

Annotations: ``ssl-redirect`` (default true: redirect plain-HTTP requests for hosts named
in the Ingress's TLS section), ``force-ssl-redirect`` (default false: redirect even without
TLS, e.g. behind a load balancer terminating TLS) and ``preserve-trailing-slash`` (default
false).

The Location is ``https://`` + host + the request URI (path and query as sent) with its last
character dropped when that is ``/`` and preserve-trailing-slash is off, exactly as
ingress-nginx's rewrite phase does it (rootfs/etc/nginx/lua/lua_ingress.lua): ``/`` →
``https://host``, ``/foo/`` → ``https://host/foo``, but ``/foo/?a=b`` keeps its slash (the
URI ends in ``b``) and ``/x?next=/`` loses the query's last ``/``. The body is nginx's title
for the code (``308 Permanent Redirect``). Where we differ: the host is the one ingressd
routes by (lower-cased, without a trailing dot) where nginx echoes the Host header's
spelling, and an IPv6 literal stays whole (ingress-nginx cuts the Host at its first ``:``,
which leaves ``https://[``).

Options: ``--https-redirect-port`` (unset: no port in the Location, as ingress-nginx on 443;
any port but 443 appears in it: the external HTTPS port behind a load balancer, or the demo's
8443; ``--https-port-for-redirect`` is its older name),
``--http-redirect-code`` (308), ``--hsts`` (true; ``--hsts false`` turns it off),
``--hsts-max-age`` (31536000), ``--hsts-include-subdomains`` (true), ``--hsts-preload``
(false) and ``--no-tls-redirect-locations`` (``/.well-known/acme-challenge``: path prefixes
never redirected, so HTTP-01 challenges keep working).

The redirect is answered in the REWRITE phase, before authentication, as in ingress-nginx.
HSTS is set (replacing an upstream's) on HTTPS responses for hosts with TLS.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ingressd.features import (
    Annotation,
    AnnotationError,
    LocalResponse,
    Option,
    Phase,
    parse_bool,
    parse_int,
    parse_list,
)

from ingressd import hookimpl
from ingressd import same_for_every_path
from ._responses import plain

REDIRECT_CODES = (301, 302, 303, 307, 308)
_HSTS = b"strict-transport-security"
# What may stand for the host in a Location we build: a DNS name or an IPv6 literal (with
# its brackets, as the Host header carries it, or without); the Host header is the
# client's, but it must not be able to change the URL's structure.
_HOST = re.compile(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?|\[[0-9a-f:.]+\]|[0-9a-f:.]+")


def _parse_redirect_code(value: str) -> int:
    code = parse_int()(value)
    if code not in REDIRECT_CODES:
        raise AnnotationError(f"expected one of {', '.join(map(str, REDIRECT_CODES))}, got {code}")
    return code


def _parse_locations(value: str) -> tuple[str, ...]:
    locations = parse_list(value)
    for location in locations:
        if not location.startswith("/") or any(ord(c) < 0x21 or ord(c) == 0x7F for c in location):
            raise AnnotationError(f"{location!r} is not a path prefix")
    return locations


class SSLRedirect:
    """Redirects plain-HTTP requests to HTTPS and adds HSTS to HTTPS responses (REWRITE).

    Built per route with everything decided: the request path only compares the scheme
    and formats the Location.
    """

    phase = Phase.REWRITE

    def __init__(
        self,
        redirect: bool,
        preserve_trailing_slash: bool = False,
        https_port: int = 443,
        code: int = 308,
        hsts: bytes | None = None,
        exempt: tuple[str, ...] = (),
    ) -> None:
        self._redirect = redirect
        self._preserve_trailing_slash = preserve_trailing_slash
        self._port = b"" if https_port == 443 else b":%d" % https_port
        self._code = code
        self._hsts = hsts
        self._exempt = exempt
        # Over https ``request`` continues and ``response`` only sets HSTS: such requests may
        # take the exchange's plain lane, which sets it (features.py: https_response_fields).
        self.https_response_fields = ((_HSTS, hsts),) if hsts is not None else ()

    def request(self, exchange: Any) -> LocalResponse | None:
        if not self._redirect or exchange.scheme != "http":
            return None
        if self._exempt and exchange.path.startswith(self._exempt):
            return None
        host = exchange.host
        if not host:
            return None  # HTTP/1.0 without Host: nowhere to send the client
        if not _HOST.fullmatch(host):
            return plain(400)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 literal
        # nginx's $request_uri: path and query as the client sent them. ``target`` is that
        # unless the core normalised the path (dot segments, //, needless %-escapes): then
        # it is the normalised one, which names the same resource.
        uri = exchange.target
        if not uri.startswith(b"/"):  # absolute-form or "*": the parsed path and query
            uri = exchange.path.encode("utf-8") + (b"?" + exchange.query if exchange.query else b"")
        if not self._preserve_trailing_slash and uri.endswith(b"/"):
            uri = uri[:-1]  # one character, even when the URI is just "/"
        location = b"https://" + host.encode("ascii") + self._port + uri
        return plain(self._code, [(b"location", location)])

    def response(self, exchange: Any, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self._hsts is None or exchange.scheme != "https":
            return
        headers[:] = [(name, value) for name, value in headers if name.lower() != _HSTS]
        headers.append((_HSTS, self._hsts))


def hsts_value(max_age: int, include_subdomains: bool, preload: bool) -> bytes:
    value = b"max-age=%d" % max_age
    if include_subdomains:
        value += b"; includeSubDomains"
    if preload:
        value += b"; preload"
    return value


def _setting(settings: Mapping[str, Any], name: str, default: Any) -> Any:
    """An option's value by its long name (the core may key it with '-' or '_')."""
    for key in (name, name.replace("-", "_")):
        if key in settings and settings[key] is not None:
            return settings[key]
    return default


def _switch(value: str) -> bool:
    """An option's on/off: the annotation spellings, and yes/no/on/off in any case (an
    operator's command line is not an ingress-nginx manifest)."""
    lowered = value.strip().lower()
    if lowered in ("yes", "on"):
        return True
    if lowered in ("no", "off"):
        return False
    return parse_bool(lowered)


def _as_bool(value: Any) -> bool:
    return _switch(value) if isinstance(value, str) else bool(value)


@hookimpl
def ingressd_options():
    return [
        Option("https-redirect-port", None, "the external HTTPS port put in redirects (omitted when unset or 443)", parse_int(1, 65535)),
        Option("https-port-for-redirect", 443, "older name of --https-redirect-port", parse_int(1, 65535)),
        Option("http-redirect-code", 308, "status of HTTP → HTTPS redirects (301, 302, 303, 307, 308)", _parse_redirect_code),
        Option("hsts", True, "send Strict-Transport-Security on HTTPS responses for TLS hosts (--hsts false: off)", _switch),
        Option("hsts-max-age", 31536000, "HSTS max-age in seconds", parse_int(0)),
        Option("hsts-include-subdomains", True, "add includeSubDomains to HSTS", _switch),
        Option("hsts-preload", False, "add preload to HSTS", _switch),
        Option("no-tls-redirect-locations", ("/.well-known/acme-challenge",), "path prefixes never redirected to HTTPS (comma-separated)", _parse_locations),
    ]


@hookimpl
def ingressd_annotations():
    return [
        Annotation("ssl-redirect", parse_bool, True, "redirect HTTP to HTTPS when the host has TLS"),
        Annotation("force-ssl-redirect", parse_bool, False, "redirect HTTP to HTTPS even without TLS"),
        Annotation("preserve-trailing-slash", parse_bool, False, "keep a trailing slash in the redirect"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    settings = context.settings if context is not None else {}
    redirect = bool(values.get("force-ssl-redirect")) or (
        route.tls and bool(values.get("ssl-redirect", True))
    )
    hsts = None
    if route.tls and _as_bool(_setting(settings, "hsts", True)):
        hsts = hsts_value(
            int(_setting(settings, "hsts-max-age", 31536000)),
            _as_bool(_setting(settings, "hsts-include-subdomains", True)),
            _as_bool(_setting(settings, "hsts-preload", False)),
        )
    if not redirect and hsts is None:
        return None
    exempt = _setting(settings, "no-tls-redirect-locations", ("/.well-known/acme-challenge",))
    if isinstance(exempt, str):
        exempt = _parse_locations(exempt)
    return SSLRedirect(
        redirect=redirect,
        preserve_trailing_slash=bool(values.get("preserve-trailing-slash")),
        https_port=int(_setting(settings, "https-redirect-port", _setting(settings, "https-port-for-redirect", 443))),
        code=int(_setting(settings, "http-redirect-code", 308)),
        hsts=hsts,
        exempt=tuple(exempt),
    )
