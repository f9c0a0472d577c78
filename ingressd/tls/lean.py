"""Twisted's TLS-over-memory-BIO protocol with the per-request steps done in fewer, cheaper calls.

``TLSMemoryBIOProtocol`` drives pyOpenSSL through its public methods, which signal "nothing
more" by raising: each read of the client's records ends with ``recv`` raising
``WantReadError`` and an empty ``bio_read`` raising it again, and every call allocates a
fresh 32 KiB buffer. That is most of what TLS costs ingressd per keep-alive request. Here
the same OpenSSL functions are called through the same cffi bindings pyOpenSSL uses
(``OpenSSL._util.lib``), reading their return codes instead of raising: records are fed in
with one ``BIO_write``, decrypted with ``SSL_read`` until no record is left unread (OpenSSL
reads no further ahead than the record it decrypts, so what is left is in the memory BIO), the
outgoing BIO is drained once per round and a write is encrypted with one ``SSL_write``
loop and one drain (Twisted drains after every 16 KiB and at most 32 KiB at a time). The
steady state's common cases are one Python frame each: a read (``dataReceived``: the records
in, the loop, the drain) and a write that one ``SSL_write`` takes whole (``write``: the
``SSL_write``, one ``BIO_read``, the transport's write); ``SSL_pending`` is asked only after a
read that filled the buffer (one that did not took all that was left of its record).

With the C accelerator built (``lean_steps``: ``_lean_steps.c``, ``ACCELERATED``), a read's
calls (``BIO_write``, ``SSL_read``, the checks of what is left) are one C call, its drain
another, and a write's (``SSL_write`` and the drain) one: no cffi wrapper, no GIL released and
taken back per OpenSSL call, no ``unpack``. ``_AcceleratedSteps`` does that once the handshake
is done, and hands every other case (a callback's exception, an error, an alert, a close_notify,
writes buffered during a handshake) to the same Python code as before, with what the C call
returned; without the extension ``LeanTLSProtocol`` is the pure-Python steps
(``PythonLeanTLSProtocol``, which the tests and ``bench/tlscost.py --layer`` also use beside it).

Only the steady state is replaced: the handshake, shutdown, close_notify, producers and
buffering of writes during a (re)handshake are Twisted's own code. Anything else than "done"
or "want read" (an alert, a close_notify, a protocol error, a callback's exception) is
handed to pyOpenSSL's own error mapping (``Connection._raise_ssl_error``), so the exception
and what Twisted does with it are exactly as before.

pyOpenSSL's private attributes (``Connection._ssl``, ``_into_ssl``, ``_from_ssl``, the
context's callback helpers) are checked when this module is imported: without them
(another pyOpenSSL) ``LeanTLSProtocol`` is Twisted's protocol unchanged (``LEAN`` False).
``LeanTLSFactory`` makes them; the listener's protocol (``client_hello.ClientHelloFirst``)
and the backend sides (``proxy.http1_upstream``, ``proxy.h2_upstream``) use them.
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure

from ingressd.tls import lean_steps

try:
    from OpenSSL._util import ffi as _ffi, lib as _lib

    _CONNECTION_FIELDS = ("_ssl", "_into_ssl", "_from_ssl", "_context", "_raise_ssl_error")
    _CONTEXT_HELPERS = ("_verify_helper", "_alpn_select_helper", "_ocsp_helper")
    _probe = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    LEAN = (all(hasattr(_probe, name) for name in _CONNECTION_FIELDS)
            and all(hasattr(_probe._context, name) for name in _CONTEXT_HELPERS)
            and all(hasattr(_lib, name) for name in ("SSL_read", "SSL_write", "SSL_get_error", "BIO_read",
                                                     "BIO_write", "SSL_ERROR_WANT_READ", "SSL_pending",
                                                     "BIO_get_mem_data"))
            and hasattr(_ffi, "unpack") and hasattr(_ffi, "release"))
    del _probe
except Exception:  # noqa: BLE001 - any other pyOpenSSL: Twisted's own steps
    LEAN = False

_CHUNK = 65536  # the most one SSL_read or BIO_read returns
if LEAN:
    # One buffer each for decrypted data and for records, reused: the reactor runs one call at
    # a time and every result is copied out (``_ffi.unpack``) before anything else runs.
    _PLAIN = _ffi.new("char[]", _CHUNK)
    _RECORDS = _ffi.new("char[]", _CHUNK)
    _WANT_READ = _lib.SSL_ERROR_WANT_READ
    _NULL = _ffi.NULL


def _helpers(connection: SSL.Connection) -> tuple:
    """The lists in which the context's callback helpers keep the exceptions they caught (pyOpenSSL
    raises them after a call; the same list objects for the context's life): ``any()`` of them
    is whether one is waiting, in one C call."""
    context = connection._context
    return tuple(helper._problems for helper in (context._verify_helper, context._alpn_select_helper,
                                                 context._ocsp_helper) if helper is not None)


class _LeanSteps(TLSMemoryBIOProtocol):
    """The steady-state steps (see the module docstring); everything else is Twisted's."""

    _lean_helpers: tuple | None = None  # _helpers(), kept once the handshake is done (no context switch after)

    def _helpers_now(self, connection: SSL.Connection) -> tuple:
        helpers = _helpers(connection)
        if self._handshakeDone:
            self._lean_helpers = helpers
        return helpers

    def dataReceived(self, data: bytes, _records_only: bool = False) -> None:
        """A read: its records into OpenSSL, what they decrypt to up to the protocol above, what
        OpenSSL has to send out. ``_records_only``: ``_flushReceiveBIO`` (Twisted's step: no
        data, no handshake to drive), which shares this body so that a read is one frame."""
        connection = self._tlsConnection
        if not _records_only:
            if not self._handshakeDone:
                TLSMemoryBIOProtocol.dataReceived(self, data)  # the handshake: Twisted's steps
                return
            if data:
                if type(data) is not bytes:
                    data = bytes(data)
                if _lib.BIO_write(connection._into_ssl, data, len(data)) <= 0:
                    connection.bio_write(data)  # a memory BIO takes everything: pyOpenSSL's error if not
            if self._appSendBuffer:
                self._unbufferPendingWrites()
                connection = self._tlsConnection
        ssl = connection._ssl
        helpers = self._lean_helpers
        if helpers is None:
            helpers = self._helpers_now(connection)
        read, get_error, unpack, get_pending = _lib.SSL_read, _lib.SSL_get_error, _ffi.unpack, _lib.BIO_get_mem_data
        records = connection._into_ssl
        while not self._lostTLSConnection:
            count = read(ssl, _PLAIN, _CHUNK)
            if (count > 0 or get_error(ssl, count) == _WANT_READ) and not any(helpers):
                if count <= 0:
                    break  # nothing more until the peer sends more
                if not self._aborted:
                    self.wrappedProtocol.dataReceived(unpack(_PLAIN, count))
                # Every record read (no read-ahead) when the memory BIO holds no unread byte and
                # OpenSSL none of this record (a read that did not fill the buffer took all of
                # it: SSL_read copies min(buffer, what the record has left)): one more SSL_read
                # would only want more.
                if (count < _CHUNK or not _lib.SSL_pending(ssl)) and get_pending(records, _NULL) <= 0:
                    break
                continue
            if self._read_failed(connection, ssl, count, unpack(_PLAIN, count) if count > 0 else b""):
                break
        # _flushSendBIO, its first step here: most reads have nothing to send.
        connection = self._tlsConnection
        if connection is not None:
            count = _lib.BIO_read(connection._from_ssl, _RECORDS, _CHUNK)
            if count > 0:
                self._send_records(connection._from_ssl, count)

    def _read_failed(self, connection, ssl, count: int, plain: bytes) -> bool:
        """An SSL_read that neither read plainly nor wanted more records (both read paths):
        pyOpenSSL's own mapping of its result, the same exception as its recv(), handled as
        Twisted does; ``plain``: what it read (``count`` > 0). True: nothing more to read now."""
        try:
            connection._raise_ssl_error(ssl, count)
        except SSL.WantReadError:
            return True
        except SSL.ZeroReturnError:  # close_notify: as Twisted
            self._shutdownTLS()
            self._tlsShutdownFinished(None)
        except SSL.Error:
            self._tlsShutdownFinished(Failure())
        else:
            if count > 0 and not self._aborted:
                self.wrappedProtocol.dataReceived(plain)
        return False

    def _flushReceiveBIO(self) -> None:
        _LeanSteps.dataReceived(self, b"", True)

    def _flushSendBIO(self) -> None:
        connection = self._tlsConnection
        if connection is None:
            return  # lost already (the protocol above closed inside dataReceived)
        count = _lib.BIO_read(connection._from_ssl, _RECORDS, _CHUNK)
        if count > 0:  # else nothing to send (a memory BIO fails only when empty)
            self._send_records(connection._from_ssl, count)

    def _send_records(self, source: Any, count: int) -> None:
        """Writes the ``count`` bytes in ``_RECORDS`` and whatever else ``source`` (the outgoing
        memory BIO) holds, in one transport write."""
        data = _ffi.unpack(_RECORDS, count)
        if count == _CHUNK:  # more waiting: all of it, in one write
            chunks = [data]
            while count == _CHUNK:
                count = _lib.BIO_read(source, _RECORDS, _CHUNK)
                if count > 0:
                    chunks.append(_ffi.unpack(_RECORDS, count))
            data = b"".join(chunks)
        self.transport.write(data)

    def write(self, data: bytes) -> None:
        if (self.disconnecting and self._producer is None) or self._lostTLSConnection:
            return  # as Twisted: dropped after loseConnection unless a producer is registered
        if type(data) is not bytes or not data:
            self._write(data)
            return
        # The common case in this one frame: the whole of ``data`` taken by one SSL_write (a
        # response of up to a record), no callback's exception waiting, one drain.
        connection = self._tlsConnection
        count = _lib.SSL_write(connection._ssl, data, len(data))
        helpers = self._lean_helpers
        if count == len(data) and helpers is not None and not any(helpers):
            source = connection._from_ssl
            count = _lib.BIO_read(source, _RECORDS, _CHUNK)
            if 0 < count < _CHUNK:
                self.transport.write(_ffi.unpack(_RECORDS, count))
            elif count > 0:
                self._send_records(source, count)
            return
        self._sealed(connection, data, count)

    def _write(self, data: bytes) -> None:
        if self._lostTLSConnection:
            return
        if type(data) is not bytes:
            data = bytes(data)
        if not data:
            self._flushSendBIO()
            return
        connection = self._tlsConnection
        self._sealed(connection, data, _lib.SSL_write(connection._ssl, data, len(data)))

    def _sealed(self, connection: SSL.Connection, data: bytes, count: int) -> None:
        """The rest of a write of ``data`` (not empty) whose first ``SSL_write`` returned ``count``."""
        ssl = connection._ssl
        total = len(data)
        sent = 0
        view = None
        while True:
            helpers = self._lean_helpers
            if helpers is None:
                helpers = self._helpers_now(connection)
            if any(helpers):
                count = 0  # a callback's exception: raised below as pyOpenSSL's send() would
            elif count > 0:
                sent += count
                if sent >= total:
                    break
                # Partial writes are on (pyOpenSSL's contexts): each call may take one record only.
                if view is None:
                    view = _ffi.from_buffer(data)
                count = _lib.SSL_write(ssl, view + sent, total - sent)
                continue
            elif _lib.SSL_get_error(ssl, count) == _WANT_READ:
                self._bufferedWrite(data[sent:])  # a handshake in progress: sent after the next read
                break
            try:
                connection._raise_ssl_error(ssl, count)
            except SSL.WantReadError:
                self._bufferedWrite(data[sent:])
                break
            except SSL.Error:
                self._tlsShutdownFinished(Failure())  # as Twisted: the error reaches connectionLost
                return
            self._tlsShutdownFinished(Failure(SSL.Error([("", "SSL_write", "failed")])))
            return
        if view is not None:
            _ffi.release(view)
        self._flushSendBIO()


