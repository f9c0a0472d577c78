"""ingress-nginx's ``no-auth-locations``: the Ingress paths that are never authenticated.

nginx.tmpl leaves out a location's authentication (external, global and basic) when
``isLocationInLocationList`` finds its path in the ConfigMap's comma-separated list: the
Ingress path starts with one of the items (Go's ``strings.HasPrefix``, items trimmed of spaces,
empty ones skipped). The default, ``/.well-known/acme-challenge``, lets cert-manager's HTTP-01
solver Ingresses through on guarded hosts. An empty list exempts nothing. The list arrives as
the server setting ``no_auth_locations`` (``--no-auth-locations``, declared by ``ext_auth``).
"""

from __future__ import annotations

from typing import Any, Mapping

DEFAULT = ("/.well-known/acme-challenge",)


def parse_locations(value: Any) -> tuple[str, ...]:
    """The list's text (or an already parsed sequence) → its items, as ingress-nginx splits it."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(item.strip(" ") for item in items if item.strip(" "))


def locations(settings: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The server's list: the setting when it is given (an empty one exempts nothing), else the default."""
    value = None if settings is None else settings.get("no_auth_locations", settings.get("no-auth-locations"))
    return DEFAULT if value is None else parse_locations(value)


def exempt(path: str, settings: Mapping[str, Any] | None) -> bool:
    """Whether the route with the Ingress path ``path`` is left unauthenticated."""
    return path.startswith(locations(settings))
