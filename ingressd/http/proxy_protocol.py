"""The PROXY protocol (v1 and v2) before anything else on a connection: who the client is,
as a TCP load balancer (AWS NLB, Hetzner, DigitalOcean, HAProxy) says it.

ingress-nginx's ``use-proxy-protocol`` (``listen … proxy_protocol``): every connection on
the HTTP and HTTPS listeners must start with a valid header, within
``proxy-protocol-header-timeout``; one that does not is closed. The header is read here,
before TLS and before HTTP, so the ClientHello peek (``tls/client_hello.py``), TLS
passthrough and the HTTP parsers see only the bytes after it. Its source becomes the
connection's peer (``getPeer``) and its destination the connection's local address
(``getHost``) only when the connection comes from a trusted address (proxy-real-ip-cidr: the
realip module's ``set_real_ip_from`` applies to ``real_ip_header proxy_protocol``); from
anyone else the header is read and checked, and the TCP peer stays the client.

``parse`` is a pure function over the bytes received so far (the specification:
haproxy's doc/proxy-protocol.txt): ``MORE`` until it can tell, a ``ProxyHeader``, or
``InvalidHeader``. v1 is a text line of at most 107 bytes (``PROXY TCP4|TCP6|UNKNOWN …``).
v2 is a 16-byte binary head (signature, version 2, command LOCAL or PROXY, family UNSPEC,
INET, INET6 or UNIX, length) then the addresses and TLVs; a v2 header is at most
``MAX_V2`` bytes. TLVs are read within their bounds (one running past its header's end makes
the header invalid), unknown types skipped; ALPN, authority (the SNI the balancer saw),
unique id and the SSL TLV's version and CN are kept. ``LOCAL`` (the balancer's own health
checks), ``UNKNOWN`` and UNSPEC or UNIX addresses leave the connection's own addresses.

``ProxyProtocolFactory`` wraps a listener's factory: with the forwarding policy in place
saying ``proxy_protocol`` (read at each new connection, so it changes live) a connection
first gets a ``_HeaderReader``; once the header is read, the wrapped factory's protocol takes
the TCP transport over directly (``transport.protocol``: no layer stays in between), through a
``_ProxiedTransport`` whose ``getPeer``/``getHost`` say the header's addresses.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Factory, Protocol
from zope.interface import directlyProvides, providedBy

MORE = object()  # not enough bytes yet to tell
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
MAX_V1 = 107  # the longest v1 line, CRLF included (the specification's)
MAX_V2 = 16 + 4096  # the longest v2 header accepted (its own length field allows 64 KiB)

LOCAL, PROXY = "LOCAL", "PROXY"
# v2 TLV types (doc/proxy-protocol.txt 2.2)
PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_UNIQUE_ID, PP2_TYPE_SSL = 0x01, 0x02, 0x05, 0x20
PP2_SUBTYPE_SSL_VERSION, PP2_SUBTYPE_SSL_CN = 0x21, 0x22
_ADDRESS_LENGTHS = {0x1: 12, 0x2: 36, 0x3: 216}  # INET, INET6, UNIX
_MAX_UNIQUE_ID = 128


class InvalidHeader(ValueError):
    """The bytes are not a valid PROXY protocol header (the connection is closed)."""


@dataclass(frozen=True)
class ProxyHeader:
    """What a PROXY protocol header said. ``source``/``destination``: (address, port), or None
    when the connection's own addresses stand (LOCAL, UNKNOWN, UNSPEC, UNIX)."""

    version: int
    command: str  # LOCAL or PROXY
    length: int  # bytes the header took (what follows belongs to the connection)
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None
    tlvs: tuple[tuple[int, bytes], ...] = ()  # every TLV, in order (v2)
    alpn: bytes = b""
    authority: str = ""  # the host name the client asked the balancer for (its SNI)
    unique_id: bytes = b""
    ssl_version: str = ""  # the client's TLS to the balancer, when it says so
    ssl_cn: str = ""


def parse(data: bytes) -> Any:
    """The header at the start of ``data``: a ``ProxyHeader``, ``MORE`` (a prefix of a header,
    so far), or ``InvalidHeader`` raised."""
    if data[:12] == V2_SIGNATURE:
        return _parse_v2(data)
    if data[:6] == V1_PREFIX:
        return _parse_v1(data)
    if V2_SIGNATURE.startswith(data[:12]) or V1_PREFIX.startswith(data[:6]):
        return MORE
    raise InvalidHeader("not a PROXY protocol header")


