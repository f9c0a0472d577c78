"""The controller ConfigMap's ``add-headers``, ``proxy-set-headers`` and ``hide-headers``: headers on
every route.

ingress-nginx (nginx.tmpl): each key names another ConfigMap (``namespace/name``) whose data
are header → value. ``add-headers`` renders ``more_set_headers "Name: value"`` in the http
block: set on every answer (the backend's and nginx's own, replacing one of the same name);
``proxy-set-headers`` renders ``proxy_set_header Name "value"`` in every location, after the
forwarding headers: sent to every backend. ingressd reads the referenced ConfigMap when the
controller ConfigMap is read (``ingressd.config.nginx_configmap``: a change of either applies
live) and hands this plugin the pairs through the options ``--add-headers`` /
``--proxy-set-headers`` (also usable without a ConfigMap: one ``Name: value`` a line).
``hide-headers`` (comma-separated names, ``--hide-headers``) renders ``proxy_hide_header`` for
each in the http block: removed from the backend's answers (ingressd's own answers never carry
them); a hop-by-hop or framing name refuses the ConfigMap (ingressd frames every message itself).

Values may use the variables ``ingressd_plugins._header_values`` substitutes (``$host``,
``$request_id``, ``$remote_addr``, ``$scheme``, ``$request_uri``); any other ``$``, a control
character, a hop-by-hop or framing header, ``Server``/``Date`` (written by ingressd), or — for
the backend — Host or a forwarding header ingressd sets (X-Forwarded-*, X-Real-IP, X-Request-ID:
the forwarding keys of the ConfigMap say what they carry) refuses the ConfigMap: the previous version keeps serving. An Ingress's own header annotations win for
the names they set (``custom-headers``, ``response-headers``; ``request-headers``), as the
location's ``more_set_headers`` / ``proxy_set_header`` run after the http block's in nginx.
"""

from __future__ import annotations

from typing import Any, Mapping

from ingressd import AnnotationError, Option, Phase, hookimpl
from ingressd import same_for_every_path

from ._header_values import OWNED_REQUEST, OWNED_RESPONSE, Value, apply_edits, check_name, parse_value


def _parse_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    """The ConfigMap's data (pairs) or text with one ``Name: value`` a line → sorted (name, value) pairs,
    their syntax checked (names, control characters, variables)."""
    if isinstance(value, (tuple, list)):
        pairs = [(str(name).strip(), str(text).strip()) for name, text in value]
    else:
        pairs = []
        for line in str(value).splitlines():
            if line.strip():
                name, colon, text = line.partition(":")
                if not colon:
                    raise ValueError(f"expected 'Name: value', got {line.strip()!r}")
                pairs.append((name.strip(), text.strip()))
    for name, text in pairs:
        check_name(name, "", frozenset(), True, request=False)  # a token, not hop-by-hop
        parse_value(text, f"header {name}: ")
    return tuple(sorted(pairs))


def _response_pairs(pairs: tuple) -> tuple[tuple[bytes, Value], ...]:
    return tuple((check_name(name, "add-headers: ", OWNED_RESPONSE, False, request=False).encode("ascii"),
                  parse_value(text)) for name, text in pairs)


def _request_pairs(pairs: tuple, allow_owned: bool) -> tuple[tuple[bytes, Value], ...]:
    return tuple((check_name(name, "proxy-set-headers: ", OWNED_REQUEST, allow_owned, request=True).encode("ascii"),
                  parse_value(text)) for name, text in pairs)


def _checked(option: str):
    """The option's coerce: the pairs, refused (ValueError) when ingressd would never send them."""
    def coerce(value: Any) -> tuple[tuple[str, str], ...]:
        try:
            pairs = _parse_pairs(value)
            if option == "add-headers":
                _response_pairs(pairs)
            else:
                _request_pairs(pairs, False)
        except AnnotationError as exc:
            raise ValueError(str(exc)) from None
        return pairs
    return coerce


def _parse_names(value: Any) -> tuple[str, ...]:
    """``hide-headers``: comma-separated names (ingress-nginx's splitAndTrimSpace) → lower-cased names."""
    names = value if isinstance(value, (tuple, list)) else str(value).split(",")
    try:
        return tuple(sorted({check_name(str(name).strip(), "hide-headers: ", frozenset(), True, request=False)
                             for name in names if str(name).strip()}))
    except AnnotationError as exc:
        raise ValueError(str(exc)) from None


class HiddenHeaders:
    """Removes the named headers from the backend's answer, before any feature sets its own."""

    phase = Phase.REWRITE - 50  # answers run through features in phase order: first, as proxy_hide_header

    def __init__(self, hide: frozenset):
        self._hide = hide

    def response(self, exchange: Any, status: int, headers: list) -> None:
        if exchange.upstream_status:  # the backend's answer; ingressd's own never carry them
            headers[:] = [pair for pair in headers if pair[0] not in self._hide]


class GlobalHeaders:
    """Sets the operator's headers on the backend request and on every answer of the route."""

    phase = Phase.PROXY

    def __init__(self, request: tuple, response: tuple):
        self._request = request
        self._request_names = frozenset(name for name, _ in request)
        self._response = response
        self._response_names = frozenset(name for name, _ in response)

    def upstream_request(self, exchange: Any, headers: list) -> None:
        if self._request:
            apply_edits(headers, self._request_names, self._request, exchange)

    def response(self, exchange: Any, status: int, headers: list) -> None:
        if self._response:
            apply_edits(headers, self._response_names, self._response, exchange)


@hookimpl
def ingressd_options():
    return [
        Option("add-headers", (), "headers set on every answer, one 'Name: value' a line (ConfigMap key add-headers)",
               _checked("add-headers")),
        Option("proxy-set-headers", (), "headers sent to every backend, one 'Name: value' a line "
               "(ConfigMap key proxy-set-headers)", _checked("proxy-set-headers")),
        Option("hide-headers", (), "headers removed from the backends' answers, comma-separated "
               "(ConfigMap key hide-headers)", _parse_names),
    ]


def _setting(settings: Mapping[str, Any], name: str) -> tuple:
    value = settings.get(name.replace("-", "_"), settings.get(name))
    return _parse_pairs(value) if value else ()


def _route_names(values: Mapping[str, Any], *annotations: str) -> set[bytes]:
    """The header names the route's own annotations set (they win, as a location's directives in nginx)."""
    names: set[bytes] = set()
    for annotation in annotations:
        value = values.get(annotation)
        if not value:
            continue
        if hasattr(value, "data"):  # custom-headers: the ConfigMap
            names.update(str(name).lower().encode("ascii", "replace") for name, _ in value.data)
        else:  # response-headers / request-headers: (where, name, value) lines
            names.update(str(line[1]).lower().encode("ascii", "replace") for line in value)
    return names


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    settings = context.settings if context is not None else {}
    add, proxy_set = _setting(settings, "add-headers"), _setting(settings, "proxy-set-headers")
    hidden = settings.get("hide_headers", settings.get("hide-headers"))
    hide = frozenset(name.encode("ascii") for name in _parse_names(hidden)) if hidden else frozenset()
    if not add and not proxy_set and not hide:
        return None
    own_response = _route_names(values, "custom-headers", "response-headers")
    own_request = _route_names(values, "request-headers")
    response = tuple(pair for pair in _response_pairs(add) if pair[0] not in own_response)
    request = tuple(pair for pair in _request_pairs(proxy_set, False) if pair[0] not in own_request)
    features = [HiddenHeaders(hide)] if hide else []
    if response or request:
        features.append(GlobalHeaders(request, response))
    return features or None
