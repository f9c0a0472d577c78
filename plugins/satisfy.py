"""``satisfy: any|all``: how a route's access checks combine, as nginx's ``satisfy``.

``all`` (the default): every check must let the request through (allow and deny lists, basic
authentication, external authentication), each in its phase. ``any``: one is enough, as
nginx's ``satisfy any`` in ingress-nginx's location: the checks (features saying
``access_check = True``: ``allowlist-source-range``/``denylist-source-range``, ``auth-type:
basic``, ``auth-url``) run in order (lists first, then authentication) until one lets the
request through; when all refuse, the first 401 is the answer (with its challenge, or external
auth's sign-in redirect), else the 403. An error of a check (a failing auth service: 500; a
missing Secret: 503) is the answer at once, never a pass. The combining is the chain's
(``ingressd.proxy.chain.AnyOf``); this plugin only says which.

ingress-nginx reads a value other than ``any`` or ``all`` as ``all``; ingressd refuses it (the
Ingress is rejected, saying why), as it refuses every value it would otherwise have to guess.
The allow and deny rules of a ``configuration-snippet`` are not combined (they apply as ``all``).
"""

from __future__ import annotations

from ingressd import Annotation, AnnotationError, Phase, hookimpl
from ingressd import same_for_every_path


def parse_satisfy(text: str) -> str:
    value = text.strip()
    if value not in ("any", "all"):
        raise AnnotationError(f"expected any or all, got {text!r}")
    return value


class SatisfyAny:
    """Says the route's access checks combine as ``satisfy any`` (no request work of its own)."""

    phase = Phase.ACCESS
    satisfy_any = True


_ANY = SatisfyAny()


@hookimpl
def ingressd_annotations():
    return [Annotation("satisfy", parse_satisfy, "all", "any: one access check letting the request through "
                       "is enough; all: every one must")]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    return _ANY if values.get("satisfy") == "any" else None
