"""PROXY protocol (HAProxy's, v1 text and v2 binary): the header sent to a backend, and the
header a client (a load balancer) sends first, read.

Only what a TCP service needs: ``v1_header`` writes a v1 line (``PROXY TCP4 …\\r\\n``, as
nginx's ``proxy_protocol on`` does); ``read_header`` reads a v1 or v2 header off the start
of a connection's bytes and returns the source address it names. v2 TLVs are skipped
within the header's declared length, never interpreted; a header that is malformed, longer
than the protocol allows, or a v2 LOCAL command's (health checks) is handled as the spec
says. (A fuller parser for the HTTP listeners lives elsewhere once merged; this one is
small on purpose.)
"""

from __future__ import annotations

import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V1_MAX = 107  # the longest v1 line, CRLF included
_V2_MAX = 16 + 65535


class ProxyHeaderError(ValueError):
    """The connection's first bytes are not a valid PROXY protocol header."""


def v1_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A v1 line saying the connection came from ``source`` to ``destination`` ((host, port))."""
    try:
        src = ipaddress.ip_address(source[0])
        dst = ipaddress.ip_address(destination[0])
    except ValueError:
        return b"PROXY UNKNOWN\r\n"
    if src.version != dst.version:
        if src.version == 4:
            src = ipaddress.IPv6Address(f"::ffff:{src}")
        else:
            dst = ipaddress.IPv6Address(f"::ffff:{dst}")
    family = "TCP4" if src.version == 4 else "TCP6"
    return f"PROXY {family} {src} {dst} {int(source[1])} {int(destination[1])}\r\n".encode("ascii")


def read_header(data: bytes) -> tuple[int, tuple[str, int] | None] | None:
    """``(length, source)`` of the header at the start of ``data``: ``length`` bytes to drop,
    ``source`` the client's (address, port), or None when the header says nothing of it
    (v1 ``UNKNOWN``, v2 ``LOCAL`` or an unspecified family). None: more bytes are needed.
    ``ProxyHeaderError`` when it is not a valid header."""
    if data[:1] == b"P":
        return _read_v1(data)
    if data[:1] == b"\r":
        return _read_v2(data)
    if data:
        raise ProxyHeaderError("the connection does not start with a PROXY protocol header")
    return None


def _read_v1(data: bytes) -> tuple[int, tuple[str, int] | None] | None:
    if not b"PROXY "[: len(data)] == data[:6]:
        raise ProxyHeaderError("not a PROXY protocol v1 header")
    end = data.find(b"\r\n", 0, _V1_MAX)
    if end < 0:
        if len(data) >= _V1_MAX:
            raise ProxyHeaderError("PROXY protocol v1 header longer than 107 bytes")
        return None
    parts = data[:end].split(b" ")
    if len(parts) >= 2 and parts[1] == b"UNKNOWN":
        return end + 2, None
    if len(parts) != 6 or parts[1] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError("malformed PROXY protocol v1 header")
    try:
        source = ipaddress.ip_address(parts[2].decode("ascii"))
        ipaddress.ip_address(parts[3].decode("ascii"))
        ports = [_port(part) for part in parts[4:6]]
    except (UnicodeDecodeError, ValueError):
        raise ProxyHeaderError("malformed PROXY protocol v1 header") from None
    if (source.version == 4) != (parts[1] == b"TCP4"):
        raise ProxyHeaderError("PROXY protocol v1 address of the wrong family")
    return end + 2, (str(source), ports[0])


def _port(text: bytes) -> int:
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[:1] == b"0"):
        raise ValueError("bad port")
    value = int(text)
    if value > 65535:
        raise ValueError("bad port")
    return value


def _read_v2(data: bytes) -> tuple[int, tuple[str, int] | None] | None:
    if len(data) < 16:
        if not V2_SIGNATURE.startswith(data[:12]):
            raise ProxyHeaderError("not a PROXY protocol v2 header")
        return None
    if data[:12] != V2_SIGNATURE:
        raise ProxyHeaderError("not a PROXY protocol v2 header")
    version_command, family, length = struct.unpack("!BBH", data[12:16])
    if version_command >> 4 != 2 or version_command & 0x0F > 1:
        raise ProxyHeaderError("unknown PROXY protocol v2 version or command")
    total = 16 + length
    if len(data) < total:
        return None
    if version_command & 0x0F == 0:  # LOCAL: the balancer's own connection (a health check)
        return total, None
    body = data[16:total]
    kind = family >> 4
    if kind == 1:  # AF_INET
        if length < 12:
            raise ProxyHeaderError("PROXY protocol v2 header too short for its addresses")
        return total, (str(ipaddress.IPv4Address(body[0:4])), struct.unpack("!H", body[8:10])[0])
    if kind == 2:  # AF_INET6
        if length < 36:
            raise ProxyHeaderError("PROXY protocol v2 header too short for its addresses")
        return total, (str(ipaddress.IPv6Address(body[0:16])), struct.unpack("!H", body[32:34])[0])
    if kind == 0:  # AF_UNSPEC
        return total, None
    if kind == 3:  # AF_UNIX: no address to speak of
        return total, None
    raise ProxyHeaderError("unknown PROXY protocol v2 address family")
