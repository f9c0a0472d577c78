"""One redirect answer: a route's every request answered with a status and a Location that
ingressd computes — the same code for the annotations and the Gateway API filter.

``permanent-redirect`` / ``temporal-redirect`` (``redirect``) and ``RequestRedirect``
(``gateway_filters``) each give a ``Redirect`` their status and a function of the request that
makes the Location (from their own parsed settings: a fixed URL made absolute as nginx makes it,
or the request's parts with the filter's replacements). The rest is here, once:

- the Location is ``scheme://host[:port]uri`` (``_responses.redirect_location``: the host
  checked, an IPv6 literal in brackets), the port left out when it is the scheme's (80 for
  http, 443 for https); a Location that cannot be made (a host that cannot be put in a URL)
  is answered 400;
- 301, 302, 303, 307 and 308 are redirects: Location and nginx's page title as the body; with
  another code (only the annotations allow one: nginx's ``return`` with 300, 305, 306) the URL
  is a ``text/html`` body and there is no Location, and 304 has neither.
"""

from __future__ import annotations

from typing import Any, Callable

from ingressd import LocalResponse, Phase

from ._responses import plain, redirect_location

# nginx's ``return`` with one of these codes is a redirect (Location + a page); with any
# other code the text is the body (ngx_http_send_response).
REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))
DEFAULT_PORTS = {"http": 80, "https": 443}
PHASE = Phase.REWRITE - 1  # a location's ``return``: before the HTTPS redirect (Lua, last) and rewrites


def location(scheme: str, host: str, port: int | None, uri: bytes) -> bytes | None:
    """``scheme://host[:port]uri``, the port left out when it is the scheme's; None when
    ``host`` cannot be put in a URL."""
    if port is not None and port == DEFAULT_PORTS.get(scheme):
        port = None
    return redirect_location(scheme, host, port, uri)


def answer(code: int, target: bytes | None) -> LocalResponse:
    """The answer of a redirect with status ``code`` to ``target`` (None: 400)."""
    if target is None:
        return plain(400)
    if code not in REDIRECT_CODES:
        if code == 304:
            return LocalResponse(304)
        return LocalResponse(code, [(b"content-type", b"text/html")], target)
    return plain(code, [(b"location", target)])


class Redirect:
    """Every request of the route answered with a redirect: ``code`` to ``location_of(exchange)``."""

    phase = PHASE

    def __init__(self, code: int, location_of: Callable[[Any], bytes | None]):
        self.code = code
        self.location_of = location_of

    def request(self, exchange: Any) -> LocalResponse:
        return answer(self.code, self.location_of(exchange))