def _parse_v1(data: bytes) -> Any:
    end = data.find(b"\r\n", 0, MAX_V1)
    if end < 0:
        if len(data) >= MAX_V1 or b"\n" in data[:MAX_V1]:
            raise InvalidHeader("v1: no CRLF within 107 bytes")
        return MORE
    parts = data[6:end].split(b" ")
    if parts[0] == b"UNKNOWN":  # anything may follow; the connection's own addresses stand
        return ProxyHeader(1, PROXY, end + 2)
    if len(parts) != 5 or parts[0] not in (b"TCP4", b"TCP6"):
        raise InvalidHeader("v1: expected TCP4|TCP6 SOURCE DESTINATION SPORT DPORT")
    version = 4 if parts[0] == b"TCP4" else 6
    source = _v1_address(parts[1], version)
    destination = _v1_address(parts[2], version)
    return ProxyHeader(1, PROXY, end + 2, (source, _v1_port(parts[3])), (destination, _v1_port(parts[4])))


def _v1_address(text: bytes, version: int) -> str:
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidHeader(f"v1: {text[:64]!r} is not an address") from None
    if address.version != version or (version == 6 and "%" in str(address)):
        raise InvalidHeader(f"v1: {text[:64]!r} is not an IPv{version} address")
    return str(address)


def _v1_port(text: bytes) -> int:
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[:1] == b"0") or int(text) > 65535:
        raise InvalidHeader(f"v1: {text[:16]!r} is not a port")
    return int(text)


def _parse_v2(data: bytes) -> Any:
    if len(data) < 16:
        return MORE
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        raise InvalidHeader(f"v2: version {version}")
    if command not in (0, 1):
        raise InvalidHeader(f"v2: command {command}")
    family, transport = data[13] >> 4, data[13] & 0x0F
    if family > 3 or transport > 2:
        raise InvalidHeader(f"v2: family/transport 0x{data[13]:02x}")
    length = int.from_bytes(data[14:16], "big")
    total = 16 + length
    if total > MAX_V2:
        raise InvalidHeader(f"v2: {total} bytes, more than {MAX_V2}")
    if len(data) < total:
        return MORE
    body = data[16:total]
    if command == 0:  # LOCAL: the balancer's own connection (health checks); the body is skipped
        return ProxyHeader(2, LOCAL, total)
    at = _ADDRESS_LENGTHS.get(family, 0)
    if len(body) < at:
        raise InvalidHeader(f"v2: {len(body)} bytes, too short for its addresses")
    source = destination = None
    if family == 0x1:
        source = (str(ipaddress.IPv4Address(body[0:4])), int.from_bytes(body[8:10], "big"))
        destination = (str(ipaddress.IPv4Address(body[4:8])), int.from_bytes(body[10:12], "big"))
    elif family == 0x2:
        source = (str(ipaddress.IPv6Address(body[0:16])), int.from_bytes(body[32:34], "big"))
        destination = (str(ipaddress.IPv6Address(body[16:32])), int.from_bytes(body[34:36], "big"))
    tlvs = _tlvs(body, at, "v2")
    fields: dict[str, Any] = {}
    for kind, value in tlvs:
        if kind == PP2_TYPE_ALPN:
            fields["alpn"] = value
        elif kind == PP2_TYPE_AUTHORITY:
            fields["authority"] = _text(value, "authority")
        elif kind == PP2_TYPE_UNIQUE_ID:
            if len(value) > _MAX_UNIQUE_ID:
                raise InvalidHeader("v2: a unique id longer than 128 bytes")
            fields["unique_id"] = value
        elif kind == PP2_TYPE_SSL:
            if len(value) < 5:
                raise InvalidHeader("v2: an SSL TLV shorter than 5 bytes")
            for sub, sub_value in _tlvs(value, 5, "v2 SSL"):
                if sub == PP2_SUBTYPE_SSL_VERSION:
                    fields["ssl_version"] = _text(sub_value, "SSL version")
                elif sub == PP2_SUBTYPE_SSL_CN:
                    fields["ssl_cn"] = _text(sub_value, "SSL CN")
    return ProxyHeader(2, PROXY, total, source, destination, tlvs, **fields)


