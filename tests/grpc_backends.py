"""A real gRPC server for the end-to-end tests (grpcio, generic handlers, bytes as messages:
no protoc needed), and a small HTTP/2 client (h2 over a TLS socket) for what a gRPC client
hides (the HTTP status, headers and trailers of one call).

Service ``test.Echo``:

- ``Unary``: the request back, with ``x-seen-<name>`` initial metadata for the client's
  ``x-*`` metadata, and a trailing ``x-trailer: done``.
- ``ServerStream``: the request is ``count:size``; that many messages of that size.
- ``ClientStream``: one reply ``count:total-bytes``.
- ``Bidi``: every message back, upper-cased, as it comes.
- ``Fail``: ends with the status and message the request (``code:message``) names, and
  trailing metadata ``x-reason``.
- ``Slow``: sleeps the seconds the request says (bounded), then echoes; notes a cancellation.
- ``Peer``: the connection the call came on (``context.peer()``): counts backend connections.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from concurrent import futures

import grpc
import h2.config
import h2.connection
import h2.events

SERVICE = "test.Echo"


class GrpcBackend:
    def __init__(self, tls: tuple[bytes, bytes] | None = None, workers: int = 64):
        self.peers: list[str] = []
        self.cancelled = threading.Event()
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                                  options=[("grpc.max_receive_message_length", 16 * 1024 * 1024),
                                           ("grpc.max_send_message_length", 16 * 1024 * 1024)])
        self.server.add_generic_rpc_handlers((self._handlers(),))
        if tls is None:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            cert, key = tls
            self.port = self.server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
        self.server.start()

    def _note(self, context) -> None:
        with self.lock:
            self.peers.append(context.peer())

    def _handlers(self):
        def unary(request, context):
            self._note(context)
            metadata = [("x-seen-" + k[2:], v) for k, v in context.invocation_metadata()
                        if k.startswith("x-") and not k.endswith("-bin")]
            context.send_initial_metadata(tuple(metadata))
            context.set_trailing_metadata((("x-trailer", "done"),))
            return request

        def server_stream(request, context):
            self._note(context)
            count, size = (int(x) for x in request.decode().split(":"))
            for i in range(count):
                yield bytes([65 + i % 26]) * size

        def client_stream(requests, context):
            self._note(context)
            count = total = 0
            for message in requests:
                count += 1
                total += len(message)
            return f"{count}:{total}".encode()

        def bidi(requests, context):
            self._note(context)
            for message in requests:
                yield message.upper()

        def fail(request, context):
            self._note(context)
            code, message = request.decode().split(":", 1)
            context.set_trailing_metadata((("x-reason", "asked"),))
            context.abort(grpc.StatusCode[code], message)

        def slow(request, context):
            self._note(context)
            context.add_callback(self.cancelled.set)
            deadline = time.monotonic() + min(float(request.decode()), 30.0)
            while time.monotonic() < deadline and context.is_active():
                time.sleep(0.02)
            return request

        def peer(request, context):
            self._note(context)
            return context.peer().encode()

        return grpc.method_handlers_generic_handler(SERVICE, {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Slow": grpc.unary_unary_rpc_method_handler(slow),
            "Peer": grpc.unary_unary_rpc_method_handler(peer),
        })

    def stop(self) -> None:
        self.server.stop(0)


def channel(port: int, authority: str, ca_pem: bytes) -> grpc.Channel:
    """A gRPC channel to ingressd's TLS port for ``authority`` (SNI and :authority)."""
    return grpc.secure_channel(
        f"127.0.0.1:{port}", grpc.ssl_channel_credentials(root_certificates=ca_pem),
        options=[("grpc.ssl_target_name_override", authority), ("grpc.default_authority", authority),
                 ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                 ("grpc.max_send_message_length", 16 * 1024 * 1024)])


def method(ch: grpc.Channel, kind: str, name: str):
    path = f"/{SERVICE}/{name}"
    return getattr(ch, kind)(path)  # no serializers: messages are bytes


def frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message."""
    return b"\0" + len(message).to_bytes(4, "big") + message


def h2_call(port: int, authority: str, path: str, body: bytes, headers=(), timeout: float = 20.0) -> dict:
    """One HTTP/2 request over TLS (ALPN h2) to ingressd; returns its status, headers, data
    and trailers (``None`` when the stream ended without trailers)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock = context.wrap_socket(raw, server_hostname=authority)
    try:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        block = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", authority.encode()),
                 (b":path", path.encode()), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
                 *headers]
        conn.send_headers(1, block)
        conn.send_data(1, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        result: dict = {"status": 0, "headers": {}, "data": b"", "trailers": None, "reset": None}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    result["headers"] = {k.decode(): v.decode() for k, v in event.headers}
                    result["status"] = int(result["headers"][":status"])
                elif isinstance(event, h2.events.DataReceived):
                    result["data"] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.TrailersReceived):
                    result["trailers"] = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h2.events.StreamReset):
                    result["reset"] = event.error_code
                    return result
                elif isinstance(event, h2.events.StreamEnded):
                    return result
            sock.sendall(conn.data_to_send())
        raise TimeoutError(f"no end of the stream in {timeout}s: {result}")
    finally:
        sock.close()
