"""Session affinity by cookie: ``affinity: cookie`` and ``session-cookie-*``, as ingress-nginx's sticky balancers.

ingress-nginx (``rootfs/etc/nginx/lua/balancer/sticky*.lua``, annotations in
``internal/ingress/annotations/sessionaffinity``) keeps a client on one endpoint with a cookie
``NAME=KEY|BACKEND`` (``BACKEND``: md5 of the upstream's name, for canaries). The KEY never
names the endpoint in clear and means the same in every replica and after restarts:

- ``affinity-mode: balanced`` (the default): KEY is random and a consistent-hash ring of the
  endpoints (``_chash.Ring``: it depends only on the set of endpoints) maps it to one. When
  endpoints come or go, only the keys of the arcs that move go elsewhere; the cookie is not
  set again (it still maps, the same way everywhere).
- ``affinity-mode: persistent``: KEY is md5(upstream name + ``address:port``), ingress-nginx's
  salted hash (so cookies ingress-nginx issued keep their endpoint after a migration). A key
  whose endpoint is gone gets a random ready endpoint and a new cookie.

The cookie is set only when the request brought none (or, persistent, a stale one), or when
``session-cookie-change-on-failure: "true"`` moved a retried request to another endpoint
(without it, a retry goes back to the cookie's endpoint, as ingress-nginx's). Its attributes
are lua-resty-cookie's, in its order: ``Expires`` (``session-cookie-expires`` seconds from now,
nginx's cookie date), ``Max-Age``, ``Domain``, ``Path`` (``session-cookie-path``, else the
Ingress path as written: a regular-expression path is copied as is, which is why
ingress-nginx asks for ``session-cookie-path`` with ``use-regex``), ``Secure`` (with
``session-cookie-secure: "true"`` or when the request came over HTTPS), ``HttpOnly`` (always),
``SameSite`` (only the spellings ``Lax``, ``Strict``, ``None``: lua-resty-cookie drops any
other; with ``session-cookie-conditional-samesite-none`` a ``None`` is left out for the
browsers that refuse it).

The balancer is chosen per request (``exchange.balancer``), so a request that is answered
before it is proxied gets no cookie; a route without ready endpoints is left to the others
(the ``default-backend`` annotation). With a canary on the route, ``StickyChoice.affinitized``
and ``alternative`` take part in choosing main or canary (``ingressd/proxy/canary_choice.py``):
the cookie's backend part keeps a client where it was, and with the canary Ingress's
``affinity-canary-behavior: sticky`` (the default) the canary is sticky with this route's cookie.
"""

from __future__ import annotations

import random
import re
import time
from hashlib import md5
from typing import Any

from twisted.logger import Logger

from ingressd import Annotation, AnnotationError, Phase, hookimpl, parse_bool

from ._cookies import cookie

from ingressd_plugins._chash import Ring

_log = Logger()

DEFAULT_NAME = "INGRESSCOOKIE"
BALANCED, PERSISTENT = "balanced", "persistent"
_NEW_KEY_TRIES = 20  # sticky_balanced.lua's MAX_UPSTREAM_CHECKS_COUNT
_SAMESITE = frozenset(("Lax", "Strict", "None"))  # what lua-resty-cookie's bake keeps

# ingress-nginx's validators (internal/ingress/annotations/parser/validators.go)
_BASIC_CHARS = re.compile(r"[-._~a-zA-Z0-9/:]*")  # BasicCharsRegex: session-cookie-name, -domain
_URL_CHARS = re.compile(r"[-._~a-zA-Z0-9/:,?&=]*")  # URLIsValidRegex: session-cookie-path
_SECONDS = re.compile(r"0|-?[1-9][0-9]*")  # affinityCookieExpiresRegex, anchored
_SECONDS_LIMIT = 10**10  # ~317 years: what a calendar date can still say


def _parse_type(value: str) -> str | None:
    value = value.strip()
    if value == "":
        return None
    if value != "cookie":
        raise AnnotationError(f"the only affinity type is cookie, got {value!r}")
    return value


def _parse_mode(value: str) -> str:
    value = value.strip()
    if value == "":
        return BALANCED
    if value not in (BALANCED, PERSISTENT):
        raise AnnotationError(f"expected balanced or persistent, got {value!r}")
    return value


