"""A plain HTTP/1.1 request head in one call: the common case of the client side, without
llhttp's callback per header line.

``parse_request_head(data, start, one_buffer, max_headers, drop_underscores)`` reads the
complete head that begins at ``data[start]`` and returns ``(method, target, version, headers,
keep_alive, end, head_bytes, content_length)`` exactly as ``http1.HTTP1ServerProtocol``'s
llhttp callbacks would have built them: header names lower-cased, a name with an underscore
dropped when ``drop_underscores``, ``end`` the offset after the head's blank line,
``head_bytes`` nginx's $request_length of the head, ``content_length`` 0 for
``Content-Length: 0`` and None without one.

It *declines* (returns None) everything that is not a plain request it fully understands: an
incomplete head, a body (any Content-Length but a single ``0``, Transfer-Encoding), Upgrade,
Expect, Connection with anything but one ``close`` or ``keep-alive``, Proxy-Connection, no or
several Host fields, a method other than the common seven, a target that is not an
origin-form path of printable ASCII, a version other than HTTP/1.0 and 1.1, a bare CR or LF,
whitespace where llhttp's strict mode is particular (around the request line's spaces,
before a colon, obs-fold), more than ``max_headers`` header lines, a head larger than one of
nginx's header buffers (``one_buffer``). A declined head goes to llhttp as ever, so every
rejection and every unusual request keeps its one code path.

The C accelerator ``ingressd.http._request_head`` (``_request_head.c``) is the same function;
``parse_request_head_py`` below is its pure-Python twin, used when the extension was not built
(PyPy, no compiler, ``INGRESSD_NO_ACCEL=1`` at install). The tests run both on every case and
fuzz them against each other and against llhttp.
"""

from __future__ import annotations

_METHODS = {m: m for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")}
_VERSIONS = {b"HTTP/1.1": b"1.1", b"HTTP/1.0": b"1.0"}
_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TARGET = bytes(range(0x21, 0x7F))  # printable ASCII: what llhttp takes in an origin-form target
_VALUE = b"\t" + bytes(i for i in range(0x20, 0x100) if i != 0x7F)  # llhttp's header value bytes
# Names that make a request more than plain (framing, protocol switches, expectations).
_DECLINED = frozenset((b"transfer-encoding", b"upgrade", b"expect", b"proxy-connection"))
_CONNECTION = {b"close": False, b"keep-alive": True}


def parse_request_head_py(data: bytes, start: int, one_buffer: int, max_headers: int,
                          drop_underscores: bool):
    """The pure-Python twin of the C ``parse_request_head`` (same arguments, same results)."""
    if not isinstance(data, bytes):
        raise TypeError("parse_request_head: data must be bytes")
    size = len(data)
    if not 0 <= start <= size or one_buffer < 0 or max_headers < 0:
        return None
    stop = min(size, start + 2 * one_buffer + 4)  # a head larger than that is declined anyway
    blank = data.find(b"\r\n\r\n", start, stop)
    if blank < 0:
        return None
    lines = data[start:blank].split(b"\r\n")
    request_line = lines[0]
    sp1 = request_line.find(b" ")
    method = _METHODS.get(request_line[:sp1]) if sp1 > 0 else None
    if method is None:
        return None
    sp2 = request_line.find(b" ", sp1 + 1)
    if sp2 < 0:
        return None
    target = request_line[sp1 + 1:sp2]
    version = _VERSIONS.get(request_line[sp2 + 1:])
    if version is None or target[:1] != b"/" or target.translate(None, _TARGET):
        return None
    if len(lines) - 1 > max_headers:
        return None
    head_bytes = len(method) + len(target) + 14
    headers = []
    hosts = 0
    content_length = None
    connection = None
    for i in range(1, len(lines)):
        line = lines[i]
        colon = line.find(b":")
        if colon <= 0:
            return None
        name = line[:colon]
        value = line[colon + 1:].lstrip(b" \t")
        if name.translate(None, _TOKEN) or value.translate(None, _VALUE):
            return None  # (a bare CR or LF is in neither set)
        head_bytes += len(name) + len(value) + 4
        if drop_underscores and b"_" in name:
            continue
        name = name.lower()
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            if content_length is not None or value != b"0":
                return None
            content_length = 0
        elif name == b"connection":
            if connection is not None:
                return None
            connection = _CONNECTION.get(value.lower())
            if connection is None:
                return None
        elif name in _DECLINED:
            return None
        headers.append((name, value))
    if hosts != 1 or head_bytes > one_buffer:
        return None
    if version == b"1.1":
        keep_alive = connection is not False
    else:
        keep_alive = connection is True
    return method, target, version, headers, keep_alive, blank + 4, head_bytes, content_length


try:
    from ingressd.http._request_head import parse_request_head as _accelerated
except ImportError:  # not built: PyPy, no compiler, INGRESSD_NO_ACCEL=1
    _accelerated = None

ACCELERATED = _accelerated is not None
parse_request_head = _accelerated if _accelerated is not None else parse_request_head_py
