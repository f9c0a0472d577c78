"""Client address allow and deny lists per location: 403 for clients they exclude.

Annotations: ``allowlist-source-range`` (old name ``whitelist-source-range``; the new name
wins when both are set) and ``denylist-source-range``, each a comma-separated list of
CIDRs or addresses. Deny entries are checked first; with an allowlist, every other client
is refused. An invalid entry rejects the Ingress (ingress-nginx answers 503 instead).
The address checked is ``exchange.client_ip`` (the real client behind trusted proxies).
"""

from __future__ import annotations

from ingressd import Annotation, LocalResponse, Phase, hookimpl
from ingressd import same_for_every_path

from ._cidr import CidrMatcher, parse_cidr_list
from ._responses import plain


class SourceRange:
    """Phase ACCESS: refuse clients in ``deny``, and clients outside a non-empty ``allow``."""

    phase = Phase.ACCESS
    access_check = True  # combined with authentication under ``satisfy: any``

    def __init__(self, allow: CidrMatcher, deny: CidrMatcher):
        self._allow = allow
        self._deny = deny

    def request(self, exchange) -> LocalResponse | None:
        ip = exchange.client_ip
        if self._deny and ip in self._deny:
            return plain(403)
        if self._allow and ip not in self._allow:
            return plain(403)
        return None


@hookimpl
def ingressd_annotations():
    return [
        Annotation("allowlist-source-range", parse_cidr_list, (), "only these client CIDRs may use the location"),
        Annotation("whitelist-source-range", parse_cidr_list, (), "old name of allowlist-source-range"),
        Annotation("denylist-source-range", parse_cidr_list, (), "these client CIDRs get 403"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    allow = values.get("allowlist-source-range") or values.get("whitelist-source-range") or ()
    deny = values.get("denylist-source-range") or ()
    if not allow and not deny:
        return None
    return SourceRange(CidrMatcher(allow), CidrMatcher(deny))