class _AcceleratedSteps(_LeanSteps):
    """The same steps with each read's and write's OpenSSL calls in one C call (``lean_steps``:
    the extension ``_lean_steps``), once the handshake is done; anything else than the common
    cases is ``_LeanSteps``'s code, as are the handshake and every error's handling."""

    # (connection, its SSL's and memory BIOs' addresses, the helpers' lists), from the first
    # read after the handshake until connectionLost: holding the connection keeps them valid.
    _c_handles: tuple | None = None

    def _steady(self) -> tuple | None:
        connection = self._tlsConnection
        if not self._handshakeDone or connection is None or self._lostTLSConnection:
            return None
        handles = self._c_handles = (connection, *lean_steps.addresses(connection), self._helpers_now(connection))
        return handles

    def dataReceived(self, data: bytes, _records_only: bool = False) -> None:
        handles = self._c_handles
        if handles is None:
            handles = self._steady()
        if (handles is None or _records_only or self._appSendBuffer or self._lostTLSConnection
                or type(data) is not bytes or handles[0] is not self._tlsConnection):
            _LeanSteps.dataReceived(self, data, _records_only)
            return
        connection, ssl, into, source, helpers = handles
        result = _read_step(ssl, into, data, helpers)
        if type(result) is bytes:  # the common case: all of the read's records decrypted
            if not self._aborted:
                self.wrappedProtocol.dataReceived(result)
        elif result is not None:
            self._read_rest(connection, ssl, into, data, helpers, result)
        if self._tlsConnection is not None:  # what OpenSSL has to send (most reads: nothing)
            records = _drain(source)
            if records is not None:
                self.transport.write(records)

    def _read_rest(self, connection: SSL.Connection, ssl: int, into: int, data: bytes, helpers: tuple,
                   result: Any) -> None:
        """A read whose first step (``result``) did not end it: more to read, a callback's
        exception, an error, an alert, a close_notify, or the records refused."""
        for _ in range(1 << 20):  # bounded: a read's records, a call each
            if type(result) is bytes:
                if not self._aborted:
                    self.wrappedProtocol.dataReceived(result)
                break
            if result is None:
                break
            if result is False:  # the memory BIO refused the records: pyOpenSSL's error (or retry)
                connection.bio_write(data)
            else:
                count, plain, fallback, errno = result
                if fallback:
                    _ffi.errno = errno
                    if self._read_failed(connection, connection._ssl, count, plain):
                        break
                elif not self._aborted:
                    self.wrappedProtocol.dataReceived(plain)
            if self._lostTLSConnection:
                break
            result = _read_step(ssl, into, b"", helpers)

    def _flushSendBIO(self) -> None:
        handles = self._c_handles
        if handles is None or handles[0] is not self._tlsConnection:
            _LeanSteps._flushSendBIO(self)
            return
        records = _drain(handles[3])
        if records is not None:
            self.transport.write(records)

    def write(self, data: bytes) -> None:
        handles = self._c_handles
        if (handles is None or type(data) is not bytes or not data or self._lostTLSConnection
                or handles[0] is not self._tlsConnection or (self.disconnecting and self._producer is None)):
            _LeanSteps.write(self, data)
            return
        result = _write_step(handles[1], handles[3], data, handles[4])
        if type(result) is bytes:
            self.transport.write(result)
        elif result is not None:
            count, errno = result
            _ffi.errno = errno
            self._sealed(handles[0], data, count)

    def connectionLost(self, reason: Failure) -> None:
        self._c_handles = None
        super().connectionLost(reason)


