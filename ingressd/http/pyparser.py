"""A pure-Python HTTP/1.1 parser with httptools' interface and llhttp's strict rules.

Why: under PyPy, httptools (llhttp) runs through cpyext and one request parse costs several
times what it costs on CPython. ``ingressd.http.parser`` picks this module on PyPy (or with
``INGRESSD_HTTP_PARSER=python``). It is written for PyPy's JIT: bytes ``find``/``translate``
and slicing, one pass per line, no per-byte Python loop on the hot path. ``tests/test_pyparser.py``
checks it against httptools 0.9 (llhttp 9, strict: no ``set_dangerous_leniencies``) with a
differential fuzzer.

Interface (what ``ingressd/http/http1.py`` and ``ingressd/proxy/upstream.py`` use, as httptools):
``HttpRequestParser(protocol)`` / ``HttpResponseParser(protocol)``, ``feed_data(bytes)``,
``get_method()`` (bytes; ``b"DELETE"`` before any request, like llhttp's method 0),
``get_http_version()`` (``"1.1"``; ``"0.0"`` before any message), ``should_keep_alive()``,
``should_upgrade()``, ``get_status_code()``. Callbacks, looked up once at creation, each only
if the protocol has it: ``on_message_begin``, ``on_url`` (pieces), ``on_status`` (pieces),
``on_header(name, value)``, ``on_headers_complete``, ``on_body`` (pieces),
``on_message_complete``, ``on_chunk_header``, ``on_chunk_complete``.

Rules (llhttp's, verified against httptools by experiment):

* Between messages, CR and LF bytes are skipped; ``on_message_begin`` comes with the first other
  byte. Every line ends with CRLF: a bare LF, or a CR followed by anything but LF, is an error.
* Request line: a method from llhttp's list (HTTP, WebDAV, RTSP... ``GET``, ``M-SEARCH``,
  ``PRI``...; case-sensitive), one space, more spaces skipped, the URL, spaces, then
  ``HTTP/``, ``RTSP/`` or ``ICE/`` (the method must belong to that protocol), ``d.d`` among 0.9,
  1.0, 1.1, 2.0, CRLF. A URL followed directly by CRLF is HTTP/0.9 (version ``"0.9"``).
  URL (llhttp's strict URL mode): ``/`` or ``*`` then ``A-Za-z0-9!"$%&'()*+,-./:;<=>@[\\]^_`{|}~``
  plus ``?`` and ``#``; or ``scheme://`` (letters only) then a server part (userinfo chars,
  ``[]``, ``@``) up to ``/`` or ``?``; CONNECT's URL starts in the server part. No tab, no
  control byte, no byte >= 0x80. ``PRI * HTTP/2.0`` must go on with the HTTP/2 preface, and then
  it is an error anyway ("Pause on PRI/Upgrade").
  ``on_url`` gets the URL in pieces: what arrived in one feed_data call, once it is validated.
* Status line: ``HTTP/``, ``RTSP/`` or ``ICE/``, version as above, exactly one space, three
  digits, then CRLF or a space and any bytes (the reason, to ``on_status``) up to CRLF.
* Header field: 1+ tchar (RFC 7230 token chars, no space), then ``:``. A space before the colon
  is an error. Value: leading spaces/tabs dropped, trailing ones KEPT (httptools gives
  ``b"a b \\t "`` for ``X:  a b \\t ``), bytes allowed: HT, 0x20-0x7E, 0x80-0xFF. A line that
  starts with a space or tab after a header (obs-fold), and a space before the first header,
  are errors. ``on_header`` is called once per header with the complete name and value: like
  httptools, when the next header's name has been read (or a feed ends inside it), or at
  ``on_headers_complete``.
* Content-Length: digits, then only spaces/tabs; at most 2**64-1; empty, duplicated (even with
  the same value), or with Transfer-Encoding (in either order) is an error.
* Transfer-Encoding: comma-separated codings; chunked when the last one is ``chunked``
  (case-insensitive, only spaces after it). In requests, any coding after ``chunked`` (in the
  same or a later header) is an error, and a non-chunked Transfer-Encoding is an error after
  ``on_headers_complete``. In responses, a non-chunked Transfer-Encoding means a body up to EOF.
* Connection / Proxy-Connection: comma-separated tokens; ``close``, ``keep-alive``, ``upgrade``
  (case-insensitive) count. Keep-alive: HTTP/x.y with x>0 and y>0 unless ``close``; otherwise only
  with ``keep-alive`` (so HTTP/2.0 counts as 1.0); never when a response body runs to EOF.
* Upgrade: ``Upgrade:`` + ``Connection: upgrade`` (requests; responses only with status 101), or
  the CONNECT method. Then the head is the whole message (a body it announces is not read):
  ``on_message_complete``, then ``HttpParserUpgrade(offset)`` with the offset in the fed data of
  the first byte after the head; parsing goes on after that offset if fed again (a next request
  on a keep-alive connection). A 101 response without those headers is an error.
* Bodies: chunked (hex size, at most 2**64-1, no spaces, extensions ``;name[=token|"quoted"]``
  checked like llhttp, CRLF after each chunk, trailers parsed as headers (``on_header`` after
  ``on_headers_complete``) with the same checks, then ``on_chunk_complete`` and
  ``on_message_complete``); otherwise Content-Length; otherwise none for requests; responses
  1xx (100, 102, 103 even with a Content-Length), 204 and 304 have none, others without a
  length read to EOF (``on_body`` as data comes; there is no EOF call).
* After a message that is not keep-alive, only CR/LF may follow ("Data after
  ``Connection: close``").
* After an error (including an exception raised by a callback: ``HttpParserCallbackError``
  raised while handling it, so ``__context__`` is that exception), every feed_data raises again.

Deliberate differences from llhttp:

* A single line (request/status line, header line, chunk-size line with its extensions) longer
  than ``MAX_LINE`` bytes is an error; llhttp has no limit (it streams, and httptools buffers a
  header value whole). ingressd's own limits (``max_url_bytes``, ``max_header_bytes``) are far
  below and trigger first: ``on_url`` pieces are delivered as they arrive, like llhttp.
* ``on_url``/``on_status``/``on_body`` are never called with an empty piece (llhttp does, at
  some feed boundaries).
* Error messages are llhttp's for the common cases, not all of them.
"""

