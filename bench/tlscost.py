#!/usr/bin/env python3
"""The TLS layer's own Python cost, in memory: ``bench/pathcost.py`` with TLS on one side.

Builds the real server (``serve_in_memory``, the installed plugins) with an ``--https``
listener (its generated self-signed certificate), connects a client made with the standard
library's ``ssl.SSLObject`` over memory BIOs (C: its own cost is small and the same for every
version of ingressd), completes the handshake, and then plays keep-alive requests through
the server's real TLS listener protocol: client records into its ``dataReceived``, the
backend's answer into the upstream connection's ``dataReceived``. ``--layer`` measures the TLS layer alone, both versions side by side in one process: Twisted's
``TLSMemoryBIOProtocol`` and ingressd's ``LeanTLSProtocol`` (``ingressd.tls.lean``), each under
a protocol that answers every read with a 100-byte response, alternating rounds (an A/B that
load on the machine moves equally), with Python calls per round trip under cProfile.
``--backend-tls`` turns it
round: a plain client and a TLS backend (``backend-protocol: HTTPS``, the backend an
``ssl.SSLObject`` server), which is the https-backend scenario's path. ``--both`` does both.

It prints CPU time per request of the whole loop (client and backend included: compare two
versions of ingressd with it, not with nginx), the median of several rounds; ``--profile``
prints cProfile's table, ``--sample`` µs per function by CPU-time sampling (``memcost.sample``).

    .venv/bin/python bench/tlscost.py                        # TLS client side
    .venv/bin/python bench/tlscost.py --backend-tls          # TLS backend side
    .venv/bin/python bench/tlscost.py --ingress-tls          # the Ingress has TLS (ssl-redirect, HSTS),
                                                             # as bench.py's https-keepalive
    .venv/bin/python bench/tlscost.py --profile --sort ncalls
    .venv/bin/python bench/tlscost.py --layer                # the TLS layer alone, A/B
"""

from __future__ import annotations

import datetime
import ssl
import statistics
import tempfile
from pathlib import Path

from twisted.internet.testing import StringTransport

import memcost
from memcost import CLIENT, RESPONSE, print_samples, sample

memcost.use_tree_source()