def _chars(pattern: re.Pattern, what: str):
    def parse(value: str) -> str:
        if not pattern.fullmatch(value):
            raise AnnotationError(f"{value!r} is not a {what} ingress-nginx accepts")
        return value

    return parse


_parse_name = _chars(_BASIC_CHARS, "cookie name (letters, digits and -._~/:)")
_parse_domain = _chars(_BASIC_CHARS, "cookie domain (letters, digits and -._~/:)")
_parse_path = _chars(_URL_CHARS, "cookie path (letters, digits and -._~/:,?&=)")


def _parse_samesite(value: str) -> str:
    value = value.strip()
    if value.lower() not in ("none", "lax", "strict"):
        raise AnnotationError(f"expected None, Lax or Strict, got {value!r}")
    return value


def _parse_seconds(value: str) -> int:
    if not _SECONDS.fullmatch(value):
        raise AnnotationError(f"expected a number of seconds such as 172800, got {value!r}")
    seconds = int(value)
    if abs(seconds) > _SECONDS_LIMIT:
        raise AnnotationError(f"{value} seconds is out of range")
    return seconds


def same_site_none_compatible(user_agent: str | None) -> bool:
    """Whether a browser accepts ``SameSite=None`` (ingress-nginx's util/same_site.lua, after
    https://www.chromium.org/updates/same-site/incompatible-clients)."""
    if not user_agent:
        return True
    if "Chrome/4" in user_agent or "Chrome/5" in user_agent or "Chrome/6" in user_agent:
        return False
    if "CPU iPhone OS 12" in user_agent or "iPad; CPU OS 12" in user_agent:
        return False
    if ("Macintosh" in user_agent and "Intel Mac OS X 10_14" in user_agent and "Safari" in user_agent
            and "Chrome" not in user_agent):
        return False
    return True


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def cookie_time(seconds: float) -> str:
    """nginx's ``ngx_http_cookie_time``: ``Thu, 18-Nov-10 11:27:35 GMT`` (two-digit years up to 2037)."""
    tm = time.gmtime(int(seconds))
    year = tm.tm_year if tm.tm_year > 2037 else f"{tm.tm_year % 100:02d}"
    return (f"{_WEEKDAYS[tm.tm_wday]}, {tm.tm_mday:02d}-{_MONTHS[tm.tm_mon - 1]}-{year} "
            f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} GMT")


def upstream_name(backend: Any) -> str:
    """ingress-nginx's upstream name of a backend: ``namespace-service-port``."""
    return f"{backend.namespace}-{backend.service}-{backend.port}"


def persistent_key(backend: Any, endpoint: Any) -> str:
    """The cookie key of an endpoint in persistent mode: ingress-nginx's util/nodemap.lua
    ``md5(salt .. "address:port")``, salted with the upstream's name."""
    return md5(f"{upstream_name(backend)}{endpoint.address}:{endpoint.port}".encode("utf-8")).hexdigest()


class _Endpoints:
    """A backend's endpoints as the sticky balancer reads them: the ring (balanced) or the key
    of each endpoint (persistent), and the cookie's backend part."""

    __slots__ = ("backend", "endpoints", "backend_key", "ring", "by_key", "key_of")

    def __init__(self, backend: Any, mode: str):
        self.backend = backend
        self.endpoints = backend.endpoints
        name = upstream_name(backend)
        self.backend_key = md5((md5(name.encode("utf-8")).hexdigest() + name).encode("utf-8")).hexdigest()
        self.ring = Ring(backend.endpoints) if mode == BALANCED else None
        self.key_of = {endpoint: persistent_key(backend, endpoint) for endpoint in backend.endpoints} \
            if mode == PERSISTENT else {}
        self.by_key = {key: endpoint for endpoint, key in self.key_of.items()}