from __future__ import annotations

__all__ = [
    "HttpParserError", "HttpParserCallbackError", "HttpParserInvalidStatusError",
    "HttpParserInvalidMethodError", "HttpParserInvalidURLError", "HttpParserUpgrade",
    "HttpRequestParser", "HttpResponseParser", "MAX_LINE",
]

MAX_LINE = 256 * 1024


class HttpParserError(Exception):
    pass


class HttpParserCallbackError(HttpParserError):
    pass


class HttpParserInvalidStatusError(HttpParserError):
    pass


class HttpParserInvalidMethodError(HttpParserError):
    pass


class HttpParserInvalidURLError(HttpParserError):
    pass


class HttpParserUpgrade(Exception):
    pass


class _Error(Exception):
    """Internal: a parse error (class and message of the public exception)."""

    def __init__(self, cls, message):
        Exception.__init__(self, message)
        self.cls = cls
        self.message = message


def _chars(spec: str) -> bytes:
    return spec.encode("latin-1")


_ALPHA = _chars("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGIT = b"0123456789"
_ALNUM = _ALPHA + _DIGIT
_TOKEN = _ALNUM + b"!#$%&'*+-.^_`|~"
_URL = _ALNUM + b"!\"$%&'()*+,-./:;<=>@[\\]^_`{|}~"
_PATH = _URL + b"?#"  # path, query and fragment together: "?" and "#" only switch between them
_SERVER = _ALNUM + b"-_.!~*'()%;:&=+$,[]@"
_HEADER_VALUE = b"\t" + bytes(i for i in range(0x20, 0x100) if i != 0x7F)
_HEX = b"0123456789abcdefABCDEF"
_VALUE_MAP = bytes(0x20 if i in _HEADER_VALUE else 0 for i in range(256))  # bad bytes -> 0
_ORDINARY_NAMES: dict = {}  # header names seen valid and not special (bounded)
_QDTEXT = b"\t !" + bytes(range(0x23, 0x5C)) + bytes(range(0x5D, 0x7F)) + bytes(range(0x80, 0x100))
_QPAIR = b"\t" + bytes(i for i in range(0x20, 0x100) if i != 0x7F)

_MAX_U64 = (1 << 64) - 1

# llhttp's methods, and the protocols each is allowed with.
_HTTP_METHODS = (
    "DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH "
    "SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY "
    "SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK PRI SOURCE QUERY"
).split()
_RTSP_METHODS = (
    "OPTIONS DESCRIBE ANNOUNCE SETUP PLAY PAUSE TEARDOWN GET_PARAMETER SET_PARAMETER REDIRECT "
    "RECORD FLUSH GET POST"
).split()
_METHODS = frozenset(m.encode() for m in _HTTP_METHODS + _RTSP_METHODS)
_METHOD_PREFIXES = frozenset(m[:i] for m in _METHODS for i in range(1, len(m) + 1))
_PROTO_METHODS = {
    b"HTTP": frozenset(m.encode() for m in _HTTP_METHODS),
    b"RTSP": frozenset(m.encode() for m in _RTSP_METHODS),
    b"ICE": frozenset([b"SOURCE"]),
}
_VERSIONS = {b"0.9": (0, 9), b"1.0": (1, 0), b"1.1": (1, 1), b"2.0": (2, 0)}
_PRI_PREFACE = b"\r\n\r\nSM\r\n\r\n"
_FAST_VERSIONS = {b"HTTP/1.1": (1, 1), b"HTTP/1.0": (1, 0)}
_HTTP_METHOD_SET = _PROTO_METHODS[b"HTTP"]

# flags (llhttp's F_*)
F_KEEP_ALIVE = 1
F_CLOSE = 2
F_CONN_UPGRADE = 4
F_CHUNKED = 8
F_UPGRADE = 16
F_CONTENT_LENGTH = 32
F_SKIPBODY = 64
F_TRANSFER_ENCODING = 512

# special headers
H_CONNECTION = 1
H_CONTENT_LENGTH = 2
H_TRANSFER_ENCODING = 3
H_UPGRADE = 4
_SPECIAL = {
    b"connection": H_CONNECTION, b"proxy-connection": H_CONNECTION,
    b"content-length": H_CONTENT_LENGTH, b"transfer-encoding": H_TRANSFER_ENCODING,
    b"upgrade": H_UPGRADE,
}
_SPECIAL_LENS = frozenset(len(k) for k in _SPECIAL)
_CONNECTION_TOKENS = {b"close": F_CLOSE, b"keep-alive": F_KEEP_ALIVE, b"upgrade": F_CONN_UPGRADE}

# states
S_START = 0  # between messages
S_FIRST = 1  # request / status line
S_HEADERS = 2  # header lines (also trailers, with self._trailing)
S_BODY = 3  # Content-Length body
S_CHUNK_SIZE = 4
S_CHUNK_DATA = 5
S_CHUNK_END = 6  # CRLF after chunk data
S_EOF_BODY = 7
S_CLOSED = 8  # after a message that is not keep-alive
S_PRI = 9  # after "PRI * HTTP/2.0": the preface must follow, then error
S_ERROR = 10

# line terminators, as found
T_NONE = 0  # partial line: no CR/LF yet
T_CRLF = 1
T_CR = 2  # a CR that is the last byte fed so far
T_BAD = 3  # CR followed by another byte
T_LF = 4  # bare LF (an error, except after an HTTP/0.9 request line's URL)


def _url_error(url: bytes, connect: bool, done: bool):
    """The error message for a URL (a prefix of it unless ``done``), or None if it is fine."""
    if url[:1] == b"/" and not connect:
        return "Invalid char in url path" if url.translate(None, _PATH) else None
    i = 0
    if not connect:
        if not url:
            return "Invalid characters in url" if done else None
        c = url[0]
        if c == 47 or c == 42:  # "/" "*"
            if url.translate(None, _PATH):
                return "Invalid char in url path"
            return None
        if url[:1].translate(None, _ALPHA):
            return "Invalid characters in url" if c in b" \t\x0c\r\n" else "Unexpected start char in url"
        n = len(url) - len(url.lstrip(_ALPHA))
        if n == len(url):
            return "Invalid characters in url" if done else None  # schema not finished
        if url[n] != 58:  # ":"
            return "Invalid characters in url" if url[n] in b" \t\x0c\r\n" else "Unexpected char in url schema"
        rest = url[n + 1:n + 3]
        if not b"//".startswith(rest):
            return "Invalid characters in url" if rest.translate(None, b"/") in (b" ", b"\t") else \
                "Unexpected char in url schema"
        if len(rest) < 2:
            return "Invalid characters in url" if done else None
        i = n + 3
    # server part, up to "/" or "?"
    end = len(url)
    j = url.find(b"/", i)
    if j >= 0:
        end = j
    j = url.find(b"?", i, end)
    if j >= 0:
        end = j
    if url[i:end].translate(None, _SERVER):
        return "Unexpected char in url server"
    if end < len(url) and url[end + 1:].translate(None, _PATH):
        return "Invalid char in url path"
    return None


def _te_chunked(segment: bytes) -> bool:
    """llhttp's ``header_value_te_chunked``: "chunked" (any case) then only spaces."""
    return len(segment) >= 7 and segment[:7].lower() == b"chunked" and not segment[7:].strip(b" ")


class _HttpParser:
    _is_request = True

    def __init__(self, protocol):
        get = getattr
        self._on_message_begin = get(protocol, "on_message_begin", None)
        self._on_url = get(protocol, "on_url", None)
        self._on_status = get(protocol, "on_status", None)
        self._on_header = get(protocol, "on_header", None)
        self._on_headers_complete = get(protocol, "on_headers_complete", None)
        self._on_body = get(protocol, "on_body", None)
        self._on_message_complete = get(protocol, "on_message_complete", None)
        self._on_chunk_header = get(protocol, "on_chunk_header", None)
        self._on_chunk_complete = get(protocol, "on_chunk_complete", None)
        self._state = S_START
        self._buf = b""  # unfinished line (head, chunk size, chunk CRLF)
        self._flags = 0
        self._length = 0  # Content-Length, or what is left of the body / chunk
        self._major = 0
        self._minor = 0
        self._method = b"DELETE"
        self._status = 0
        self._upgrade = False
        self._first_header = True  # the next header line is the first after the start line
        self._trailing = False
        self._pending = None  # (name, value): on_header not called yet
        self._fin = None  # flags of the last header line, applied when the next byte comes
        self._hstage = 0  # progress in the current header line: 1 name done, 2 value started
        self._hcolon = 0
        self._hname = b""
        self._hkind = 0
        self._sent = 0  # bytes of the URL / reason already given to on_url / on_status
        self._url_ended_line = False  # HTTP/0.9 request line
        self._error = None  # (class, message) once in error

    # -- public API ---------------------------------------------------------------------------

    def get_http_version(self) -> str:
        return "%d.%d" % (self._major, self._minor)

    def should_keep_alive(self) -> bool:
        return bool(self._keep_alive(self._flags))

    def should_upgrade(self) -> bool:
        return self._upgrade

    def feed_data(self, data) -> None:
        if self._error is not None:
            cls, message = self._error
            raise cls(message)
        if not isinstance(data, bytes):
            data = bytes(data)
        shift = len(self._buf)
        if shift:
            data = self._buf + data
            self._buf = b""
        try:
            self._run(data, shift)
        except _Error as exc:
            self._state = S_ERROR
            self._error = (exc.cls, exc.message)
            raise exc.cls(exc.message) from None

    # -- internals ----------------------------------------------------------------------------

    def _keep_alive(self, flags) -> int:
        if self._major > 0 and self._minor > 0:
            if flags & F_CLOSE:
                return 0
        elif not flags & F_KEEP_ALIVE:
            return 0
        return not self._needs_eof(flags)

    def _needs_eof(self, flags) -> bool:
        if self._is_request:
            return False
        status = self._status
        if status // 100 == 1 or status == 204 or status == 304 or flags & F_SKIPBODY:
            return False
        if flags & F_TRANSFER_ENCODING and not flags & F_CHUNKED:
            return True
        if flags & (F_CHUNKED | F_CONTENT_LENGTH):
            return False
        return True

    def _call(self, cb, *args):
        try:
            cb(*args)
        except BaseException:
            # raised while handling the callback's exception: it is the __context__
            message = "`%s` callback error" % getattr(cb, "__name__", "?")
            self._state = S_ERROR
            self._error = (HttpParserCallbackError, message)
            raise HttpParserCallbackError(message)

    def _emit_pending(self):
        pending = self._pending
        if pending is not None:
            self._pending = None
            on_header = self._on_header
            if on_header is not None:
                try:
                    on_header(pending[0], pending[1])
                except BaseException:
                    self._state = S_ERROR
                    self._error = (HttpParserCallbackError, "`on_header` callback error")
                    raise HttpParserCallbackError("`on_header` callback error")

    def _run(self, data: bytes, shift: int) -> None:
        n = len(data)
        pos = 0
        find = data.find
        while pos < n:
            state = self._state
            if state == S_HEADERS and self._hstage == 0:
                # fast path: complete ordinary header lines (no special header, nothing odd)
                first = pos
                while True:
                    lf = find(b"\n", pos)
                    end = lf - 1
                    if end <= pos or data[end] != 13:
                        break  # no complete line, an empty line (end of head), or a bare LF
                    fin = self._fin
                    if fin is not None:
                        if fin != 0 or data[pos] == 32 or data[pos] == 9:
                            break
                        self._fin = None
                    colon = find(b":", pos, end)
                    if colon <= pos:
                        break
                    name = data[pos:colon]
                    if name not in _ORDINARY_NAMES:
                        if name.translate(None, _TOKEN) or (len(name) in _SPECIAL_LENS and name.lower() in _SPECIAL):
                            break
                        if len(_ORDINARY_NAMES) < 1024:
                            _ORDINARY_NAMES[name] = True
                    value = data[colon + 1:end].lstrip(b" \t")
                    if not value or 0 in value.translate(_VALUE_MAP):
                        break  # (a CR in the name or value fails these checks too)
                    if self._pending is not None:
                        self._emit_pending()
                    self._pending = (name, value)
                    self._fin = 0
                    pos = lf + 1
                if pos != first:
                    self._first_header = False
                    if pos == n:
                        return
            if state == S_START:
                while pos < n and data[pos] in (13, 10):
                    pos += 1
                if pos == n:
                    return
                self._begin()
                continue
            if state == S_BODY or state == S_CHUNK_DATA:  # ``_length`` more bytes of body
                left = self._length
                take = n - pos
                if take < left:
                    self._length = left - take
                    if self._on_body is not None:
                        self._call(self._on_body, data[pos:] if pos else data)
                    return
                if self._on_body is not None and left:
                    self._call(self._on_body, data[pos:pos + left])
                pos += left
                self._length = 0
                if state == S_BODY:
                    self._message_done()
                else:
                    self._state = S_CHUNK_END
                continue
            if state == S_EOF_BODY:
                if self._on_body is not None:
                    self._call(self._on_body, data[pos:] if pos else data)
                return
            if state == S_CHUNK_END:
                if data[pos] != 13:
                    raise _Error(HttpParserError, "Expected LF after chunk data" if data[pos] != 10
                                 else "Missing expected CR after chunk data")
                if pos + 1 == n:
                    self._buf = data[pos:]
                    return
                if data[pos + 1] != 10:
                    raise _Error(HttpParserError, "Expected LF after chunk data")
                pos += 2
                self._state = S_CHUNK_SIZE
                self._chunk_complete()
                continue
            if state == S_CLOSED:
                if data[pos:].lstrip(b"\r\n"):
                    raise _Error(HttpParserError, "Data after `Connection: close`")
                return
            if state == S_PRI:
                rest = data[pos:pos + len(self._pri_left)]
                if not self._pri_left.startswith(rest):
                    raise _Error(HttpParserError, "Expected HTTP/2 Connection Preface")
                if len(rest) == len(self._pri_left):
                    raise _Error(HttpParserError, "Pause on PRI/Upgrade")
                self._pri_left = self._pri_left[len(rest):]
                return
            # line states: S_FIRST, S_HEADERS, S_CHUNK_SIZE
            lf = data.find(b"\n", pos)
            if lf < 0:
                cr = data.find(b"\r", pos)
                if cr < 0:
                    end, term = n, T_NONE
                elif cr == n - 1:
                    end, term = cr, T_CR
                else:
                    end, term = cr, T_BAD
            else:
                cr = data.find(b"\r", pos, lf)
                if cr < 0:
                    end, term = lf, T_LF
                elif cr == lf - 1:
                    end, term = cr, T_CRLF
                else:
                    end, term = cr, T_BAD
            if state == S_HEADERS:
                fin = self._fin
                if fin is not None:
                    if fin == 0 and data[pos] != 32 and data[pos] != 9:
                        self._fin = None
                    else:
                        self._finish_header(data[pos])
                if end == pos and self._hstage == 0:
                    # empty line: end of the head (or of the trailers)
                    if term == T_CRLF:
                        pos = end + 2
                        self._first_header = True
                        if self._trailing:
                            self._trailing = False
                            self._chunk_complete()
                            self._message_done()
                        else:
                            upgrade_at = self._headers_complete()
                            if upgrade_at:
                                raise HttpParserUpgrade(pos - shift)
                        continue
                    if term == T_CR:
                        self._buf = data[pos:]
                        return
                    if data[pos] == 10:
                        raise _Error(HttpParserError, "Invalid header field char")
                    raise _Error(HttpParserError, "Expected LF after headers")
                if self._first_header and data[pos] == 32:
                    raise _Error(HttpParserError, "Unexpected space after start line")
                self._header_line(data[pos:end], term)
            elif state == S_FIRST:
                if self._is_request:
                    self._request_line(data, pos, end, term)
                else:
                    self._status_line(data, pos, end, term)
                if self._state == S_PRI:  # only once the line ended with CRLF
                    pos = end + 2
                    continue
            else:  # S_CHUNK_SIZE
                self._chunk_size_line(data[pos:end], term)
            if term == T_CRLF or term == T_LF:
                pos = end + (2 if term == T_CRLF else 1)
                if state == S_HEADERS:
                    self._hstage = 0
                    self._first_header = False
                elif state == S_FIRST:
                    self._state = S_HEADERS
                    self._first_header = True
                    self._hstage = 0
                    if self._url_ended_line:
                        self._fin = -2
                else:
                    self._chunk_header()
                continue
            if term >= T_BAD:  # the line handler raises first, except in odd cases
                raise _Error(HttpParserError, "Missing expected LF")
            # partial line: keep it for the next feed
            if n - pos > MAX_LINE:
                raise _Error(HttpParserError, "line too long")
            self._buf = data[pos:]
            return

    def _begin(self):
        self._state = S_FIRST
        self._sent = 0
        self._url_ended_line = False
        self._flags = 0
        self._hstage = 0
        self._pending = None
        self._fin = None
        if self._on_message_begin is not None:
            self._call(self._on_message_begin)

    # -- start lines ----------------------------------------------------------------------------

    def _version(self, rest: bytes, final: bool, allowed_protocols=None):
        """Check ``PROTO/d.d`` (a prefix unless final); return the index after it or -1."""
        fast = _FAST_VERSIONS.get(rest[:8])
        if fast is not None and (allowed_protocols is None or self._method in _HTTP_METHOD_SET):
            self._major, self._minor = fast
            return 8
        for proto in (b"HTTP", b"RTSP", b"ICE"):
            if rest.startswith(proto):
                break
            if proto.startswith(rest) and not final:
                return -1
        else:
            raise _Error(HttpParserError, "Expected HTTP/, RTSP/ or ICE/")
        if allowed_protocols is not None and self._method not in allowed_protocols[proto]:
            raise _Error(HttpParserError, "Invalid method for %s/x.x request" % proto.decode())
        i = len(proto)
        tail = rest[i:i + 4]
        for k, expect in enumerate((b"/", _DIGIT, b".", _DIGIT)):
            if k >= len(tail):
                if final:
                    raise _Error(HttpParserError, "Invalid HTTP version")
                return -1
            if tail[k] not in expect:
                raise _Error(HttpParserError, ("Expected HTTP/, RTSP/ or ICE/", "Invalid major version",
                                               "Expected dot", "Invalid minor version")[k])
            if k == 1:
                self._major = tail[k] - 48
            elif k == 3:
                self._minor = tail[k] - 48
        if tail[1:] not in _VERSIONS:
            raise _Error(HttpParserError, "Invalid HTTP version")
        return i + 4

    def _request_line(self, data: bytes, pos: int, end: int, term: int) -> None:
        final = term != T_NONE
        sp = data.find(b" ", pos, end)
        if sp < 0:
            if final or data[pos:end] not in _METHOD_PREFIXES:
                raise _Error(HttpParserInvalidMethodError, "Invalid method encountered")
            return
        method = data[pos:sp]
        if method not in _METHODS:
            if method in _METHOD_PREFIXES or any(m.startswith(method) for m in _METHODS):
                raise _Error(HttpParserInvalidMethodError, "Expected space after method")
            raise _Error(HttpParserInvalidMethodError, "Invalid method encountered")
        self._method = method
        u0 = sp + 1
        while u0 < end and data[u0] == 32:
            u0 += 1
        if u0 == end and not final:
            return
        u1 = data.find(b" ", u0, end)
        url_done = u1 >= 0 or final
        url_end = u1 if u1 >= 0 else end
        url = data[u0:url_end]
        connect = method == b"CONNECT"
        err = _url_error(url, connect, url_done)
        if err is not None:
            raise _Error(HttpParserInvalidURLError, err)
        if len(url) > self._sent:
            piece = url[self._sent:]
            self._sent = len(url)
            if self._on_url is not None:
                self._call(self._on_url, piece)
        if u1 < 0:
            if not final:
                return
            # HTTP/0.9: the URL ends the line (llhttp takes a bare LF here)
            if term == T_BAD:
                raise _Error(HttpParserInvalidURLError, "Expected CRLF")
            self._major, self._minor = 0, 9
            self._url_ended_line = True
            return
        if u1 + 1 < end and data[u1 + 1] in (9, 12):
            # llhttp's strict URL nodes reject HT and FF right after the URL's space
            raise _Error(HttpParserInvalidURLError, "Invalid characters in url")
        v0 = u1 + 1
        while v0 < end and data[v0] == 32:
            v0 += 1
        rest = data[v0:end]
        if not rest and not final:
            return
        i = self._version(rest, final, _PROTO_METHODS)
        if i < 0:
            return
        if i < len(rest):
            raise _Error(HttpParserError, "Expected CRLF after version")
        if method == b"PRI":
            # llhttp matches the whole HTTP/2 preface here, CRLF included
            if term == T_CRLF:
                self._state = S_PRI
                self._pri_left = _PRI_PREFACE[2:]
            elif term >= T_BAD:
                raise _Error(HttpParserError, "Expected HTTP/2 Connection Preface")
            return
        if term >= T_BAD:
            raise _Error(HttpParserError, "Expected CRLF after version")

    def _status_line(self, data: bytes, pos: int, end: int, term: int) -> None:
        final = term != T_NONE
        line = data[pos:end]
        i = self._version(line, final)
        if i < 0:
            return
        if i == len(line):
            if final:
                raise _Error(HttpParserError, "Expected space after version")
            return
        if line[i] != 32:
            raise _Error(HttpParserError, "Expected space after version")
        code = line[i + 1:i + 4]
        if code.translate(None, _DIGIT):
            raise _Error(HttpParserInvalidStatusError, "Invalid status code")
        if len(code) < 3:
            if final:
                raise _Error(HttpParserInvalidStatusError, "Invalid status code")
            return
        self._status = int(code)
        j = i + 4
        if j == len(line):
            if term >= T_BAD:
                if data[end] == 10:
                    raise _Error(HttpParserInvalidStatusError, "Invalid response status")
                raise _Error(HttpParserError, "Expected LF after CR")
            return
        if line[j] != 32:
            raise _Error(HttpParserInvalidStatusError, "Invalid response status")
        reason = line[j + 1:]
        if len(reason) > self._sent:
            piece = reason[self._sent:]
            self._sent = len(reason)
            if self._on_status is not None:
                self._call(self._on_status, piece)
        if term >= T_BAD:
            raise _Error(HttpParserError, "Missing expected CR after response line" if data[end] == 10
                         else "Expected LF after CR")

    # -- headers ------------------------------------------------------------------------------

    def _finish_header(self, byte: int) -> None:
        """The first byte after a header line's CRLF: obs-fold check, then the line's flags."""
        fin = self._fin
        self._fin = None
        if fin == -2:  # after an HTTP/0.9 request line, as after a URL (llhttp's strict URL nodes)
            if byte == 9 or byte == 12:
                raise _Error(HttpParserInvalidURLError, "Invalid characters in url")
            return
        if byte == 32 or byte == 9:
            if fin == -1 or self._pending is not None and not self._pending[1]:
                raise _Error(HttpParserError, "Invalid header value char")
            raise _Error(HttpParserError, "Unexpected whitespace after header value")
        if fin == -1:
            raise _Error(HttpParserError, "Empty Content-Length" if self._hkind == H_CONTENT_LENGTH
                         else "Empty Transfer-Encoding")
        self._flags |= fin

    def _header_line(self, line: bytes, term: int) -> None:
        if self._hstage == 0:
            colon = line.find(b":")
            name = line if colon < 0 else line[:colon]
            if colon == 0:
                raise _Error(HttpParserError, "Invalid header token")
            if name.translate(None, _TOKEN):
                sp = name.find(b" ")
                if sp > 0 and name[:sp].lower() in _SPECIAL and not name[:sp].translate(None, _TOKEN):
                    self._emit_pending()
                    raise _Error(HttpParserError, "Invalid header field char")
                raise _Error(HttpParserError, "Invalid header token")
            if colon < 0:
                if term != T_NONE:
                    raise _Error(HttpParserError, "Invalid header token")
                self._emit_pending()  # llhttp flushes the name's span at the end of the feed
                return
            self._emit_pending()
            kind = 0
            if len(name) in _SPECIAL_LENS:
                kind = _SPECIAL.get(name.lower(), 0)
                if kind == H_TRANSFER_ENCODING and self._flags & F_CONTENT_LENGTH:
                    raise _Error(HttpParserError, "Transfer-Encoding can't be present with Content-Length")
                if kind == H_CONTENT_LENGTH and self._flags & F_TRANSFER_ENCODING:
                    raise _Error(HttpParserError, "Content-Length can't be present with Transfer-Encoding")
            self._hname = name
            self._hkind = kind
            self._hcolon = colon
            self._hstage = 1
        value = line[self._hcolon + 1:].lstrip(b" \t")
        kind = self._hkind
        if not value:
            if term == T_CRLF:
                self._pending = (self._hname, b"")
                self._fin = -1 if kind == H_CONTENT_LENGTH or kind == H_TRANSFER_ENCODING else 0
            elif term >= T_BAD:
                raise _Error(HttpParserError, "Expected LF after CR")
            return
        if self._hstage == 1:
            self._hstage = 2
            if kind == H_UPGRADE:
                self._flags |= F_UPGRADE
            elif kind == H_TRANSFER_ENCODING:
                if self._flags & F_CHUNKED and self._is_request:
                    raise _Error(HttpParserError, "Invalid `Transfer-Encoding` header value")
                self._flags = (self._flags | F_TRANSFER_ENCODING) & ~F_CHUNKED
            elif kind == H_CONTENT_LENGTH:
                if self._flags & F_CONTENT_LENGTH:
                    raise _Error(HttpParserError, "Duplicate Content-Length")
        if value.translate(None, _HEADER_VALUE):
            raise _Error(HttpParserError, "Invalid header value char")
        complete = term == T_CRLF
        fin = 0
        if kind == 0 or kind == H_UPGRADE:
            pass
        elif kind == H_CONTENT_LENGTH:
            d = len(value) - len(value.lstrip(_DIGIT))
            if d == 0 or value[d:].translate(None, b" \t"):
                raise _Error(HttpParserError, "Invalid character in Content-Length")
            length = int(value[:d])
            if length > _MAX_U64:
                raise _Error(HttpParserError, "Content-Length overflow")
            if term != T_NONE:
                self._flags |= F_CONTENT_LENGTH
                self._length = length
        elif kind == H_TRANSFER_ENCODING:
            segments = value.split(b",")
            if self._is_request:
                for segment in segments[:-1]:
                    if _te_chunked(segment.lstrip(b" \t")):
                        raise _Error(HttpParserError, "Invalid `Transfer-Encoding` header value")
            if complete and _te_chunked(segments[-1].lstrip(b" \t")):
                fin = F_CHUNKED
        else:  # Connection
            if complete:
                for token in value.split(b","):
                    fin |= _CONNECTION_TOKENS.get(token.strip(b" \t").lower(), 0)
        if complete:
            self._pending = (self._hname, value)
            self._fin = fin
        elif term >= T_BAD:
            raise _Error(HttpParserError, "Missing expected LF after header value")

    def _headers_complete(self) -> bool:
        flags = self._flags
        if flags & F_UPGRADE and flags & F_CONN_UPGRADE:
            upgrade = self._is_request or self._status == 101
        else:
            upgrade = self._is_request and self._method == b"CONNECT"
        self._upgrade = upgrade
        self._emit_pending()
        if self._on_headers_complete is not None:
            self._call(self._on_headers_complete)
        if upgrade:
            flags |= F_SKIPBODY
            self._flags = flags
        status = self._status
        response = not self._is_request
        if upgrade or (response and status == 101):
            if self._on_message_complete is not None:
                self._call(self._on_message_complete)
            if not upgrade:
                raise _Error(HttpParserError, "Pause on CONNECT/Upgrade")
            self._cleanup()
            return True
        if response and (status == 100 or status == 102 or status == 103 or status == 204
                         or status == 304):
            self._message_done()
        elif flags & F_CHUNKED:
            self._state = S_CHUNK_SIZE
        elif flags & F_TRANSFER_ENCODING:
            if self._is_request:
                raise _Error(HttpParserError, "Request has invalid `Transfer-Encoding`")
            self._state = S_EOF_BODY
        elif not flags & F_CONTENT_LENGTH:
            if self._needs_eof(flags):
                self._state = S_EOF_BODY
            else:
                self._message_done()
        elif self._length == 0:
            self._message_done()
        else:
            self._state = S_BODY
        return False

    # -- chunks -------------------------------------------------------------------------------

    def _chunk_size_line(self, line: bytes, term: int) -> None:
        digits = len(line) - len(line.lstrip(_HEX))
        if digits == 0:
            if not line and term == T_NONE:
                return
            raise _Error(HttpParserError, "Invalid character in chunk size")
        if digits > 16 and int(line[:digits], 16) > _MAX_U64:
            raise _Error(HttpParserError, "Chunk size overflow")
        if digits < len(line):
            if line[digits] != 59:  # ";"
                raise _Error(HttpParserError, "Invalid character in chunk size")
            _check_extensions(line, digits + 1, term != T_NONE)
        if term >= T_BAD:
            raise _Error(HttpParserError, "Expected LF after chunk size")
        if term == T_CRLF:
            self._length = int(line[:digits], 16)

    def _chunk_header(self) -> None:
        if self._on_chunk_header is not None:
            self._call(self._on_chunk_header)
        if self._length == 0:
            self._state = S_HEADERS
            self._trailing = True
            self._first_header = False
            self._hstage = 0
        else:
            self._state = S_CHUNK_DATA

    def _chunk_complete(self) -> None:
        self._emit_pending()
        if self._on_chunk_complete is not None:
            self._call(self._on_chunk_complete)

    # -- end of a message ---------------------------------------------------------------------

    def _message_done(self) -> None:
        if self._on_message_complete is not None:
            self._call(self._on_message_complete)
        self._cleanup()

    def _cleanup(self) -> None:
        keep = self._keep_alive(self._flags)
        self._flags = 0
        self._trailing = False
        if keep:
            self._length = 0
            self._state = S_START
        else:
            self._state = S_CLOSED


def _check_extensions(line: bytes, i: int, final: bool) -> None:
    """llhttp's chunk extensions, from after the first ";" (a prefix unless final)."""
    n = len(line)
    err = "Invalid character in chunk extensions"
    while True:
        # chunk_extensions: a name starts (it may be empty)
        if i == n:
            if final:
                raise _Error(HttpParserError, err)
            return
        if line[i] == 32:
            raise _Error(HttpParserError, err)
        j = n - len(line[i:].lstrip(_TOKEN))
        if j == n:
            return  # end of the line (or of the data) in a name
        c = line[j]
        if c == 59:  # ";"
            i = j + 1
            continue
        if c != 61:  # "="
            raise _Error(HttpParserError, "Invalid character in chunk extensions name")
        # value: token chars, then maybe one quoted string
        j = n - len(line[j + 1:].lstrip(_TOKEN))
        if j == n:
            return
        c = line[j]
        if c == 59:
            i = j + 1
            continue
        if c != 34:  # '"'
            raise _Error(HttpParserError, "Invalid character in chunk extensions value")
        j += 1
        while True:
            k = n - len(line[j:].lstrip(_QDTEXT))
            if k == n:
                if final:
                    raise _Error(HttpParserError, "Invalid character in chunk extensions quoted value")
                return
            c = line[k]
            if c == 34:
                j = k + 1
                break
            if c != 92:  # backslash
                raise _Error(HttpParserError, "Invalid character in chunk extensions quoted value")
            if k + 1 == n:
                if final:
                    raise _Error(HttpParserError, "Invalid quoted-pair in chunk extensions quoted value")
                return
            if line[k + 1] not in _QPAIR:
                raise _Error(HttpParserError, "Invalid quoted-pair in chunk extensions quoted value")
            j = k + 2
        if j == n:
            return
        if line[j] != 59:
            raise _Error(HttpParserError, "Invalid character in chunk extensions quote value")
        i = j + 1


class HttpRequestParser(_HttpParser):
    _is_request = True

    def get_method(self) -> bytes:
        return self._method


class HttpResponseParser(_HttpParser):
    _is_request = False

    def get_status_code(self) -> int:
        return self._status
