"""An access-log line joined and escaped in one call: ``join_line(form, values)``.

``form`` is a compiled ``log_format`` (``ingressd.logformat_compile``): ``(literals, kinds,
tail, escape)`` — the text before each variable, a byte per variable saying how its value is
written, the text after the last one, and the escaping (``ESCAPES``: 0 nginx's default, 1
json, 2 none). ``values`` holds the variables' raw values; None (not found) is always the
missing mark (``-`` with the default escaping, else nothing). The kinds:
``ESCAPED`` a str or bytes, escaped; ``PLAIN`` anything, as ``format(value)`` (digits, a
clock); ``SECONDS`` a float or int as ``'%.3f' % max(0.0, float(value))``; ``STATUS`` an int as
``'%03d' % value``; ``JSON`` a value as ``json.dumps`` writes it (str, bytes decoded as UTF-8
with backslashreplace, bool, int, float; None as ``null``, not the missing mark);
``JSON_SECONDS`` a float or int as ``json.dumps(round(value, 6))`` (None: ``null``);
``UTC_TIME`` a ``time.time()`` float as ``YYYY-mm-ddTHH:MM:SS.mmm`` in UTC (the access log's
json ``time``, milliseconds truncated); ``REQUEST`` an object (the exchange) whose ``method``,
``request_uri`` and ``version`` are bytes, as nginx's ``$request`` (``method request_uri
HTTP/version``, version ``2`` as ``2.0``), escaped as ``ESCAPED``: read and joined in one step
(``request_uri`` as the exchange's property computes it, from ``request.target``, when the object
has such a ``request``: ``_request_uri``).

``join_line_into(form, values, buffer)`` appends the same line's UTF-8 bytes (surrogateescape) to
the ``LineBuffer`` ``buffer``, no str made: True, or False when the buffer's bound dropped it;
nothing is appended when the line fails. A ``LineBuffer(max_bytes, shared=None)`` holds the access
log's waiting lines as bytes in one growing buffer with each line's end: ``append(line)`` takes a
line's bytes when the bytes waiting before it (its own, and its ``shared`` partner's ``size``) are
below ``max_bytes``, else counts it in ``dropped`` (True/False); ``len()`` is its lines, ``size``
its bytes; ``take()`` hands them all over as ``(bytes, count)``, ``take_lines()`` as a list of one
bytes a line, and empties it. With the C accelerator each of these is one C call that runs no
Python code, so the reactor's appends and the writer thread's takes never interleave; the twin,
``LineBufferPy``, is for the tests and for interpreters without the accelerator.

``header_values(headers, names)`` is the values of several header names in one pass over
``headers.pairs`` (``ingressd.http.headers.Headers``): each the first pair's value whose name equals
it, else None, as ``headers.get(name)``; for a headers object without such a ``pairs`` list, each
``headers.get(name)``. The access log reads its lines' headers so.

``join_line``, ``join_line_into``, ``LineBuffer`` and ``header_values`` are the C accelerator
``ingressd._logline``'s when it was built (CPython with a compiler; ``accelerated`` says so), else
``join_line_py``, ``join_line_into_py``, ``LineBufferPy`` and ``header_values_py``,
their pure-Python twins: the same
signature and the same results, which the tests hold them to. Without the accelerator the
compiled line does not call the twin: a single f-string (``logformat_compile``) is faster in
Python than this loop; the twin is the reference the C code is fuzzed against.

Escaping follows ``ngx_http_log_module`` as ``ingressd.logformat`` describes it: default
writes ``"``, ``\\`` and bytes below 0x20 or from 0x7F as ``\\xHH`` (a str's UTF-8 bytes,
surrogateescape'd characters as their bytes) and None as ``-``; json writes ``\\"``,
``\\\\``, ``\\n \\r \\t \\b \\f``, other bytes below 0x20 as ``\\u00XX`` and None as nothing; none
writes values as they are.
"""

from __future__ import annotations

import math
import operator
import re
import threading
import time
from json.encoder import encode_basestring_ascii as _quote  # C: a JSON string literal
from typing import Any

ESCAPES = {"default": 0, "json": 1, "none": 2}
ESCAPED, PLAIN, SECONDS, STATUS, JSON, JSON_SECONDS, UTC_TIME, REQUEST = 0, 1, 2, 3, 4, 5, 6, 7  # the kinds

_DEFAULT_SPECIAL = re.compile(rb'[^\x20\x21\x23-\x5b\x5d-\x7e]')
_JSON_SPECIAL = re.compile(r'[\x00-\x1f"\\]')
_JSON_SHORT = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r", 0x22: '\\"', 0x5C: "\\\\"}


