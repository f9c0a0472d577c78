"""HTTP Basic authentication from an htpasswd Secret (``auth-type: basic``), as ingress-nginx does it.

Annotations: ``auth-type`` (the switch; only ``basic``), ``auth-secret`` (``name`` or
``namespace/name``), ``auth-secret-type`` (``auth-file``: key ``auth`` holds htpasswd lines;
``auth-map``: each key is a user, its value the hash) and ``auth-realm``.

Missing or wrong credentials → 401 with ``WWW-Authenticate: Basic realm="…"``. A referenced
Secret that is missing or lacks its key → 503 for every request (fail closed), as
ingress-nginx denies such a location. The bodies carry nginx's wording, which is what
ingress-nginx's e2e tests look for: ``401 Authorization Required`` and ``503 Service
Temporarily Unavailable`` (see ``_responses``). On success the ``Authorization`` header is
removed before proxying. Every method is authenticated, on every route except those whose
Ingress path ``--no-auth-locations`` exempts (ingress-nginx's ``no-auth-locations``: ``_no_auth``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections import OrderedDict
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from ingressd import Annotation, AnnotationError, LocalResponse, Phase, hookimpl

from . import _no_auth, htpasswd
from ._responses import DeniedLocation, plain

_log = Logger()

_REALM = re.compile(r"[-._~a-zA-Z0-9/: ]*")
# A Kubernetes object name (DNS-1123 subdomain), optionally after "namespace/".
_NAME = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
_SECRET_REF = re.compile(rf"(?:[a-z0-9]([-a-z0-9]{{0,61}}[a-z0-9])?/)?{_NAME}")

CACHE_SIZE = 1024


def _parse_auth_type(value: str) -> str:
    kind = value.strip().lower()
    if kind == "basic":
        return kind
    if kind == "digest":
        raise AnnotationError("auth-type digest is not supported by ingressd; use basic")
    raise AnnotationError(f"expected basic, got {value!r}")


def _parse_secret_ref(value: str) -> str:
    ref = value.strip()
    if not _SECRET_REF.fullmatch(ref):
        raise AnnotationError(f"{value!r} is not a Secret name or namespace/name")
    return ref


def _parse_secret_type(value: str) -> str:
    kind = value.strip()
    if kind not in ("auth-file", "auth-map"):
        raise AnnotationError(f"expected auth-file or auth-map, got {value!r}")
    return kind


def _parse_realm(value: str) -> str:
    if not _REALM.fullmatch(value):
        raise AnnotationError("may only contain letters, digits, spaces and -._~/:")
    return value


def users_from_secret(secret: Any, secret_type: str) -> dict[bytes, str] | None:
    """The users and hashes a Secret holds, or None when it cannot be used (→ 503)."""
    if secret is None:
        return None
    if secret_type == "auth-file":
        text = secret.get("auth")
        return None if text is None else htpasswd.parse_htpasswd(text)
    return {name.encode("utf-8"): value.strip().decode("latin-1") for name, value in secret.data}


def _credentials(header: bytes) -> tuple[bytes, bytes] | None:
    scheme, _, encoded = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon or not user:
        return None
    return user, password


class BasicAuth:
    """Checks ``Authorization: Basic`` against a fixed user table (phase AUTH).

    Successful checks are remembered in a small LRU cache so bcrypt does not run on every
    request. The cache key is an HMAC of user and password under a random key made for
    this object, so memory holds neither passwords nor fast unsalted hashes of them; the
    object (and its cache) is rebuilt whenever the Secret changes. Failures are not cached.
    """

    phase = Phase.AUTH
    access_check = True  # combined with the others under ``satisfy: any``

    def __init__(
        self,
        users: dict[bytes, str],
        realm: str = "",
        run_slow: Callable[..., Deferred] | None = None,
        cache_size: int = CACHE_SIZE,
    ):
        self._users = users
        self._challenge = (b"www-authenticate", b'Basic realm="%s"' % realm.encode("ascii"))
        self._run_slow = run_slow
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._cache_key = os.urandom(32)

    def request(self, exchange) -> LocalResponse | Deferred | None:
        values = exchange.headers.get_all(b"authorization")
        credentials = _credentials(values[0]) if len(values) == 1 else None
        if credentials is None:
            return self._deny()
        user, password = credentials
        # The user's length first: both may hold NUL, and no two pairs may share a key.
        key = hmac.new(self._cache_key, b"%d:" % len(user) + user + password, hashlib.sha256).digest()
        if key in self._cache:
            self._cache.move_to_end(key)
            exchange.headers.remove(b"authorization")
            return None
        hashed = self._users.get(user)
        if hashed is None:
            return self._deny()
        if self._run_slow is not None and htpasswd.scheme(hashed) in htpasswd.SLOW_SCHEMES:
            d = self._run_slow(htpasswd.verify, password, hashed)
            d.addCallback(self._checked, exchange, key)
            d.addErrback(self._failed)
            return d
        return self._checked(htpasswd.verify(password, hashed), exchange, key)

    def _checked(self, ok: bool, exchange, key: bytes) -> LocalResponse | None:
        if not ok:
            return self._deny()
        self._cache[key] = None
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        exchange.headers.remove(b"authorization")
        return None

    def _failed(self, failure) -> LocalResponse:
        _log.failure("checking a password failed", failure)
        return self._deny()

    def _deny(self) -> LocalResponse:
        return plain(401, [self._challenge])

    def upstream_request(self, exchange, headers: list) -> None:
        """The backend never gets ``Authorization`` (nginx: ``proxy_set_header Authorization ""``),
        also when another check let the request through (``satisfy: any``)."""
        headers[:] = [pair for pair in headers if pair[0] != b"authorization"]



@hookimpl
def ingressd_annotations():
    return [
        Annotation("auth-type", _parse_auth_type, None, "basic: require HTTP Basic authentication"),
        Annotation("auth-secret", _parse_secret_ref, None, "the Secret with the users: name or namespace/name", resolve="secret"),
        Annotation("auth-secret-type", _parse_secret_type, "auth-file", "auth-file (key auth, htpasswd lines) or auth-map (key = user)"),
        Annotation("auth-realm", _parse_realm, "", "the realm in WWW-Authenticate"),
    ]


@hookimpl
def ingressd_route_features(route, values, context):
    if values.get("auth-type") != "basic":
        return None
    if _no_auth.exempt(route.path, context.settings if context is not None else None):
        return None
    users = users_from_secret(values.get("auth-secret"), values.get("auth-secret-type", "auth-file"))
    if users is None:
        reason = "the auth-secret is missing, unreadable or lacks its key"
        _log.warn("{ingress}: {reason}; answering 503", ingress=str(route.ingress), reason=reason)
        return _denied(reason)
    for user, hashed in users.items():
        if htpasswd.scheme(hashed) is None:
            _log.warn(
                "{ingress}: user {user} has a password hash ingressd cannot check; that user is refused",
                ingress=str(route.ingress),
                user=user.decode("utf-8", "replace"),
            )
    reactor = context.reactor
    run_slow = None
    if reactor is not None and hasattr(reactor, "getThreadPool"):

        def run_slow(function, *args):
            return deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)

    return BasicAuth(users, values.get("auth-realm", ""), run_slow)


def _denied(reason: str) -> DeniedLocation:
    return DeniedLocation(reason, Phase.AUTH)