def _tlvs(body: bytes, at: int, where: str) -> tuple[tuple[int, bytes], ...]:
    found = []
    end = len(body)
    while at < end:
        if at + 3 > end:
            raise InvalidHeader(f"{where}: a TLV cut short")
        kind, size = body[at], int.from_bytes(body[at + 1:at + 3], "big")
        at += 3
        if at + size > end:
            raise InvalidHeader(f"{where}: a TLV of {size} bytes runs past the header")
        found.append((kind, body[at:at + size]))
        at += size
    return tuple(found)


def _text(value: bytes, what: str) -> str:
    """A TLV meant as text: visible ASCII only (it may reach logs)."""
    if any(byte < 0x21 or byte > 0x7E for byte in value):
        raise InvalidHeader(f"v2: the {what} TLV is not visible ASCII")
    return value.decode("ascii")


def _address(host: str, port: int):
    return (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)


class _ProxiedTransport:
    """The TCP transport as the protocols above see it: the header's addresses for
    ``getPeer``/``getHost``, everything else the transport's own (bound once: no call in
    between on the hot methods)."""

    def __init__(self, transport: Any, header: ProxyHeader):
        self._transport = transport
        self.proxy_header = header
        self._peer = _address(*header.source)
        self._host = _address(*header.destination)
        for name in ("write", "writeSequence", "loseConnection", "abortConnection", "registerProducer",
                     "unregisterProducer", "pauseProducing", "resumeProducing", "stopProducing"):
            method = getattr(transport, name, None)
            if method is not None:
                setattr(self, name, method)
        directlyProvides(self, providedBy(transport))

    def getPeer(self):
        return self._peer

    def getHost(self):
        return self._host

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class _HeaderReader(Protocol):
    """A connection until its PROXY header is read (or it is closed: bad header, timeout)."""

    def __init__(self, factory: "ProxyProtocolFactory", addr: Any, trusted: bool, timeout: float):
        self.factory = factory
        self.addr = addr
        self.trusted = trusted
        self.timeout = timeout
        self._held = b""
        self._timer: Any = None
        self._done = False

    def connectionMade(self) -> None:
        self._timer = self.factory.clock.callLater(self.timeout, self._timed_out)

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        held = self._held + data
        try:
            header = parse(held)
        except InvalidHeader as exc:
            self._refuse(str(exc))
            return
        if header is MORE:
            self._held = held
            return
        self._hand_over(header, held[header.length:])

    def _hand_over(self, header: ProxyHeader, rest: bytes) -> None:
        self._done = True
        self._held = b""
        self._cancel_timer()
        factory = self.factory
        transport = self.transport
        addr = self.addr
        if self.trusted and header.source is not None:
            transport = _ProxiedTransport(transport, header)
            addr = transport.getPeer()
            factory.proxied += 1
        protocol = factory.wrapped.buildProtocol(addr)
        if protocol is None:
            self.transport.loseConnection()
            return
        self.transport.protocol = protocol  # the reactor now calls it directly
        protocol.makeConnection(transport)
        if rest:
            protocol.dataReceived(rest)

    def _refuse(self, reason: str) -> None:
        self._done = True
        self._cancel_timer()
        self.factory.refused += 1
        self.factory.last_refusal = reason
        self.transport.abortConnection()

    def _timed_out(self) -> None:
        self._timer = None
        if not self._done:
            self._refuse("no PROXY protocol header in time")

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def connectionLost(self, reason=None) -> None:
        self._cancel_timer()
        self._done = True


class ProxyProtocolFactory(Factory):
    """A listener's factory behind PROXY protocol headers. ``policy()``: the forwarding policy
    in place (``proxy_protocol``, ``proxy_protocol_timeout``, ``is_trusted``); ``clock``: the
    reactor. Counts: ``proxied`` (headers believed), ``refused`` (connections closed)."""

    noisy = False

    def __init__(self, wrapped: Any, policy: Callable[[], Any], clock: Any):
        self.wrapped = wrapped
        self.policy = policy
        self.clock = clock
        self.proxied = 0
        self.refused = 0
        self.last_refusal = ""

    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()

    def buildProtocol(self, addr):
        policy = self.policy()
        if not policy.proxy_protocol:
            return self.wrapped.buildProtocol(addr)
        return _HeaderReader(self, addr, policy.is_trusted(getattr(addr, "host", "")), policy.proxy_protocol_timeout)
