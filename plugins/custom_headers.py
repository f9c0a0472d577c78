"""``custom-headers``: response headers from a ConfigMap, as ingress-nginx ≥ 1.12.

ingress-nginx (internal/ingress/annotations/customheaders, nginx.tmpl): the annotation names a
ConfigMap as ``namespace/name``; each of its keys is a header name and each value the header's
value, sent with ``more_set_headers`` (replacing the backend's, on every answer, a literal ``$``
kept as it is). Every header must be listed in the controller's
``global-allowed-response-headers`` (here ``--global-allowed-response-headers``, empty by default
as there), and names and values must match ingress-nginx's character rules. A ConfigMap that is
missing, a bare name, a name or value it refuses, or a header not allowed: every request of the
route is answered 503, as ingress-nginx's denied location — never served without the headers.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ingressd import Annotation, AnnotationError, LocalResponse, Option, Phase, hookimpl
from ingressd import same_for_every_path

from ._header_changes import HeaderChange
from ._responses import DeniedLocation, plain

_HEADER = re.compile(r"^[a-zA-Z\d\-_]+$")
_VALUE = re.compile(r"^[a-zA-Z\d_ :;.,\\/\"'?!(){}\[\]@<>=\-+*#$&\x60|~^%]+$")
_BASIC_CHARS = re.compile(r"^[\w\-/.]+$")  # ingress-nginx's BasicCharsRegex for the annotation


def _parse_reference(value: str) -> str:
    ref = value.strip()
    if not _BASIC_CHARS.match(ref):
        raise AnnotationError(f"{value!r} is not a ConfigMap name")
    return ref


def _parse_allowed(value: Any) -> tuple[str, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(str(item).strip() for item in value if str(item).strip())
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


class CustomHeaders:
    """Sets the ConfigMap's headers on every answer of the route (replacing any of the same name)."""

    phase = Phase.PROXY

    def __init__(self, headers: tuple[tuple[bytes, bytes], ...]):
        # more_set_headers: every line of those names dropped, the ConfigMap's appended
        # (``_header_changes``, the code of every header change; names are lower case).
        self._change = HeaderChange(frozenset(name for name, _ in headers), (), headers)

    def response(self, exchange: Any, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._change.apply(headers, exchange)



@hookimpl
def ingressd_options():
    return [Option("global-allowed-response-headers", (), "headers custom-headers ConfigMaps may set (comma-separated)",
                   _parse_allowed)]


@hookimpl
def ingressd_annotations():
    return [Annotation("custom-headers", _parse_reference, None, "namespace/name of a ConfigMap of response headers",
                       resolve="configmap")]


def _allowed(settings: Mapping[str, Any]) -> tuple[str, ...]:
    for key in ("global-allowed-response-headers", "global_allowed_response_headers"):
        if settings.get(key) is not None:
            return _parse_allowed(settings[key])
    return ()


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    raw = next((value.strip() for name, value in route.annotations
                if name.rpartition("/")[2] == "custom-headers" and value.strip()), None)
    if raw is None:
        return None
    config_map = values.get("custom-headers")
    if "/" not in raw or config_map is None or not hasattr(config_map, "data"):
        return _denied(f"unable to find configMap {raw!r}")
    allowed = _allowed(context.settings if context is not None else {})
    headers = []
    for name, value in config_map.data:
        if not _HEADER.match(name):
            return _denied("invalid header name in configmap")
        if not _VALUE.match(value):
            return _denied("invalid header value in configmap")
        if name not in allowed:
            return _denied(f"header {name} is not allowed, defined allowed headers inside "
                                  f"global-allowed-response-headers {list(allowed)}")
        headers.append((name.lower().encode("ascii"), value.encode("ascii")))  # lower-case, as every header ingressd sends (HTTP/2 requires it)
    return CustomHeaders(tuple(headers)) if headers else None


def _denied(reason: str) -> DeniedLocation:
    return DeniedLocation(reason, Phase.PROXY)
