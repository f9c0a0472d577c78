"""The contract between plugins and the request path: annotations, options and route features.

A plugin declares ``Annotation``s (parsed and validated when routes are built) and returns,
per route, objects following ``RouteFeature``: the proxy calls their ``request``,
``response`` and ``error`` methods in phase order. Nothing here runs per request except
those methods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable, Mapping, Protocol, Sequence

NGINX_PREFIX = "nginx.ingress.kubernetes.io/"
INGRESSD_PREFIX = "ingressd.io/"


class AnnotationError(ValueError):
    """An annotation value (or the combination of values) that cannot be used."""


class Phase(IntEnum):
    """Request phases in ingress-nginx's order; lower runs first."""

    REWRITE = 100  # redirects, CORS preflight, HTTPS redirect
    PREACCESS = 200  # rate and connection limits
    ACCESS = 300  # allow and deny lists
    AUTH = 400  # authentication
    PROXY = 500  # upstream request settings (timeouts, body size, headers)


@dataclass(frozen=True)
class Annotation:
    """An annotation a plugin owns, read under both prefixes (``ingressd.io/`` wins).

    ``parse`` turns the string value into a hashable value or raises ValueError /
    AnnotationError with a message saying what is wrong.
    """

    name: str  # without prefix, e.g. "limit-rps"
    parse: Callable[[str], Any]
    default: Any = None
    description: str = ""
    # Resolve the parsed value (a "name" or "namespace/name" string) against the cluster
    # objects when routes are built, so a change of the referenced object rebuilds routes:
    #   "secret"  → the SecretData, or None when missing;
    #   "service" → a model.Backend with its ready endpoints (first port), or None.
    # "namespace/name" in another namespace is refused unless
    # --allow-cross-namespace-resources is set.
    resolve: str | None = None


@dataclass(frozen=True)
class Option:
    """A ``twistd ingressd`` option added by a plugin (``--name VALUE``; flags take no value)."""

    name: str
    default: Any = None
    help: str = ""
    coerce: Callable[[str], Any] | None = None
    flag: bool = False


@dataclass
class LocalResponse:
    """A response ingressd answers itself instead of proxying."""

    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


class RouteFeature(Protocol):
    """What a plugin returns per route. Every method is optional; ``phase`` orders them.

    - ``request(exchange)`` → ``None`` to continue, a ``LocalResponse`` to answer now, or a
      Deferred firing with either.
    - ``response(exchange, status, headers)`` mutates the list of response headers (for
      proxied and locally generated responses alike).
    - ``error(exchange, status)`` → a ``LocalResponse`` (or Deferred of one, or None) to
      replace the body of an error response whose status is in ``error_codes``.
    """

    phase: int


@dataclass
class BuildContext:
    """What plugins may consult while routes are built."""

    settings: Mapping[str, Any]
    reactor: Any
    secrets: Mapping[tuple[str, str], Any] = field(default_factory=dict)  # (ns, name) → SecretData

    def secret(self, namespace: str, name: str):
        return self.secrets.get((namespace, name))


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise AnnotationError(f"expected true or false, got {value!r}")


def parse_int(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise AnnotationError(f"expected an integer, got {value!r}")
        number = int(text)
        if low is not None and number < low:
            raise AnnotationError(f"must be at least {low}, got {number}")
        if high is not None and number > high:
            raise AnnotationError(f"must be at most {high}, got {number}")
        return number

    return parse


def parse_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def check_plain_text(value: str, max_length: int = 4096) -> str:
    """Refuse control characters (CR, LF, NUL…) and absurd lengths in any annotation value."""
    if len(value) > max_length:
        raise AnnotationError(f"value is {len(value)} characters long (at most {max_length})")
    found = _CONTROL.search(value)
    if found:
        raise AnnotationError(f"value contains the control character {found.group()!r}")
    return value


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


Values = Mapping[str, Any]
Features = Sequence[RouteFeature]


def parse_size(value: str) -> int:
    """nginx size syntax: ``1024``, ``8k``, ``1m``, ``1g`` → bytes (``0`` means unlimited)."""
    text = value.strip().lower()
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    factor = 1
    if text and text[-1] in units:
        factor = units[text[-1]]
        text = text[:-1]
    if not text.isdigit():
        raise AnnotationError(f"expected a size such as 512, 8k, 1m or 1g, got {value!r}")
    return int(text) * factor