def _escape_default_bytes(data: bytes) -> str:
    if _DEFAULT_SPECIAL.search(data) is None:
        return data.decode("ascii")
    return "".join(chr(byte) if 0x20 <= byte < 0x7F and byte not in (0x22, 0x5C) else f"\\x{byte:02X}"
                   for byte in data)


def _text_of(value: Any) -> str | bytes:
    if isinstance(value, str):
        return value if type(value) is str else str.__str__(value)
    if isinstance(value, bytes):
        return value if type(value) is bytes else bytes(value)
    raise TypeError(f"a log value must be str, bytes or None, not {type(value).__name__}")


def _write_default(value: Any) -> str:
    value = _text_of(value)
    if type(value) is str:
        value = value.encode("utf-8", "surrogateescape")
    return _escape_default_bytes(value)


def _write_json(value: Any) -> str:
    value = _text_of(value)
    if type(value) is bytes:
        value = value.decode("utf-8", "surrogateescape")
    if _JSON_SPECIAL.search(value) is None:
        return value
    return _JSON_SPECIAL.sub(lambda m: _JSON_SHORT.get(ord(m.group()), f"\\u{ord(m.group()):04X}"), value)


def _write_none(value: Any) -> str:
    value = _text_of(value)
    return value.decode("utf-8", "surrogateescape") if type(value) is bytes else value


_WRITERS = (_write_default, _write_json, _write_none)


def _seconds(value: Any) -> str:
    if not isinstance(value, (float, int)):
        raise TypeError(f"a seconds value must be float or int, not {type(value).__name__}")
    number = float(value)
    return "%.3f" % (number if number > 0.0 else 0.0)  # max(0.0, …), NaN and -0.0 included


def _status(value: Any) -> str:
    if not isinstance(value, int):
        raise TypeError(f"a status must be int, not {type(value).__name__}")
    return "%03d" % value


def _json_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, bytes):
        return _quote(bytes(value).decode("utf-8", "backslashreplace"))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    raise TypeError(f"a JSON log value must be str, bytes, bool, int, float or None, not {type(value).__name__}")


def _json_seconds(value: Any) -> str:
    """``json.dumps(round(value, 6))``; for the usual durations (from 10^-4 s, below 10^6 s, where
    the shortest repr of the rounded float is its 6-decimal form) without the rounding and repr."""
    if value is None:
        return "null"
    if type(value) is float and 0.0001 <= value < 1e6:
        text = ("%.6f" % value).rstrip("0")
        return text + "0" if text[-1] == "." else text
    if not isinstance(value, (float, int)):
        raise TypeError(f"a seconds value must be float or int, not {type(value).__name__}")
    return _json_value(round(value, 6))


def _utc_time(value: Any) -> str:
    if not isinstance(value, float):
        raise TypeError(f"a time must be float, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError("a time must be finite")
    second = int(value)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(second))}.{int((value - second) * 1000):03d}"


def _request_uri(value: Any) -> Any:
    """``$request``'s URI: ``value.request.target`` up to a ``#`` when ``value`` has a ``request``
    whose ``target`` is bytes (what ``Exchange.request_uri`` gives, without the property's frame:
    the C code's ``request_uri_of``), else ``value.request_uri``."""
    try:
        target = value.request.target
    except AttributeError:
        return value.request_uri
    if type(target) is not bytes:
        return value.request_uri
    hash_at = target.find(b"#")
    return target if hash_at < 0 else target[:hash_at]


def _request_line(value: Any) -> bytes:
    """``REQUEST``: nginx's ``$request`` read off an exchange."""
    try:
        method, uri, version = value.method, _request_uri(value), value.version
    except AttributeError:  # not an exchange: a wrong value
        raise TypeError(f"$request's value must have method, request_uri and version, "
                        f"not {type(value).__name__}") from None
    for part in (method, uri, version):
        if not isinstance(part, bytes):
            raise TypeError(f"$request's parts must be bytes, not {type(part).__name__}")
    two = len(version) == 1 and version[0] == 0x32  # b"2", by its contents (as the C code)
    return b"".join((method, b" ", uri, b" HTTP/", b"2.0" if two else version))


def header_values_py(headers: Any, names: tuple) -> tuple:
    """Each name's value in ``headers`` (see the module's docstring)."""
    if type(names) is not tuple:
        raise TypeError("names must be a tuple")
    pairs = getattr(headers, "pairs", None)
    if type(pairs) is not list or not all(type(pair) is tuple and len(pair) == 2 for pair in pairs):
        return tuple(headers.get(name) for name in names)
    values: list = [None] * len(names)
    found = [False] * len(names)
    left = len(names)
    for key, value in pairs:
        if not left:
            break
        for index, name in enumerate(names):
            if not found[index] and key == name:
                values[index] = value
                found[index] = True
                left -= 1
    return tuple(values)