# The extension's steps when it is built (the twins otherwise: the tests run this class on both).
ACCELERATED = LEAN and lean_steps.ACCELERATED
_read_step, _write_step, _drain = lean_steps.read_step, lean_steps.write_step, lean_steps.drain


class LeanTLSProtocol(_AcceleratedSteps if ACCELERATED else _LeanSteps if LEAN else  # type: ignore[misc]
                      TLSMemoryBIOProtocol):
    """A ``TLSMemoryBIOProtocol`` whose reads and writes cost fewer Python calls (when ``LEAN``), and
    fewer C calls (when ``ACCELERATED``: the extension ``_lean_steps`` is built)."""


class PythonLeanTLSProtocol(_LeanSteps if LEAN else TLSMemoryBIOProtocol):  # type: ignore[misc]
    """The pure-Python steps alone, as without the extension: for the tests and the benchmark."""


class LeanTLSFactory(TLSMemoryBIOFactory):
    """``TLSMemoryBIOFactory`` making ``LeanTLSProtocol``s. Unlike Twisted's default
    (``BufferingTLSTransport``), writes are not held until the next reactor turn: ingressd
    already writes a round's bytes at once (a head with its body, HTTP/2 one write per read)."""

    protocol = LeanTLSProtocol

    def __init__(self, contextFactory: Any, isClient: bool, wrappedFactory: Any, clock: Any = None) -> None:
        super().__init__(contextFactory, isClient, wrappedFactory, clock)