from ingressd.testing import one_route_objects  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: tlscost\r\nAccept: */*\r\n\r\n"


class _Peer:
    """One end of a TLS connection made with the standard library, over memory BIOs."""

    def __init__(self, context: ssl.SSLContext, server_side: bool, hostname: str | None = None):
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                    server_hostname=hostname)

    def handshake(self) -> bool:
        try:
            self.tls.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    def feed(self, data: bytes) -> bytes:
        """Decrypt ``data`` (records from the other end): the plaintext now readable."""
        self.incoming.write(data)
        chunks = []
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def seal(self, data: bytes) -> bytes:
        if data:
            self.tls.write(data)
        return self.outgoing.read()

    def connect_to(self, server, transport: StringTransport) -> None:
        """The client side's handshake with ``server`` (a protocol writing to ``transport``), bounded."""
        for _ in range(10):
            done = self.handshake()
            records = self.outgoing.read()
            if records:
                server.dataReceived(records)
            self.incoming.write(transport.value())
            transport.clear()
            if done:
                break


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _backend_context(directory: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backend.local")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (directory / "backend.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "backend.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "backend.crt", directory / "backend.key")
    return context


class Rig:
    """One server, one client connection, one pooled backend connection; TLS on one of them."""

    def __init__(self, extra_args: list[str], tmp: Path, backend_tls: bool, ingress_tls: bool = False):
        self.backend_tls = backend_tls
        annotations = {"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"} if backend_tls else None
        objects = one_route_objects("bench.local", annotations=annotations)
        if ingress_tls and not backend_tls:  # as bench.py's HTTPS scenarios: ssl-redirect, HSTS
            objects[-1]["spec"]["tls"] = [{"hosts": ["bench.local"], "secretName": "bench-tls"}]
        self.service, self.reactor = memcost.serve(tmp, extra_args, objects)
        # Twisted's client TLS batches small writes until the next turn of the global reactor:
        # this rig's reactor instead, so that the loop pays for that (``advance(0)``) as twistd does.
        import twisted.protocols.tls
        twisted.protocols.tls._get_default_clock = lambda: self.reactor
        if backend_tls:
            self.client, self.client_transport = memcost.accept(self.service.http_factory, 8443)
            self.client.dataReceived(REQUEST)
            self.upstream, self.upstream_transport = memcost.connect(self.reactor)
            self.backend = _Peer(_backend_context(tmp), server_side=True)
            for _ in range(10):  # the handshake, bounded
                done = self.backend.handshake()
                self.backend.incoming.write(self.upstream_transport.value())
                self.upstream_transport.clear()
                done = self.backend.handshake()
                records = self.backend.outgoing.read()
                if records:
                    self.upstream.dataReceived(records)
                self.reactor.advance(0)  # Twisted's client side sends what it buffered on the next turn
                if done and self.upstream_transport.value() == b"":
                    break
            self.first_request = self.backend.feed(self.upstream_transport.value())
            self.upstream_transport.clear()
            self.upstream.dataReceived(self.backend.seal(RESPONSE))
        else:
            self.client, self.client_transport = memcost.accept(self.service.tls_listener, 8443)
            context = _client_context()
            context.set_alpn_protocols(["http/1.1"])
            self.peer = _Peer(context, server_side=False, hostname="bench.local")
            self.peer.connect_to(self.client, self.client_transport)
            self.client.dataReceived(self.peer.seal(REQUEST))
            self.upstream, self.upstream_transport = memcost.connect(self.reactor)
            self.upstream.dataReceived(RESPONSE)
        self.check()

    def check(self) -> None:
        answer = self.client_transport.value()
        if not self.backend_tls:
            answer = self.peer.feed(answer)
        upstream = self.first_request if self.backend_tls else self.upstream_transport.value()
        if not answer.startswith(b"HTTP/1.1 200 ") or not answer.endswith(b"ok\n"):
            raise SystemExit(f"unexpected answer: {answer[:200]!r}")
        if not upstream.startswith(b"GET / HTTP/1.1\r\n"):
            raise SystemExit(f"unexpected upstream request: {upstream[:200]!r}")
        self.client_transport.clear()
        self.upstream_transport.clear()

    def verify(self) -> None:
        """One more request, its answer and the backend's request checked."""
        if self.backend_tls:
            self.client.dataReceived(REQUEST)
            self.reactor.advance(0)
            request = self.backend.feed(self.upstream_transport.value())
            if not request.startswith(b"GET / HTTP/1.1\r\n"):
                raise SystemExit(f"unexpected upstream request: {request[:200]!r}")
            self.upstream_transport.clear()
            self.upstream.dataReceived(self.backend.seal(RESPONSE))
            answer = self.client_transport.value()
            if not answer.startswith(b"HTTP/1.1 200 ") or not answer.endswith(b"ok\n"):
                raise SystemExit(f"unexpected answer: {answer[:200]!r}")
            self.client_transport.clear()
            return
        else:
            self.client.dataReceived(self.peer.seal(REQUEST))
            self.upstream.dataReceived(RESPONSE)
        self.check()

    def run(self, count: int) -> None:
        client, upstream = self.client.dataReceived, self.upstream.dataReceived
        client_out, upstream_out = self.client_transport, self.upstream_transport
        if self.backend_tls:
            backend = self.backend
            response = backend.seal
            turn = self.reactor.advance
            end_round = self.reactor.end_round  # the access log's lines, as the server's reactor ends a round
            for _ in range(count):
                client(REQUEST)
                turn(0)  # a reactor turn: Twisted's client TLS sends small writes at the end of one
                backend.feed(upstream_out.value())
                upstream_out.clear()
                upstream(response(RESPONSE))
                end_round()
                client_out.clear()
        else:
            peer = self.peer
            end_round = self.reactor.end_round
            for _ in range(count):
                client(peer.seal(REQUEST))
                upstream(RESPONSE)
                end_round()
                peer.feed(client_out.value())
                client_out.clear()
                upstream_out.clear()


def measure(args, backend_tls: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="ingressd-tlscost-") as tmp:
        extra = memcost.server_args(args.args, Path(tmp), "--https", "tcp:8443")
        rig = Rig(extra, Path(tmp), backend_tls, args.ingress_tls)
        rig.run(2000)  # warm-up
        label = "TLS backend" if backend_tls else "TLS client"
        if args.profile:
            memcost.profiled(rig.run, args.requests).sort_stats(args.sort).print_stats(args.lines)
            return
        if args.sample:
            print(label)
            print_samples(*sample(rig, args.requests * args.rounds), args.lines)
            return
        figures = [memcost.cpu_per(args.requests, rig.run, args.requests) for _ in range(args.rounds)]
        rig.verify()
        print(f"{label}: {memcost.per_text(figures, args.requests)}")


def layer(args) -> None:
    """The TLS layer alone: Twisted's protocol against ours, alternating rounds."""
    from twisted.internet.protocol import Factory, Protocol
    from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

    from ingressd.tls.certificates import CertificateStore
    from ingressd.tls import lean
    from ingressd.tls.lean import LEAN, LeanTLSProtocol

    class Answer(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(RESPONSE)

    store = CertificateStore(alpn=True)

    def rig(kind):
        factory = TLSMemoryBIOFactory(store.server_options(), False, Factory.forProtocol(Answer))
        factory.protocol = kind
        server = factory.buildProtocol(CLIENT)
        transport = StringTransport()
        server.makeConnection(transport)
        peer = _Peer(_client_context(), server_side=False, hostname="bench.local")
        peer.connect_to(server, transport)
        return server, transport, peer

    def run(server, transport, peer, count: int) -> None:
        seal, feed, received, value, clear = peer.seal, peer.feed, server.dataReceived, transport.value, transport.clear
        for _ in range(count):
            received(seal(REQUEST))
            if feed(value()) != RESPONSE:
                raise SystemExit("unexpected answer")
            clear()

    rigs = {"twisted TLSMemoryBIOProtocol": rig(TLSMemoryBIOProtocol), "ingressd LeanTLSProtocol": rig(LeanTLSProtocol)}
    if getattr(lean, "ACCELERATED", False):  # the C steps in use: the pure-Python ones beside them
        rigs["ingressd PythonLeanTLSProtocol"] = rig(lean.PythonLeanTLSProtocol)
    for one in rigs.values():
        run(*one, 2000)
    figures: dict[str, list[float]] = {name: [] for name in rigs}
    for _ in range(args.rounds):
        for name, one in rigs.items():
            figures[name].append(memcost.cpu_per(args.requests, run, *one, args.requests))
    print(f"TLS layer alone (LEAN={LEAN}): a round trip = the client's request records in, the answer's out "
          f"(the standard library client's own cost included, the same in both)")
    for name, one in rigs.items():
        calls = memcost.profiled(run, *one, 5000).total_calls / 5000
        print(f"{name}: {statistics.median(figures[name]):.2f} µs CPU per round trip "
              f"(median of {args.rounds}; all: {', '.join(f'{f:.1f}' for f in figures[name])}); "
              f"{calls:.0f} Python calls")


def main() -> None:
    p = memcost.options(__doc__, default=10_000)
    p.add_argument("--backend-tls", action="store_true", help="plain client, TLS to the backend")
    p.add_argument("--ingress-tls", action="store_true",
                   help="the TLS client rig's Ingress names its host under tls (ssl-redirect, HSTS), as bench.py's "
                        "https scenarios")
    p.add_argument("--both", action="store_true", help="the TLS client rig, then the TLS backend rig")
    p.add_argument("--layer", action="store_true", help="the TLS layer alone: Twisted's protocol and ours, A/B")
    args = p.parse_args()
    if args.layer:
        layer(args)
        return
    for backend_tls in ((False, True) if args.both else (args.backend_tls,)):
        measure(args, backend_tls)


if __name__ == "__main__":
    main()
