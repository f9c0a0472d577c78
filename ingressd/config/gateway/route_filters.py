"""HTTPRoute filters → ``config.filters`` values, validated (what the request path applies
through the ``gateway_filters`` plugin). An invalid or unsupported filter makes its rule
invalid (``Invalid``), never a filter silently skipped.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

from ingressd.config import filters as f
from ingressd.config.model import Backend

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_REDIRECT_CODES = (301, 302, 303, 307, 308)


class Invalid(Exception):
    """A filter (or a match) that cannot be served; its rule is left out."""


def _header_changes(raw) -> f.HeaderChanges:
    if not isinstance(raw, dict):
        raise Invalid("a header filter needs its settings")

    def pairs(key: str) -> tuple[tuple[str, str], ...]:
        found = []
        for item in raw.get(key) or []:
            name, value = str((item or {}).get("name") or ""), (item or {}).get("value")
            if not _HEADER_NAME.match(name) or value is None or "\n" in str(value) or "\r" in str(value):
                raise Invalid(f"{key}: invalid header {name!r}")
            found.append((name.lower(), str(value)))
        return tuple(found)

    removed = []
    for name in raw.get("remove") or []:
        if not _HEADER_NAME.match(str(name)):
            raise Invalid(f"remove: invalid header name {name!r}")
        removed.append(str(name).lower())
    return f.HeaderChanges(set=pairs("set"), add=pairs("add"), remove=tuple(removed))


def _path_modifier(raw, prefix_match: bool) -> f.PathModifier | None:
    if raw is None:
        return None
    kind = raw.get("type")
    if kind == f.REPLACE_FULL_PATH:
        value = raw.get("replaceFullPath")
    elif kind == f.REPLACE_PREFIX_MATCH:
        if not prefix_match:
            raise Invalid("ReplacePrefixMatch needs a PathPrefix match")
        value = raw.get("replacePrefixMatch")
    else:
        raise Invalid(f"path modifier type {kind!r} is not supported")
    value = str(value if value is not None else "/")
    if not value.startswith("/"):
        raise Invalid(f"path {value!r} must start with '/'")
    return f.PathModifier(kind, value)


def _redirect(raw, prefix_match: bool) -> f.RequestRedirect:
    scheme = raw.get("scheme")
    if scheme is not None and scheme not in ("http", "https"):
        raise Invalid(f"redirect scheme {scheme!r} is not http or https")
    port = raw.get("port")
    if port is not None and not (isinstance(port, int) and 1 <= port <= 65535):
        raise Invalid(f"redirect port {port!r} is out of range")
    code = raw.get("statusCode", 302)
    if code not in _REDIRECT_CODES:
        raise Invalid(f"redirect statusCode {code!r} is not one of {_REDIRECT_CODES}")
    hostname = raw.get("hostname")
    return f.RequestRedirect(scheme=scheme, hostname=str(hostname).lower() if hostname else None, port=port,
                             path=_path_modifier(raw.get("path"), prefix_match), status_code=code)


def _percent(raw) -> int:
    if raw.get("percent") is not None:
        value = raw.get("percent")
    elif isinstance(raw.get("fraction"), dict):
        fraction = raw["fraction"]
        denominator = fraction.get("denominator", 100) or 100
        value = round(100 * int(fraction.get("numerator", 0)) / int(denominator))
    else:
        value = 100
    if not isinstance(value, int) or not 0 <= value <= 100:
        raise Invalid(f"mirror percent {value!r} is out of range")
    return value


def parse(raws, prefix_match: bool, mirror_backend: Callable[[Mapping], Backend | None]) -> tuple:
    """A rule's ``filters`` → ``config.filters`` values in order; ``Invalid`` when one cannot be
    served. ``mirror_backend`` resolves a RequestMirror's backendRef (None: unusable)."""
    found: list = []
    for raw in raws or []:
        kind = (raw or {}).get("type")
        if kind == "RequestHeaderModifier":
            found.append(f.RequestHeaderModifier(_header_changes(raw.get("requestHeaderModifier"))))
        elif kind == "ResponseHeaderModifier":
            found.append(f.ResponseHeaderModifier(_header_changes(raw.get("responseHeaderModifier"))))
        elif kind == "RequestRedirect":
            found.append(_redirect(raw.get("requestRedirect") or {}, prefix_match))
        elif kind == "URLRewrite":
            rewrite = raw.get("urlRewrite") or {}
            hostname = rewrite.get("hostname")
            found.append(f.URLRewrite(hostname=str(hostname).lower() if hostname else None,
                                      path=_path_modifier(rewrite.get("path"), prefix_match)))
        elif kind == "RequestMirror":
            mirror = raw.get("requestMirror") or {}
            found.append(f.RequestMirror(mirror_backend(mirror.get("backendRef") or {}), _percent(mirror)))
        elif kind == "CORS":
            found.append(_cors(raw.get("cors") or {}))
        elif kind == "ExtensionRef":
            ref = raw.get("extensionRef") or {}
            if not ref.get("kind") or not ref.get("name"):
                raise Invalid("an ExtensionRef needs a kind and a name")
            found.append(f.ExtensionRef(str(ref.get("group") or ""), str(ref["kind"]), str(ref["name"])))
        else:
            raise Invalid(f"filter type {kind!r} is not supported")
    check_together(found)
    return tuple(found)


def check_together(found) -> None:
    """The filters one request goes through (a rule's, and a backendRef's after them): at most one
    RequestRedirect, and never with a URLRewrite."""
    if sum(isinstance(item, f.RequestRedirect) for item in found) > 1 or (
            any(isinstance(item, f.RequestRedirect) for item in found)
            and any(isinstance(item, f.URLRewrite) for item in found)):
        raise Invalid("a rule may have one RequestRedirect, and not with a URLRewrite")


def _cors(raw: Mapping) -> f.CORS:
    def strings(key: str) -> tuple[str, ...]:
        return tuple(str(value) for value in raw.get(key) or [])

    max_age = raw.get("maxAge", 5)
    if not isinstance(max_age, int) or max_age < 0:
        raise Invalid(f"CORS maxAge {max_age!r} is invalid")
    return f.CORS(allow_origins=strings("allowOrigins"), allow_methods=strings("allowMethods"),
                  allow_headers=strings("allowHeaders"), expose_headers=strings("exposeHeaders"),
                  allow_credentials=bool(raw.get("allowCredentials")), max_age=max_age)
