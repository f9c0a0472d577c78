"""What the request path needs of a request head, in one call: the target's routing path, query
and upstream target when the target needs no normalising, and the one pass over the headers
(``Exchange.begin``).

``request_facts(target, pairs, forwarded_names, spoofable)`` returns ``(path, query, target,
host, request_id, upgrade, has_connection, spoofed, forwarded)`` or None:

- None when the target is not a plain origin-form path: not starting with ``/``, a fragment
  (``#``), a ``%``, a ``/.`` or ``//`` in the path, a byte beyond ASCII. Those take the general
  steps (``pathnorm.split_target``, ``pathnorm.normalize``: decoding, resolving, the 400s), so
  every unusual target keeps its one code path.
- Otherwise the path as ``normalize`` gives it for such a target (the bytes as ASCII text), the
  query after the first ``?`` (b"" without one), and the target itself (what the backend is sent).
- From the headers (lower-case names): the values of the last ``host``, ``x-request-id`` and
  ``upgrade`` fields (None without one), whether there is a ``connection`` field, whether a name
  is spoofable (an ``x-forwarded-*`` one not in ``forwarded_names``, or one in ``spoofable``:
  ``forwarding.is_spoofable``) and whether there is an ``x-forwarded-*`` field at all.

The C accelerator ``ingressd.proxy._request_facts`` (``_request_facts.c``) is the same function;
``request_facts_py`` below is its pure-Python twin, used when the extension was not built (PyPy,
no compiler, ``INGRESSD_NO_ACCEL=1`` at install). The tests run both on every case and fuzz them
against each other and against the steps they replace.
"""

from __future__ import annotations


def request_facts_py(target: bytes, pairs, forwarded_names, spoofable):
    """The pure-Python twin of the C ``request_facts`` (same arguments, same results)."""
    if not isinstance(target, bytes):
        raise TypeError("request_facts: target must be bytes")
    if target[:1] != b"/" or b"#" in target:
        return None
    query_at = target.find(b"?")
    if query_at < 0:
        raw_path, query = target, b""
    else:
        raw_path, query = target[:query_at], target[query_at + 1:]
    if b"%" in raw_path or b"/." in raw_path or b"//" in raw_path or not raw_path.isascii():
        return None
    return (raw_path.decode("ascii"), query, target) + header_facts(pairs, forwarded_names, spoofable)


def header_facts(pairs, forwarded_names, spoofable) -> tuple:
    """The one pass over the headers: ``(host, request_id, upgrade, has_connection, spoofed,
    forwarded)`` as the module says (the twin's second half; ``Exchange`` uses it for a target
    that needs normalising)."""
    host = rid = upgrade = None
    connection = spoofed = forwarded = False
    for name, value in pairs:
        if name == b"host":
            host = value
        elif name == b"x-request-id":
            rid = value
        elif name == b"upgrade":
            upgrade = value
        elif name == b"connection":
            connection = True
        elif name.startswith(b"x-forwarded-"):
            forwarded = True
            if name not in forwarded_names:
                spoofed = True
        elif name in spoofable:
            spoofed = True
    return host, rid, upgrade, connection, spoofed, forwarded


try:
    from ingressd.proxy._request_facts import request_facts as _accelerated
except ImportError:  # not built: PyPy, no compiler, INGRESSD_NO_ACCEL=1
    _accelerated = None

ACCELERATED = _accelerated is not None
request_facts = _accelerated if _accelerated is not None else request_facts_py
