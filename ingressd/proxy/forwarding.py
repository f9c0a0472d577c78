"""The forwarding-header policy: who the client is, and what the backend is told about the request.

As ingress-nginx's locations set them (nginx.tmpl's ``proxy_set_header`` lines and
lua_ingress.lua): ``X-Request-ID``, ``X-Real-IP``, ``X-Forwarded-For/-Host/-Port/-Proto/-Scheme``,
``X-Scheme``, and the client's own ``X-Forwarded-For``/``-Host`` as
``X-Original-Forwarded-For``/``-Host``. A client's values are believed only from a trusted
proxy (``--trusted-proxies``, ingress-nginx's use-forwarded-headers with proxy-real-ip-cidr);
from anyone else, headers it could forge to mislead the backend are dropped.
"""

from __future__ import annotations

import binascii
import ipaddress
import os
from typing import Iterable

from ingressd.http.headers import Headers

# The headers this policy sets: a client's own are never passed on, ours replace them.
FORWARDED = frozenset(
    (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
     b"x-forwarded-scheme", b"x-real-ip", b"x-request-id", b"x-scheme", b"x-original-forwarded-for",
     b"x-original-forwarded-host", b"expect")
)
# Forwarding headers a client could forge; dropped unless the peer is a trusted proxy
# (ingress-nginx passes them on from anyone).
SPOOFABLE = frozenset((b"forwarded", b"x-original-uri", b"x-original-url", b"x-rewrite-url"))
# A client's X-Request-ID is passed on ($req_id) when it is visible ASCII without the quote
# and backslash (it is written unescaped into access logs); otherwise a new one replaces it.
_REQUEST_ID_BYTES = bytes(byte for byte in range(0x21, 0x7F) if byte not in b'"\\')

# What ``decide`` returns: (request id, client address, scheme, headers to send upstream).
Decision = tuple[str, str, str, list[tuple[bytes, bytes]]]


def is_spoofable(name: bytes) -> bool:
    """Whether a client-sent header (lower-case name) is dropped when the peer is not trusted."""
    return name in SPOOFABLE or (name.startswith(b"x-forwarded-") and name not in FORWARDED)


class _RequestIds:
    """Random request IDs: 16 bytes from the OS as 32 hex digits, like nginx's ``$request_id``.

    The OS is asked for 4 KiB at a time (256 IDs) rather than once per request.
    """

    __slots__ = ("_pool", "_at")

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def __call__(self) -> bytes:
        at = self._at
        if at + 16 > len(self._pool):
            self._pool = os.urandom(4096)
            at = 0
        self._at = at + 16
        return binascii.b2a_hex(self._pool[at:at + 16])


new_request_id = _RequestIds()


class ForwardingPolicy:
    """The policy for one server: which peers are trusted proxies, and what each request forwards."""

    def __init__(self, trusted_proxies: Iterable[str] = ()):
        self.trusted = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies)

    def is_trusted(self, address: str) -> bool:
        if not self.trusted or not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def decide(self, headers: Headers, host_header: bytes | None, rid: bytes | None, spoofed: bool,
               forwarded: bool, peer_ip: str, scheme: str, server_port: int, trusted: bool) -> Decision:
        """The request id, the client address, the scheme and the forwarding headers of one
        request; ``headers`` (the request's) lose what a client must not forge and, behind a
        trusted proxy, get the forwarded Host.

        ``spoofed``: the request has a header ``is_spoofable`` names; ``forwarded``: it has an
        ``X-Forwarded-*`` header (both found in the exchange's one pass over the headers).
        The scheme returned (what ingressd decides with: HTTPS redirects, HSTS) is only ever
        http or https; any value a trusted proxy sends reaches the backend.
        """
        if rid is None or not (0 < len(rid) <= 128) or rid.translate(None, _REQUEST_ID_BYTES):
            rid = new_request_id()
        # $pass_port: the HTTPS listener's port is always 443 to the backend (lua_ingress.lua).
        port = b"443" if scheme == "https" else b"%d" % server_port
        proto = scheme.encode("ascii")
        host = host_header or b""
        client_ip = peer_ip
        original_for = original_host = b""
        if spoofed and not trusted:
            headers.pairs = [(name, value) for name, value in headers.pairs if not is_spoofable(name)]
        if forwarded:
            # nginx's $http_x_forwarded_for: repeated lines joined with ", ".
            original_for = b", ".join(headers.get_all(b"x-forwarded-for"))
            original_host = b", ".join(headers.get_all(b"x-forwarded-host"))
            if trusted:
                if original_for:
                    chain = original_for + b", " + peer_ip.encode("ascii")
                    client_ip = self.real_client(chain.decode("latin-1"))
                forwarded_proto = b", ".join(headers.get_all(b"x-forwarded-proto"))
                if forwarded_proto:
                    proto = forwarded_proto  # any value, e.g. "myproto", reaches the backend
                    lowered = forwarded_proto.lower()
                    if lowered in (b"http", b"https"):
                        scheme = lowered.decode("ascii")
                port = b", ".join(headers.get_all(b"x-forwarded-port")) or port
                first = original_host.split(b",", 1)[0].strip()
                if first:
                    host = first
                    if host_header is None:
                        headers.pairs.append((b"host", first))
                    else:
                        headers.pairs = [(name, first if name == b"host" else value) for name, value in headers.pairs]
        client = client_ip.encode("ascii")
        upstream = [
            (b"x-request-id", rid),
            (b"x-real-ip", client),
            (b"x-forwarded-for", client),  # $remote_addr: compute-full-forwarded-for is off by default
            (b"x-forwarded-host", host),
            (b"x-forwarded-port", port),
            (b"x-forwarded-proto", proto),
            (b"x-forwarded-scheme", proto),
            (b"x-scheme", proto),
        ]
        if original_for:
            upstream.append((b"x-original-forwarded-for", original_for))
        if original_host:
            upstream.append((b"x-original-forwarded-host", original_host))
        return rid.decode("ascii"), client_ip, scheme, upstream

    def real_client(self, chain: str) -> str:
        """The right-most address of X-Forwarded-For that is not a trusted proxy."""
        addresses = [part.strip() for part in chain.split(",") if part.strip()]
        last_trusted = ""  # the hop that sent the one being read (none for the right-most)
        for address in reversed(addresses):
            if not self.is_trusted(address):
                try:
                    return str(ipaddress.ip_address(address))
                except ValueError:
                    # Not an address: never let it be the client (it would key allow/deny
                    # lists and limits, and is not ASCII-safe); the hop that sent it is.
                    return last_trusted
            last_trusted = address
        return addresses[0] if addresses else ""
