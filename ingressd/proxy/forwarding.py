"""The forwarding-header policy: who the client is, and what the backend is told about the request.

As ingress-nginx's locations set them (nginx.tmpl's ``proxy_set_header`` lines and
lua_ingress.lua): ``X-Request-ID``, ``X-Real-IP``, ``X-Forwarded-For/-Host/-Port/-Proto/-Scheme``,
``X-Scheme``, and the client's own ``X-Forwarded-For``/``-Host`` as
``X-Original-Forwarded-For``/``-Host``. Who the client is follows ingress-nginx's real-IP
settings (``ForwardingPolicy``: use-forwarded-headers, forwarded-for-header,
compute-full-forwarded-for, proxy-real-ip-cidr, enable-real-ip, use-proxy-protocol…;
``--trusted-proxies`` is use-forwarded-headers with proxy-real-ip-cidr). A client's values are
believed only from a trusted proxy; from anyone else, headers it could forge to mislead the
backend are dropped.
"""

from __future__ import annotations

import binascii
import ipaddress
import os
import re
from typing import Any, Iterable, Mapping

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

    The OS is asked for 4 KiB at a time (256 IDs) rather than once per request, and the 4 KiB
    are turned into hex at once: an ID is a slice of that (one call a request, not two).
    """

    __slots__ = ("_hex", "_at")

    def __init__(self) -> None:
        self._hex = b""  # 4 KiB from the OS, in hex (8,192 digits)
        self._at = 0

    def __call__(self) -> bytes:
        at = self._at
        if at + 32 > len(self._hex):
            self._hex = binascii.b2a_hex(os.urandom(4096))
            at = 0
        self._at = at + 32
        return self._hex[at:at + 32]


# The one generator's bound method: called once a request (a bound method's call is cheaper
# than an instance's __call__ through its type).
new_request_id = _RequestIds().__call__
_request_ids = new_request_id.__self__  # (decide takes its next ID inline: the same generator)


DEFAULT_REAL_IP_CIDR = ("0.0.0.0/0",)  # ingress-nginx's proxy-real-ip-cidr default
_MEMO_LIMIT = 4096  # peer addresses whose trust a policy remembers (then it starts again)


class ForwardingPolicy:
    """Who the client is, for one configuration: ingress-nginx's real-IP settings as one value.

    The ConfigMap keys (and the options named after them), with ingress-nginx's defaults:
    ``use_forwarded_headers`` (False: a client's X-Forwarded-Proto/-Host/-Port and its
    ``forwarded_for_header`` are believed from a peer in ``real_ip_cidrs``),
    ``forwarded_for_header`` (X-Forwarded-For), ``compute_full_forwarded_for`` (False: the
    backend gets the client alone, not the chain), ``real_ip_cidrs`` (proxy-real-ip-cidr,
    0.0.0.0/0: nginx's ``set_real_ip_from``), ``enable_real_ip`` (False: the client address
    from ``forwarded_for_header`` without believing the other headers), ``proxy_protocol``
    (False: every connection starts with a PROXY protocol header, read by
    ``ingressd.http.proxy_protocol``; its source is the peer when the connection comes from
    ``real_ip_cidrs``, nginx's ``real_ip_header proxy_protocol``), ``proxy_protocol_timeout``
    (5 s), ``add_original_uri`` (proxy-add-original-uri-header, False), ``generate_request_id``
    (True). ``trusted_proxies`` (``--trusted-proxies``) is use-forwarded-headers with those
    networks as proxy-real-ip-cidr.

    A server holds one and swaps in a new one whole (``Proxy.use_forwarding``); every request
    reads the one in place. Nothing here changes after construction but a memo of which peer
    addresses are trusted.
    """

    def __init__(self, trusted_proxies: Iterable[str] = (), *, use_forwarded_headers: bool = False,
                 real_ip_cidrs: Iterable[str] = DEFAULT_REAL_IP_CIDR, forwarded_for_header: str = "X-Forwarded-For",
                 compute_full_forwarded_for: bool = False, enable_real_ip: bool = False,
                 proxy_protocol: bool = False, proxy_protocol_timeout: float = 5.0,
                 add_original_uri: bool = False, generate_request_id: bool = True):
        trusted_proxies = tuple(trusted_proxies)
        if trusted_proxies:
            use_forwarded_headers, real_ip_cidrs = True, trusted_proxies
        self.trusted = tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in real_ip_cidrs)
        self.use_forwarded_headers = bool(use_forwarded_headers)
        self.enable_real_ip = bool(enable_real_ip)
        self.compute_full_forwarded_for = bool(compute_full_forwarded_for)
        name = forwarded_for_header.strip().lower()
        if not name or not _is_token(name):
            raise ValueError(f"forwarded-for-header {forwarded_for_header!r} is not a header name")
        self.forwarded_for_header = name.encode("ascii")
        self.proxy_protocol = bool(proxy_protocol)
        if not 0 < proxy_protocol_timeout <= 3600:
            raise ValueError(f"proxy-protocol-header-timeout must be more than 0 and at most 1h, "
                             f"got {proxy_protocol_timeout}s")
        self.proxy_protocol_timeout = float(proxy_protocol_timeout)
        self.add_original_uri = bool(add_original_uri)
        self.generate_request_id = bool(generate_request_id)
        # nginx.tmpl: the realip module is on with any of the three; with PROXY protocol and
        # without use-forwarded-headers its header is the PROXY header (real_ip_header
        # proxy_protocol), so the forwarded-for header is not read.
        self.real_ip = self.use_forwarded_headers or self.enable_real_ip or self.proxy_protocol
        self.reads_header = self.use_forwarded_headers or (self.enable_real_ip and not self.proxy_protocol)
        self._memo: dict[str, bool] = {}
        # A request without X-Forwarded-* or spoofable headers gets the same X-Real-IP,
        # X-Forwarded-For, -Port, -Proto, -Scheme and X-Scheme lines as every other from its
        # peer, scheme and port: made once per (peer, scheme, port) and remembered (_lines_for),
        # unless a setting makes them depend on more (PROXY protocol, the original URI, another
        # forwarded-for header, whose values a request always has to be read for).
        self._same_lines = not self.proxy_protocol and not self.add_original_uri \
            and self.forwarded_for_header == b"x-forwarded-for"
        self._lines: dict[tuple[str, str, int], tuple] = {}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "ForwardingPolicy":
        """The policy the server's settings give (option names with underscores); values may
        be typed or spelled as in a ConfigMap ("true", "10.0.0.0/8,fd00::/8", "5s").
        Raises ValueError naming the setting when one is not valid."""
        values: dict[str, Any] = {}
        for key, parse in _SETTINGS.items():
            value = settings.get(key)
            if value is None or value == "":
                continue
            try:
                values[key] = parse(value)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"--{key.replace('_', '-')}: {exc}") from None
        trusted = values.pop("trusted_proxies", ())
        cidrs = values.pop("proxy_real_ip_cidr", None)
        if trusted and cidrs is not None and tuple(cidrs) != tuple(trusted):
            raise ValueError("--trusted-proxies is --use-forwarded-headers with --proxy-real-ip-cidr: give one of them")
        if cidrs is not None:
            values["real_ip_cidrs"] = cidrs
        renamed = {"proxy_protocol_header_timeout": "proxy_protocol_timeout",
                   "proxy_add_original_uri_header": "add_original_uri"}
        return cls(trusted, **{renamed.get(key, key): value for key, value in values.items()})

    def is_trusted(self, address: str) -> bool:
        """Whether ``address`` is in proxy-real-ip-cidr, with the realip module on (nginx's
        ``set_real_ip_from`` applies only then)."""
        if not self.real_ip or not address:
            return False
        known = self._memo.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                known = False
            else:
                known = any(ip in network for network in self.trusted)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[address] = known
        return known

    def decide(self, headers: Headers, host_header: bytes | None, rid: bytes | None, spoofed: bool,
               forwarded: bool, peer_ip: str, scheme: str, server_port: int, trusted: bool,
               request_uri: bytes = b"") -> Decision:
        """The request id, the client address, the scheme and the forwarding headers of one
        request; ``headers`` (the request's) lose what a client must not forge and, behind a
        trusted proxy, get the forwarded Host.

        ``spoofed``: the request has a header ``is_spoofable`` names; ``forwarded``: it has an
        ``X-Forwarded-*`` header (both found in the exchange's one pass over the headers);
        ``peer_ip``: the connection's peer (a trusted PROXY protocol header's source);
        ``trusted``: ``is_trusted(peer_ip)``. The scheme returned (what ingressd decides with:
        HTTPS redirects, HSTS) is only ever http or https; any value a trusted proxy sends
        reaches the backend.
        """
        if rid is None or not (0 < len(rid) <= 128) or rid.translate(None, _REQUEST_ID_BYTES):
            if self.generate_request_id:
                # new_request_id()'s steps inline (its frame, once a request): the module's one
                # generator, whose IDs it and this share in one sequence.
                ids = _request_ids
                at = ids._at
                if at + 32 > len(ids._hex):
                    ids._hex = binascii.b2a_hex(os.urandom(4096))
                    at = 0
                ids._at = at + 32
                rid = ids._hex[at:at + 32]
            else:
                rid = b""
        if self._same_lines and not (spoofed or forwarded):
            # What the steps below decide for such a request, the peer's lines remembered.
            lines = self._lines.get((peer_ip, scheme, server_port))
            if lines is None:
                lines = self._lines_for(peer_ip, scheme, server_port)
            real_ip, forwarded_for, port_line, proto_line, scheme_line, x_scheme_line = lines
            upstream = [(b"x-request-id", rid), real_ip, forwarded_for, (b"x-forwarded-host", host_header or b""),
                        port_line, proto_line, scheme_line, x_scheme_line]
            if not rid:
                del upstream[0]
            return rid.decode("ascii"), peer_ip, scheme, upstream
        if self.proxy_protocol:
            # $pass_server_port is the PROXY header's destination port, and https when it is
            # 443 (lua_ingress.lua): a load balancer that took TLS off on 443.
            port = b"%d" % server_port
            if server_port == 443:
                scheme = "https"
        else:
            # $pass_port: the HTTPS listener's port is always 443 to the backend (lua_ingress.lua).
            port = b"443" if scheme == "https" else b"%d" % server_port
        proto = scheme.encode("ascii")
        host = host_header or b""
        client_ip = peer_ip
        believed = trusted and self.use_forwarded_headers  # X-Forwarded-Proto/-Host/-Port, forgeable ones
        original_for = original_host = chain = b""
        if spoofed and not believed:
            headers.pairs = [(name, value) for name, value in headers.pairs if not is_spoofable(name)]
        if self.add_original_uri and spoofed and believed:
            headers.pairs = [(name, value) for name, value in headers.pairs if name != b"x-original-uri"]
        for_header = self.forwarded_for_header
        if forwarded or for_header != b"x-forwarded-for":
            # nginx's $http_x_forwarded_for: repeated lines joined with ", ".
            original_for = b", ".join(headers.get_all(for_header))
            if forwarded:
                chain = original_for if for_header == b"x-forwarded-for" else b", ".join(
                    headers.get_all(b"x-forwarded-for"))
                original_host = b", ".join(headers.get_all(b"x-forwarded-host"))
            if trusted and self.reads_header and original_for:
                client_ip = self.real_client(original_for.decode("latin-1") + ", " + peer_ip)
            if believed and forwarded:
                forwarded_proto = b", ".join(headers.get_all(b"x-forwarded-proto"))
                if forwarded_proto:
                    proto = forwarded_proto  # any value, e.g. "myproto", reaches the backend
                    lowered = forwarded_proto.lower()
                    if lowered in (b"http", b"https"):
                        scheme = lowered.decode("ascii")
                    if self.proxy_protocol and server_port == 443:  # lua_ingress.lua: after X-Forwarded-Proto
                        proto, scheme = b"https", "https"
                port = b", ".join(headers.get_all(b"x-forwarded-port")) or port
                first = original_host.split(b",", 1)[0].strip()
                if first:
                    host = first
                    if host_header is None:
                        headers.pairs.append((b"host", first))
                    else:
                        headers.pairs = [(name, first if name == b"host" else value) for name, value in headers.pairs]
        client = client_ip.encode("ascii")
        if self.compute_full_forwarded_for and self.use_forwarded_headers:
            # $full_x_forwarded_for: the chain and the peer it came from ($realip_remote_addr,
            # with PROXY protocol its source); a chain only from a trusted peer (ingress-nginx
            # takes anyone's, which lets a client put any address first).
            full = chain + b", " + peer_ip.encode("ascii") if chain and trusted else peer_ip.encode("ascii")
        else:
            full = client  # $remote_addr
        upstream = [
            (b"x-request-id", rid),
            (b"x-real-ip", client),
            (b"x-forwarded-for", full),
            (b"x-forwarded-host", host),
            (b"x-forwarded-port", port),
            (b"x-forwarded-proto", proto),
            (b"x-forwarded-scheme", proto),
            (b"x-scheme", proto),
        ]
        if not rid:  # generate-request-id off and none sent: proxy_set_header with "" sends none
            del upstream[0]
        if self.add_original_uri:
            upstream.append((b"x-original-uri", request_uri))
        if original_for:
            upstream.append((b"x-original-forwarded-for", original_for))
        if original_host:
            upstream.append((b"x-original-forwarded-host", original_host))
        return rid.decode("ascii"), client_ip, scheme, upstream

    def _lines_for(self, peer_ip: str, scheme: str, server_port: int) -> tuple:
        """The forwarding lines of a request from ``peer_ip`` that has no X-Forwarded-* or
        spoofable header (``decide``'s steps for it), remembered; the memo is bounded as ``_memo``."""
        client = peer_ip.encode("ascii")
        proto = scheme.encode("ascii")
        port = b"443" if scheme == "https" else b"%d" % server_port  # $pass_port, as decide
        lines = ((b"x-real-ip", client), (b"x-forwarded-for", client), (b"x-forwarded-port", port),
                 (b"x-forwarded-proto", proto), (b"x-forwarded-scheme", proto), (b"x-scheme", proto))
        if len(self._lines) >= _MEMO_LIMIT:
            self._lines.clear()
        self._lines[(peer_ip, scheme, server_port)] = lines
        return lines

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


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")


def _is_token(name: str) -> bool:
    return _TOKEN.fullmatch(name) is not None


_TRUE = frozenset(("1", "t", "true", "on", "yes"))
_FALSE = frozenset(("0", "f", "false", "off", "no"))


def parse_switch(value: Any) -> bool:
    """A boolean setting: a bool or an int (a twistd flag), or a ConfigMap spelling (Go's
    strconv.ParseBool: true/false/1/0/t/f in any case; on/off and yes/no as the options say it)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_cidrs(value: Any) -> tuple[str, ...]:
    """Networks: a comma-separated string (as proxy-real-ip-cidr) or a list; each an address
    or a CIDR (host bits allowed, as nginx's set_real_ip_from). At least one."""
    items = value.split(",") if isinstance(value, str) else list(value)
    cidrs = tuple(str(item).strip() for item in items if str(item).strip())
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"{cidr!r} is not an address or a CIDR such as 10.0.0.0/8") from None
    return cidrs


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Seconds: a number (an option's seconds) or a Go duration as ingress-nginx reads a
    ConfigMap's (time.ParseDuration: ``5s``, ``500ms``, ``1m30s``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    at, seconds = 0, 0.0
    while at < len(text):
        match = _DURATION.match(text, at)
        if match is None:
            raise ValueError(f"expected seconds or a duration such as 5s, 500ms or 1m30s, got {value!r}")
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        at = match.end()
    if not text:
        raise ValueError("expected seconds or a duration such as 5s")
    return seconds


# The settings ``ForwardingPolicy.from_settings`` reads, and how each is parsed.
_SETTINGS = {
    "trusted_proxies": parse_cidrs,
    "use_forwarded_headers": parse_switch,
    "proxy_real_ip_cidr": parse_cidrs,
    "forwarded_for_header": str,
    "compute_full_forwarded_for": parse_switch,
    "enable_real_ip": parse_switch,
    "proxy_protocol": parse_switch,
    "proxy_protocol_header_timeout": parse_duration,
    "proxy_add_original_uri_header": parse_switch,
    "generate_request_id": parse_switch,
}