class StickyChoice:
    """One request's balancer (``exchange.balancer``): the cookie's endpoint, or a new one and
    the cookie to set for it (``new_key``). With a canary on the route, ``affinitized`` and
    ``alternative`` take part in choosing the backend (``ingressd.proxy.canary_choice``)."""

    __slots__ = ("affinity", "table", "key", "cookie_backend", "new_key")

    def __init__(self, affinity: "Affinity", table: _Endpoints, key: str | None, cookie_backend: str | None = None):
        self.affinity = affinity
        self.table = table
        self.key = key  # the cookie's key, or None
        self.cookie_backend = cookie_backend  # the cookie's backend part (after ``|``), or None
        self.new_key: str | None = None  # the key of a cookie to set

    def affinitized(self) -> bool:
        """The cookie names this backend (sticky.lua's is_affinitized)."""
        return self.cookie_backend == self.table.backend_key

    def alternative(self, backend: Any, rule: Any) -> "StickyChoice | None":
        """The canary ``backend``'s sticky balancer, with this route's cookie settings, as
        ingress-nginx copies them to the canary (``affinity-canary-behavior: sticky``, the canary
        Ingress's ``rule.sticky_affinity``); None for ``legacy`` (the canary's own balancer, no cookie)."""
        if not getattr(rule, "sticky_affinity", True) or not backend.endpoints:
            return None
        return StickyChoice(self.affinity, self.affinity.table_for(backend), self.key, self.cookie_backend)

    def _from_cookie(self) -> Any:
        key = self.key
        if key is None:
            return None
        table = self.table
        if table.ring is not None:
            return table.ring.find(key.encode("utf-8"))
        return table.by_key.get(key)

    def pick(self, exclude=()) -> Any:
        """The endpoint for this try; ``exclude``: those tried already (a retry after a failure)."""
        affinity = self.affinity
        if not (exclude and affinity.change_on_failure):
            endpoint = self._from_cookie()
            if endpoint is not None:
                return endpoint
        endpoint, self.new_key = affinity.new_endpoint(self.table, exclude)
        return endpoint


class Affinity:
    """The route's sticky balancing: ``request`` gives the exchange its balancer, ``response``
    adds the cookie when one was chosen."""

    phase = Phase.PROXY

    def __init__(self, mode: str, name: str, path: str | None, domain: str | None, samesite: str | None,
                 conditional_samesite_none: bool, secure: bool, expires: int | None, max_age: int | None,
                 change_on_failure: bool, clock: Any = None, rng: random.Random | None = None):
        self.mode = mode
        self.name = name
        self._cookie_name = name.encode("latin-1")
        self.path = path
        self.domain = domain
        self.samesite = samesite if samesite in _SAMESITE else None
        self.conditional_samesite_none = conditional_samesite_none
        self.secure = secure
        self.expires = expires
        self.max_age = max_age
        self.change_on_failure = change_on_failure
        self._clock = clock
        self._rng = rng or random.Random()
        self._tables: dict[int, _Endpoints] = {}  # id(backend) → its endpoints, prepared at first use

    # -- the request ------------------------------------------------------------------------

    def request(self, exchange) -> None:
        backend = exchange.route.backend
        if not backend.endpoints:
            return None  # nothing to stick to: a 503, or the default-backend annotation's Service
        exchange.balancer = StickyChoice(self, self.table_for(backend), *self._cookie_parts(exchange.headers))
        return None

    def table_for(self, backend: Any) -> _Endpoints:
        """``backend``'s endpoints as this route's sticky balancing reads them (kept while it is the same)."""
        table = self._tables.get(id(backend))
        if table is None or table.backend is not backend:
            if len(self._tables) >= 4:  # the route's backend and its canary's: drop those of past builds
                self._tables.clear()
            table = self._tables[id(backend)] = _Endpoints(backend, self.mode)
        return table

    def _cookie_parts(self, headers) -> tuple[str | None, str | None]:
        """The key part of the request's affinity cookie (before ``|``) and its backend part, or None."""
        value = cookie(headers, self._cookie_name)
        if value is None:
            return None, None
        key, _, backend = value.decode("latin-1").partition("|")
        return key or None, backend or None

    def new_endpoint(self, table: _Endpoints, exclude) -> tuple[Any, str | None]:
        """A new endpoint (avoiding ``exclude`` while others remain) and its cookie key."""
        rng = self._rng
        if table.ring is not None:  # sticky_balanced.lua: random keys until one lands elsewhere
            endpoint = key = None
            for _ in range(_NEW_KEY_TRIES):
                key = f"{rng.getrandbits(64):016x}"
                endpoint = table.ring.find(key.encode("ascii"))
                if endpoint not in exclude:
                    break
            return endpoint, key
        candidates = [endpoint for endpoint in table.endpoints if endpoint not in exclude] or table.endpoints
        endpoint = rng.choice(candidates)  # sticky_persistent.lua: random_except(failed)
        return endpoint, table.key_of[endpoint]

    # -- the response -----------------------------------------------------------------------

    def response(self, exchange, status: int, headers: list) -> None:
        choice = getattr(exchange, "balancer", None)
        if type(choice) is StickyChoice and choice.affinity is self and choice.new_key is not None:
            value = f"{choice.new_key}|{choice.table.backend_key}"
            headers.append((b"set-cookie", self.set_cookie(value, exchange).encode("latin-1")))

    def set_cookie(self, value: str, exchange) -> str:
        """The ``Set-Cookie`` value, attributes in lua-resty-cookie's order."""
        parts = [f"{self.name}={value}"]
        if self.expires is not None:
            now = self._clock.seconds() if self._clock is not None else time.time()
            parts.append(f"Expires={cookie_time(now + self.expires)}")
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        if self.domain:
            parts.append(f"Domain={self.domain}")
        path = self.path or exchange.route.path
        if path:
            parts.append(f"Path={path}")
        if self.secure or exchange.https:
            parts.append("Secure")
        parts.append("HttpOnly")
        samesite = self.samesite
        if samesite == "None" and self.conditional_samesite_none:
            agent = exchange.headers.get(b"user-agent")
            if not same_site_none_compatible(agent.decode("latin-1") if agent is not None else None):
                samesite = None
        if samesite:
            parts.append(f"SameSite={samesite}")
        return "; ".join(parts)


