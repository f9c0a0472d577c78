"""Request-path normalisation: one canonical form for routing and for the backend.

The routing path is fully percent-decoded with ``.``/``..`` segments resolved and ``//``
merged, as nginx's ``$uri`` is. The path sent upstream is the client's own bytes unless
normalisation changed the path's structure, in which case the backend receives the
normalised path re-encoded, so the routing decision and what the backend sees agree.
"""

from __future__ import annotations

from urllib.parse import quote

_HEX = "0123456789abcdefABCDEF"
# Characters that may stand literally in a path segment (RFC 3986 pchar, minus '%').
_SAFE = "/:@!$&'()*+,;=-._~"


class BadPath(ValueError):
    """A request target that cannot be routed safely (answered with 400)."""


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Split a request target into path and query (without '?'); drop a fragment."""
    hash_at = target.find(b"#")
    if hash_at >= 0:
        target = target[:hash_at]
    query_at = target.find(b"?")
    if query_at < 0:
        return target, b""
    return target[:query_at], target[query_at + 1 :]


def _percent_decode(raw: bytes) -> str:
    if b"%" not in raw:
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise BadPath("non-ASCII byte in the request path") from None
    out = bytearray()
    i = 0
    length = len(raw)
    while i < length:
        byte = raw[i]
        if byte == 0x25:  # '%'
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or chr(pair[0]) not in _HEX or chr(pair[1]) not in _HEX:
                raise BadPath("invalid percent-encoding in the request path")
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(byte)
            i += 1
    if 0 in out:
        raise BadPath("NUL in the request path")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("the decoded request path is not UTF-8") from None


def _resolve(path: str) -> str:
    """Merge '//' and resolve '.' and '..' segments; BadPath when '..' escapes the root."""
    segments = path.split("/")
    out: list[str] = []
    for segment in segments[1:-1]:
        if segment == "" or segment == ".":
            continue
        if segment == "..":
            if not out:
                raise BadPath("the request path escapes the root")
            out.pop()
            continue
        out.append(segment)
    last = segments[-1] if len(segments) > 1 else ""
    trailing = False
    if last == "..":
        if not out:
            raise BadPath("the request path escapes the root")
        out.pop()
        trailing = True
    elif last in ("", "."):
        trailing = True
    else:
        out.append(last)
    resolved = "/" + "/".join(out)
    if trailing and out:
        resolved += "/"
    return resolved


def normalize(raw_path: bytes) -> tuple[str, bytes]:
    """Return (routing path, upstream path) for a raw request path (no query).

    Raises BadPath for what must be answered 400: no leading '/', bad or NUL
    percent-encoding, non-UTF-8, a '..' that escapes the root.
    """
    if not raw_path.startswith(b"/"):
        raise BadPath("the request path must start with '/'")
    # Fast path: nothing to decode and no '.' or '//' structure to resolve.
    if b"%" not in raw_path and b"/." not in raw_path and b"//" not in raw_path:
        try:
            return raw_path.decode("ascii"), raw_path
        except UnicodeDecodeError:
            raise BadPath("non-ASCII byte in the request path") from None
    decoded = _percent_decode(raw_path)
    routing = _resolve(decoded)
    if routing == decoded:
        return routing, raw_path
    return routing, quote(routing, safe=_SAFE).encode("ascii")


# Routing paths seen recently → their lenient views (a pure function of the path: nothing to
# invalidate). Bounded: emptied when full; paths longer than _VIEWS_LONGEST are not kept.
_VIEWS: dict[str, tuple[str, ...]] = {}
VIEWS_REMEMBERED = 1024
_VIEWS_LONGEST = 256


def lenient_views(path: str) -> tuple[str, ...]:
    """Other readings of a routing path that common backends make, for split-view checks.

    Servlet containers drop ``;parameters`` from segments, Windows servers read ``\\`` as
    ``/`` and many frameworks match paths case-insensitively. A request whose lenient
    reading would route somewhere ingressd's strict reading does not is ambiguous
    (Traefik CVE-2025-66490). Empty when the path has nothing to read differently.
    A path seen recently is answered from a memo (the request path asks for every request:
    a look-up of the path, whose hash the route table's memo computed already, costs less
    than the test below and its lower-cased copy).
    """
    views = _VIEWS.get(path)
    if views is None:
        views = _lenient_views(path)
        if len(path) <= _VIEWS_LONGEST:
            if len(_VIEWS) >= VIEWS_REMEMBERED:
                _VIEWS.clear()
            _VIEWS[path] = views
    return views


def _lenient_views(path: str) -> tuple[str, ...]:
    """``lenient_views``' answer, worked out."""
    if ";" not in path and "\\" not in path and path == path.lower():
        return ()
    views = []
    stripped = "/".join(segment.split(";", 1)[0] for segment in path.replace("\\", "/").split("/"))
    try:
        views.append(_resolve(stripped or "/"))
    except BadPath:
        views.append("/")
    views.append(views[0].lower())
    if path != path.lower():
        views.append(path.lower())
    return tuple(dict.fromkeys(v for v in views if v != path))
