"""The conformance cases HTTPRouteBackendProtocolH2C and HTTPRouteBackendProtocolWebSocket
(kubernetes-sigs/gateway-api ``conformance/tests/httproute-backend-protocol-*``) against the real
``twistd ingressd`` in file mode: a backendRef to a Service port of ``appProtocol:
kubernetes.io/h2c`` is reached over cleartext HTTP/2 with prior knowledge (the backend here
speaks nothing else), from an h2c client as the suite sends and from an HTTP/1.1 one; one of
``kubernetes.io/ws`` passes WebSocket text and binary frames; ``kubernetes.io/wss`` reaches a
WebSocket backend over TLS; an unknown appProtocol answers 500 with ResolvedRefs False
UnsupportedProtocol on ``/routes``."""

from __future__ import annotations

import json
import socket
import ssl
import threading

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
import websocket
import yaml

import certs
from gateway_manifests import GROUP, INFRA, SAME_NAMESPACE_GATEWAY
from harness import Ingressd, wait_for, write_manifests
from test_e2e_h2c import h2c_get
from wsbackend import WebSocketEcho

pytestmark = pytest.mark.slow


MANIFESTS = SAME_NAMESPACE_GATEWAY + f"""
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: backend-protocol-h2c, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  hostnames: [h2c.example]
  rules:
  - backendRefs: [{{name: infra-backend-v1, port: 8081}}]
---
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: backend-protocol-ws, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  hostnames: [ws.example]
  rules:
  - backendRefs: [{{name: infra-backend-v1, port: 8082}}]
---
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: backend-protocol-wss, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  hostnames: [wss.example]
  rules:
  - backendRefs: [{{name: infra-backend-v1, port: 8443}}]
---
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: backend-protocol-unknown, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  hostnames: [unknown.example]
  rules:
  - backendRefs: [{{name: infra-backend-v1, port: 9000}}]
"""


def _service(h2c_port: int, ws_port: int, wss_port: int) -> list[dict]:
    """The conformance base's infra-backend-v1 ports (second-port h2c, third-port ws), plus a
    wss port and one of an appProtocol ingressd does not know."""
    ports = [("second-port", 8081, h2c_port, "kubernetes.io/h2c"), ("third-port", 8082, ws_port, "kubernetes.io/ws"),
             ("wss-port", 8443, wss_port, "kubernetes.io/wss"), ("odd-port", 9000, ws_port, "example.com/odd")]
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "infra-backend-v1", "namespace": INFRA},
         "spec": {"ports": [{"name": n, "port": p, "targetPort": t, "appProtocol": a} for n, p, t, a in ports]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "infra-backend-v1", "namespace": INFRA,
                      "labels": {"kubernetes.io/service-name": "infra-backend-v1"}},
         "addressType": "IPv4", "ports": [{"name": n, "port": t} for n, _, t, _ in ports],
         "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]},
    ]