# -- plugin hooks ---------------------------------------------------------------------------


@hookimpl
def ingressd_annotations():
    return [
        Annotation("affinity", _parse_type, None, "cookie: keep each client on one endpoint"),
        Annotation("affinity-mode", _parse_mode, BALANCED,
                   "balanced (sessions move when endpoints are added) or persistent (never moved)"),
        Annotation("session-cookie-name", _parse_name, DEFAULT_NAME, "the affinity cookie's name"),
        Annotation("session-cookie-path", _parse_path, None, "the cookie's Path (default: the Ingress path)"),
        Annotation("session-cookie-domain", _parse_domain, None, "the cookie's Domain"),
        Annotation("session-cookie-samesite", _parse_samesite, None, "the cookie's SameSite: None, Lax or Strict"),
        Annotation("session-cookie-conditional-samesite-none", parse_bool, False,
                   "leave SameSite=None out for browsers that refuse it"),
        Annotation("session-cookie-secure", parse_bool, False, "Secure even over plain HTTP"),
        Annotation("session-cookie-expires", _parse_seconds, None, "an Expires this many seconds from now"),
        Annotation("session-cookie-max-age", _parse_seconds, None, "the cookie's Max-Age, in seconds"),
        Annotation("session-cookie-change-on-failure", parse_bool, False,
                   "a retried request moves to another endpoint and the cookie with it"),
    ]


@hookimpl
def ingressd_route_features(route, values, context):
    if values.get("affinity") != "cookie":
        return None
    samesite = values.get("session-cookie-samesite")
    if samesite is not None and samesite not in _SAMESITE:
        _log.warn("{ingress}: session-cookie-samesite {value!r} is not spelled None, Lax or Strict: "
                  "the cookie gets no SameSite, as with ingress-nginx", ingress=str(route.ingress), value=samesite)
    if values.get("use-regex") and not values.get("session-cookie-path"):
        _log.warn("{ingress}: session-cookie-path should be set when use-regex is true (the cookie's Path is "
                  "the path as written, {path!r})", ingress=str(route.ingress), path=route.path)
    return [Affinity(
        mode=values.get("affinity-mode") or BALANCED,
        name=values.get("session-cookie-name") or DEFAULT_NAME,
        path=values.get("session-cookie-path") or None,
        domain=values.get("session-cookie-domain") or None,
        samesite=samesite,
        conditional_samesite_none=bool(values.get("session-cookie-conditional-samesite-none")),
        secure=bool(values.get("session-cookie-secure")),
        expires=values.get("session-cookie-expires"),
        max_age=values.get("session-cookie-max-age"),
        change_on_failure=bool(values.get("session-cookie-change-on-failure")),
        clock=context.reactor,
    )]
