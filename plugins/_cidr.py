"""Parse CIDR-list annotations and test client addresses against them, fast.

Shared by the allow/deny lists and the rate limiter's exemption list.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from ingressd import AnnotationError, parse_list


def parse_cidr_list(value: str) -> tuple:
    """``"10.0.0.0/8, 192.168.1.7, 2001:db8::/32"`` → a tuple of networks (hashable).

    A bare address is a /32 (or /128). Host bits after the prefix are ignored, as nginx does.
    Any entry that is not an address or a CIDR raises AnnotationError.
    """
    networks = []
    for item in parse_list(value):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise AnnotationError(f"{item!r} is not an IP address or CIDR range") from None
    return tuple(networks)


class CidrMatcher:
    """Membership of an address (text, as in ``exchange.client_ip``) in a set of networks.

    Networks are kept as (integer, mask) pairs per address family so a lookup is one
    address parse and a few integer operations. IPv4-mapped IPv6 addresses
    (``::ffff:10.1.2.3``) are matched as the IPv4 address they carry.
    """

    __slots__ = ("_v4", "_v6")

    def __init__(self, networks: Iterable):
        self._v4: tuple[tuple[int, int], ...] = tuple(
            (int(n.network_address), int(n.netmask)) for n in networks if n.version == 4
        )
        self._v6: tuple[tuple[int, int], ...] = tuple(
            (int(n.network_address), int(n.netmask)) for n in networks if n.version == 6
        )

    def __bool__(self) -> bool:
        return bool(self._v4 or self._v6)

    def __contains__(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        value = int(ip)
        for network, mask in self._v4 if ip.version == 4 else self._v6:
            if value & mask == network:
                return True
        return False