class H2COnly:
    """A backend that speaks only cleartext HTTP/2 with prior knowledge (an HTTP/1.1 request
    gets the connection closed): each request is answered 200 with a JSON echo of it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        h2conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        h2conn.initiate_connection()
        heads: dict[int, dict] = {}
        try:
            conn.sendall(h2conn.data_to_send())
            while not self._stop.is_set():
                data = conn.recv(65536)
                if not data:
                    return
                try:
                    events = h2conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    return  # not HTTP/2 (an HTTP/1.1 request): closed
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        heads[event.stream_id] = dict(event.headers)
                    elif isinstance(event, h2.events.DataReceived):
                        h2conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        head = heads.pop(event.stream_id, {})
                        seen = {"path": head.get(":path"), "method": head.get(":method"),
                                "authority": head.get(":authority"), "protocol": "HTTP/2.0"}
                        self.requests.append(seen)
                        body = json.dumps(seen).encode()
                        h2conn.send_headers(event.stream_id, [(":status", "200"), ("content-type", "application/json"),
                                                              ("content-length", str(len(body)))])
                        h2conn.send_data(event.stream_id, body, end_stream=True)
                conn.sendall(h2conn.data_to_send())
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class TLSWebSocketEcho(WebSocketEcho):
    """The WebSocket echo backend over TLS (``wss``), with its own certificate."""

    def __init__(self, context: ssl.SSLContext):
        self.context = context
        super().__init__()

    def _client(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            wrapped = self.context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        super()._client(wrapped)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-backend-protocol")
    manifests = root / "manifests"
    manifests.mkdir()
    leaf = certs.make_leaf("wss-backend.example")
    (root / "b.crt").write_bytes(leaf.cert_pem)
    (root / "b.key").write_bytes(leaf.key_pem())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(root / "b.crt"), str(root / "b.key"))
    h2c, ws, wss = H2COnly(), WebSocketEcho(), TLSWebSocketEcho(context)
    write_manifests(manifests / "all.yaml", [*yaml.safe_load_all(MANIFESTS), *_service(h2c.port, ws.port, wss.port)])
    ingressd = Ingressd(manifests)
    ingressd.h2c, ingressd.ws, ingressd.wss = h2c, ws, wss
    try:
        wait_for(lambda: ingressd.get("/", host="h2c.example").status == 200, "the h2c route served", timeout=30)
        yield ingressd
    finally:
        ingressd.stop()
        for backend in (h2c, ws, wss):
            backend.stop()


def test_an_h2c_prior_knowledge_request_reaches_the_h2c_backend(server):
    status, body = h2c_get(server.http_port, "h2c.example", "/")
    assert status == 200
    seen = json.loads(body)
    assert seen["protocol"] == "HTTP/2.0" and seen["path"] == "/" and seen["method"] == "GET"


def test_an_http1_request_reaches_the_h2c_backend_over_http2(server):
    response = server.get("/some/path?x=1", host="h2c.example")
    assert response.status == 200
    seen = json.loads(response.body)
    assert seen["protocol"] == "HTTP/2.0" and seen["path"] == "/some/path?x=1"
    assert seen["authority"] == "h2c.example"


def _echo(ws_url: str, host: str, **options) -> None:
    conn = websocket.create_connection(ws_url, host=host, timeout=20, **options)
    try:
        conn.send("Websocket Support!")
        assert conn.recv() == "Websocket Support!"
        conn.send_binary(bytes([1, 2, 3, 4, 5, 6, 7]))
        assert conn.recv() == bytes([1, 2, 3, 4, 5, 6, 7])
    finally:
        conn.close()


def test_a_websocket_reaches_the_ws_backend(server):
    _echo(f"ws://127.0.0.1:{server.http_port}/ws", "ws.example")
    path, headers = server.ws.handshakes[-1]
    assert path == "/ws" and headers["upgrade"].lower() == "websocket"


def test_a_websocket_reaches_the_wss_backend_over_tls(server):
    _echo(f"ws://127.0.0.1:{server.http_port}/ws", "wss.example")
    path, _ = server.wss.handshakes[-1]
    assert path == "/ws"


def test_an_unknown_app_protocol_is_500_and_unsupported(server):
    assert server.get("/", host="unknown.example").status == 500
    _, _, body = server.admin("/routes")
    found = {(item["kind"], item["name"]): item["status"] for item in json.loads(body)["status"]}
    (parent,) = found[("HTTPRoute", "backend-protocol-unknown")]["parents"]
    assert {c["type"]: (c["status"], c["reason"]) for c in parent["conditions"]}["ResolvedRefs"] == (
        "False", "UnsupportedProtocol")
    for name in ("backend-protocol-h2c", "backend-protocol-ws", "backend-protocol-wss"):
        (parent,) = found[("HTTPRoute", name)]["parents"]
        assert {c["type"]: c["status"] for c in parent["conditions"]} == {"Accepted": "True", "ResolvedRefs": "True"}
