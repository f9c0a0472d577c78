"""The TLS layer's steady-state read and write as one call each: the C accelerator and its twins.

``ingressd.tls._lean_steps`` (``_lean_steps.c``) does a read's and a write's OpenSSL calls in one
C call each, through the addresses of the functions cryptography's cffi module is linked with
(``_bind``: no OpenSSL headers or link flags at build time, and the very library pyOpenSSL's
connections use). The functions below are its pure-Python twins: the same arguments, the same
results, through cffi. ``lean.py`` uses the extension when it is built and bound (``ACCELERATED``),
else its own pure-Python steps (the same work inline, one Python frame fewer than these twins);
the twins are what the tests run the extension against, case by case and fuzzed.

Arguments: ``ssl`` is the address (an int: ``addresses``) of a connection's ``SSL``, ``into`` and
``source`` of its incoming and outgoing memory BIOs; ``data`` bytes; ``helpers`` the tuple of the
context's callback helpers' problem lists (``lean._helpers``: one not empty is an exception a
callback left for pyOpenSSL to raise).

``read_step(ssl, into, data, helpers)``: ``data`` (if any) into ``into`` (one ``BIO_write``),
then one ``SSL_read`` of up to 64 KiB. Returns
  - bytes: what it decrypted, no exception waiting, and nothing left to read now (OpenSSL holds
    none of the record: the read was short of the buffer or ``SSL_pending`` is 0; and the memory
    BIO no unread byte);
  - None: nothing to read (``SSL_ERROR_WANT_READ``), no exception waiting;
  - ``(count, plaintext, False, 0)``: decrypted, and more may be read: call again with b"";
  - ``(count, plaintext or None, True, errno)``: anything else (an error, an alert, a
    close_notify, an exception waiting): pyOpenSSL's ``Connection._raise_ssl_error(ssl, count)``
    decides, after ``ffi.errno = errno``; the plaintext (when ``count`` > 0) is delivered if it
    raises nothing;
  - False: the ``BIO_write`` failed (pyOpenSSL's ``bio_write`` says why); nothing was read.

``write_step(ssl, source, data, helpers)``: one ``SSL_write`` of ``data`` (not empty). When it
took all of it and no exception waits: what ``source`` holds now (``drain``); else
``(count, errno)`` for the general steps (``lean._LeanSteps._sealed``).

``drain(source)``: everything ``source`` holds, as bytes; None when it holds nothing.

``errno`` is the thread's errno after the call; it matters only to ``SSL_ERROR_SYSCALL``, which
memory BIOs do not raise (their errors are OpenSSL's own), and may differ between the twins
(cffi passes its saved value into each call; the extension does not).
"""

from __future__ import annotations

from typing import Any

_CHUNK = 65536  # the most one SSL_read returns (the extension's CHUNK)
_NAMES = ("SSL_read", "SSL_write", "SSL_get_error", "SSL_pending", "BIO_read", "BIO_write", "BIO_get_mem_data")

try:
    from OpenSSL._util import ffi as _ffi, lib as _lib

    _PLAIN = _ffi.new("char[]", _CHUNK)
    _RECORDS = _ffi.new("char[]", _CHUNK)
    _WANT_READ = _lib.SSL_ERROR_WANT_READ
    _NULL = _ffi.NULL
    _TWINS = all(hasattr(_lib, name) for name in _NAMES)
except Exception:  # noqa: BLE001 - another pyOpenSSL: lean.py does not use these steps
    _TWINS = False


def addresses(connection: Any) -> tuple[int, int, int]:
    """(ssl, into, source) of a pyOpenSSL ``Connection``: valid while it lives."""
    cast = _ffi.cast
    return (int(cast("uintptr_t", connection._ssl)), int(cast("uintptr_t", connection._into_ssl)),
            int(cast("uintptr_t", connection._from_ssl)))


def _pointer(kind: str, address: int) -> Any:
    if type(address) is not int:
        raise TypeError("an address (int) was expected")
    if not address:
        raise ValueError("a NULL address")
    return _ffi.cast(kind, address)


def drain_py(source: int) -> bytes | None:
    bio = _pointer("BIO *", source)
    count = _lib.BIO_read(bio, _RECORDS, _CHUNK)
    if count <= 0:
        return None  # a memory BIO fails only when empty
    chunks = [_ffi.unpack(_RECORDS, count)]
    while count == _CHUNK:  # bounded by what the BIO holds
        count = _lib.BIO_read(bio, _RECORDS, _CHUNK)
        if count > 0:
            chunks.append(_ffi.unpack(_RECORDS, count))
    return b"".join(chunks)


def read_step_py(ssl: int, into: int, data: bytes, helpers: tuple) -> Any:
    ssl_p, into_p = _pointer("SSL *", ssl), _pointer("BIO *", into)
    if type(data) is not bytes:
        raise TypeError("read_step: data must be bytes")
    if type(helpers) is not tuple:
        raise TypeError("helpers must be a tuple")
    if data and _lib.BIO_write(into_p, data, len(data)) <= 0:
        return False
    count = _lib.SSL_read(ssl_p, _PLAIN, _CHUNK)
    errno = _ffi.errno
    problem = any(helpers)
    if not problem and count > 0:
        text = _ffi.unpack(_PLAIN, count)
        if (count < _CHUNK or _lib.SSL_pending(ssl_p) <= 0) and _lib.BIO_get_mem_data(into_p, _NULL) <= 0:
            return text
        return (count, text, False, 0)
    if not problem and _lib.SSL_get_error(ssl_p, count) == _WANT_READ:
        return None
    return (count, _ffi.unpack(_PLAIN, count) if count > 0 else None, True, errno)


def write_step_py(ssl: int, source: int, data: bytes, helpers: tuple) -> Any:
    ssl_p = _pointer("SSL *", ssl)
    _pointer("BIO *", source)
    if type(data) is not bytes:
        raise TypeError("write_step: data must be bytes")
    if type(helpers) is not tuple:
        raise TypeError("helpers must be a tuple")
    count = _lib.SSL_write(ssl_p, data, len(data))
    errno = _ffi.errno
    if not any(helpers) and count == len(data):
        return drain_py(source)
    return (count, errno)


def _bind(module: Any) -> bool:
    """Gives the extension the addresses of the functions pyOpenSSL's ``lib`` calls (the raw cffi
    module's: pyOpenSSL's ``lib`` is a copy of its attributes, the same function objects)."""
    from cryptography.hazmat.bindings._rust import _openssl

    raw_lib, raw_ffi = _openssl.lib, _openssl.ffi
    if raw_ffi is not _ffi or any(getattr(raw_lib, name) is not getattr(_lib, name) for name in _NAMES):
        return False  # not the library pyOpenSSL's connections use
    module.bind(*(int(raw_ffi.cast("uintptr_t", raw_ffi.addressof(raw_lib, name))) for name in _NAMES), _WANT_READ)
    return True


try:
    from ingressd.tls import _lean_steps as _extension
except ImportError:  # not built: PyPy, no compiler, INGRESSD_NO_ACCEL=1
    _extension = None

ACCELERATED = False
if _extension is not None and _TWINS:
    try:
        ACCELERATED = _bind(_extension)
    except Exception:  # noqa: BLE001 - another cryptography: the pure-Python steps
        ACCELERATED = False

if ACCELERATED:
    read_step, write_step, drain = _extension.read_step, _extension.write_step, _extension.drain
else:
    read_step, write_step, drain = read_step_py, write_step_py, drain_py
