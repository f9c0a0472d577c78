"""PROXY protocol v1 written to a TCP service's backend (``:PROXY`` as the fourth field:
nginx's ``proxy_protocol on``). The header a client sends is read by the listeners' one parser,
``ingressd.http.proxy_protocol.parse``.
"""

from __future__ import annotations

import ipaddress


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