def join_line_py(form: tuple, values: tuple) -> str:
    """The line: each literal, then its variable's value written as ``form`` says; then the tail."""
    literals, kinds, tail, escape = form
    if type(literals) is not tuple or type(values) is not tuple or not isinstance(kinds, bytes) \
            or not isinstance(tail, str) or not isinstance(escape, int):
        raise TypeError("form must be (tuple of str, bytes, str, int) and values a tuple")
    if not 0 <= escape <= 2:
        raise ValueError("escape must be 0 (default), 1 (json) or 2 (none)")
    if not len(literals) == len(kinds) == len(values):
        raise ValueError("literals, kinds and values must have the same length")
    write = _WRITERS[escape]
    missing = "-" if escape == 0 else ""
    out = []
    for literal, kind, value in zip(literals, kinds, values):
        if not isinstance(literal, str):
            raise TypeError("literals must be str")
        out.append(literal)
        if kind == JSON:
            out.append(_json_value(value))
        elif kind == JSON_SECONDS:
            out.append(_json_seconds(value))
        elif kind == UTC_TIME:
            out.append(_utc_time(value))
        elif value is None:
            out.append(missing)
        elif kind == ESCAPED:
            out.append(write(value))
        elif kind == REQUEST:
            out.append(write(_request_line(value)))
        elif kind == PLAIN:
            out.append(value if type(value) is str else format(value, ""))
        elif kind == SECONDS:
            out.append(_seconds(value))
        elif kind == STATUS:
            out.append(_status(value))
        else:
            raise ValueError(f"unknown value kind {kind}")
    out.append(tail)
    return "".join(out)


class LineBufferPy:
    """Waiting access-log lines as bytes in one buffer (see the module's docstring); the C
    ``LineBuffer``'s twin. A lock makes each method one step for the reactor and the writer thread,
    as the C calls are."""

    __slots__ = ("_data", "_ends", "_max_bytes", "dropped", "shared", "_lock")

    def __init__(self, max_bytes: int, shared: LineBufferPy | None = None):
        if shared is not None and not isinstance(shared, LineBufferPy):
            raise TypeError("shared must be a LineBuffer or None")
        self._lock = threading.Lock()
        self._data = bytearray()
        self._ends: list[int] = []
        self.max_bytes = max_bytes
        self.dropped = 0
        self.shared = shared

    def __len__(self) -> int:
        return len(self._ends)

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self._max_bytes = operator.index(value)

    @property
    def size(self) -> int:
        return len(self._data)

    def append(self, line: bytes) -> bool:
        if not isinstance(line, bytes):
            raise TypeError(f"a line must be bytes, not {type(line).__name__}")
        with self._lock:
            waiting = len(self._data) + (self.shared.size if self.shared is not None else 0)
            if waiting >= self._max_bytes:
                self.dropped += 1
                return False
            self._data += line
            self._ends.append(len(self._data))
            return True

    def take(self) -> tuple[bytes, int]:
        with self._lock:
            taken = (bytes(self._data), len(self._ends))
            self._data, self._ends = bytearray(), []
            return taken

    def take_lines(self) -> list[bytes]:
        with self._lock:
            data, starts = self._data, [0] + self._ends
            lines = [bytes(data[start:end]) for start, end in zip(starts, self._ends)]
            self._data, self._ends = bytearray(), []
            return lines


_BUFFERS: tuple[type, ...] = (LineBufferPy,)  # and the C LineBuffer when built


def join_line_into_py(form: tuple, values: tuple, buffer: LineBufferPy) -> bool:
    """``join_line_py``'s line as UTF-8 bytes (surrogateescape) appended to ``buffer``
    (``append``: False when its byte bound dropped it). Nothing is appended when the line fails."""
    if type(buffer) not in _BUFFERS:
        raise TypeError("buffer must be a LineBuffer")
    return buffer.append(join_line_py(form, values).encode("utf-8", "surrogateescape"))


try:
    from ingressd._logline import LineBuffer, header_values, join_line, join_line_into
    _BUFFERS = (LineBufferPy, LineBuffer)
    accelerated = True
except ImportError:  # PyPy, no compiler at install, INGRESSD_NO_ACCEL=1
    join_line = join_line_py
    join_line_into = join_line_into_py
    header_values = header_values_py
    LineBuffer = LineBufferPy  # type: ignore[misc, assignment]
    accelerated = False
