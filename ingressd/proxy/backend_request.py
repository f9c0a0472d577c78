"""A backend request's head as bytes in one call: the request line, the headers the backend is
sent and the framing, for the exchange's plain lane (the end of ``Exchange.begin``).

``backend_request_head(method, target, version, pairs, drop, extra, body_length)`` is
``METHOD target HTTP/version``, then ``name: value`` for every pair of ``pairs`` whose name
``drop`` does not hold (the client's headers without hop-by-hop and forwarding ones), then every
pair of ``extra`` (the forwarding headers, ``ForwardingPolicy.decide``), then
``content-length: N`` when ``body_length`` is not None, each line ending in CRLF, and the blank
line: byte for byte what ``HTTP1Connection.start`` writes for the same request after
``Exchange._upstream_headers`` built its list and ``headers.serialize`` joined it, in one call
instead of a list, a filter, a join and a format.

The C accelerator ``ingressd.proxy._backend_request`` (``_backend_request.c``) is the same
function; ``backend_request_head_py`` below is its pure-Python twin, used when the extension
was not built (PyPy, no compiler, ``INGRESSD_NO_ACCEL=1`` at install). The tests run both on
every case and fuzz them against each other and against the list-and-serialize steps.
"""

from __future__ import annotations

from ingressd.http.headers import serialize


def backend_request_head_py(method: bytes, target: bytes, version: bytes, pairs, drop, extra,
                            body_length: int | None) -> bytes:
    """The pure-Python twin of the C ``backend_request_head`` (same arguments, same bytes)."""
    # The steps it replaces, as they were (a join per line is cheaper in Python than a format).
    lines = [(name, value) for name, value in pairs if name not in drop]
    lines.extend([(name, value) for name, value in extra])
    if body_length is not None:
        lines.append((b"content-length", b"%d" % body_length))
    return b"%s %s HTTP/%s\r\n%s\r\n" % (method, target, version, serialize(lines))


try:
    from ingressd.proxy._backend_request import backend_request_head as _accelerated
except ImportError:  # not built: PyPy, no compiler, INGRESSD_NO_ACCEL=1
    _accelerated = None

ACCELERATED = _accelerated is not None
backend_request_head = _accelerated if _accelerated is not None else backend_request_head_py
