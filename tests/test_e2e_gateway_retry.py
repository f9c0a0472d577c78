"""The conformance cases HTTPRouteRetry, HTTPRouteRetryConnectionError and
HTTPRouteRetryWithTimeouts (kubernetes-sigs/gateway-api ``conformance/tests/httproute-retry*``)
against the real ``twistd ingressd`` in file mode, with a backend that simulates failures as the
conformance echo server does: per ``uuid``, the first ``succeedAfter`` requests fail, with
``responseCode`` or, without one, by resetting the connection, after ``delayRetry``. The
timeouts of HTTPRouteRetryWithTimeouts are five times the suite's (1 s and 2 s for 200 ms and
400 ms) and its delays longer still, so that a loaded machine cannot turn one answer into
another."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import yaml

from backends import Backend, EchoHandler
from gateway_manifests import GROUP, INFRA, SAME_NAMESPACE_GATEWAY
from harness import Ingressd, service, wait_for, write_manifests

pytestmark = pytest.mark.slow

BACKEND_TIMEOUT, REQUEST_TIMEOUT = "1s", "2s"

MANIFESTS = SAME_NAMESPACE_GATEWAY + f"""
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: retries, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /retry/code-500-attempts-3}}}}]
    retry: {{codes: [500], attempts: 3}}
    backendRefs: [{{name: infra-backend-v3, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /retry/code-all-attempts-2}}}}]
    retry: {{codes: [500, 502, 503, 504], attempts: 2}}
    backendRefs: [{{name: infra-backend-v3, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /retry/backoff}}}}]
    retry: {{codes: [500], attempts: 2, backoff: 1s}}
    backendRefs: [{{name: infra-backend-v3, port: 8080}}]
---
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: retries-connection-error, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /retry/no-status-code-attempts-3}}}}]
    retry: {{attempts: 3}}
    backendRefs: [{{name: infra-backend-v3, port: 8080}}]
---
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: retries-with-timeouts, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /retry/backend-request-timeout}}}}]
    retry: {{attempts: 2}}
    timeouts: {{backendRequest: {BACKEND_TIMEOUT}}}
    backendRefs: [{{name: infra-backend-v3, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /retry/request-timeout}}}}]
    retry: {{codes: [500], attempts: 5}}
    timeouts: {{backendRequest: {BACKEND_TIMEOUT}, request: {REQUEST_TIMEOUT}}}
    backendRefs: [{{name: infra-backend-v3, port: 8080}}]
"""


class Simulating(EchoHandler):
    """The conformance echo server's retry simulation (``responseCode``, ``succeedAfter``,
    ``delayRetry``, counted per ``uuid``); the times each request came are kept."""

    counts: dict = {}
    arrivals: dict = {}
    lock = threading.Lock()

    def _handle(self):
        query = parse_qs(urlsplit(self.path).query)
        key = (query.get("uuid") or [""])[0]
        with self.lock:
            count = self.counts[key] = self.counts.get(key, 0) + 1
            self.arrivals.setdefault(key, []).append(time.monotonic())
        succeed_after = int((query.get("succeedAfter") or ["0"])[0])
        if count <= succeed_after:
            delay = (query.get("delayRetry") or [""])[0]
            if delay:
                time.sleep(float(delay.rstrip("ms")) / (1000 if delay.endswith("ms") else 1))
            code = (query.get("responseCode") or [""])[0]
            if not code:  # a connection error: reset, no answer
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(int(code))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super()._handle()

    do_GET = do_POST = _handle


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-retry")
    manifests = root / "manifests"
    manifests.mkdir()
    backend = Backend("infra-backend-v3", handler=Simulating)
    objects = [*yaml.safe_load_all(MANIFESTS), *service("infra-backend-v3", [("http", 8080, backend.port)],
                                                        namespace=INFRA)]
    write_manifests(manifests / "all.yaml", objects)
    ingressd = Ingressd(manifests)
    try:
        wait_for(lambda: ingressd.get("/retry/code-500-attempts-3").status == 200, "the routes served", timeout=30)
        yield ingressd
    finally:
        ingressd.stop()
        backend.stop()


def _send(server, path: str, **simulation) -> tuple[int, str]:
    key = str(uuid.uuid4())
    response = server.get(f"{path}?{urlencode({**simulation, 'uuid': key})}", timeout=60)
    return response.status, key


@pytest.mark.parametrize("path, code, succeed_after, expected", [
    ("/retry/code-500-attempts-3", 500, 2, 200),
    ("/retry/code-500-attempts-3", 500, 4, 500),
    ("/retry/code-500-attempts-3", 503, 2, 503),  # 503 is not among its codes: not retried
    ("/retry/code-all-attempts-2", 500, 1, 200),
    ("/retry/code-all-attempts-2", 500, 3, 500),
    ("/retry/code-all-attempts-2", 502, 1, 200),
    ("/retry/code-all-attempts-2", 502, 3, 502),
    ("/retry/code-all-attempts-2", 503, 1, 200),
    ("/retry/code-all-attempts-2", 503, 3, 503),
    ("/retry/code-all-attempts-2", 504, 1, 200),
    ("/retry/code-all-attempts-2", 504, 3, 504),
])
def test_retry(server, path, code, succeed_after, expected):
    status, key = _send(server, path, responseCode=code, succeedAfter=succeed_after)
    assert status == expected
    attempts = 3 if "attempts-3" in path else 2
    tries = 1 if code == 503 and "500" in path else min(succeed_after, attempts) + 1
    assert Simulating.counts[key] == tries


@pytest.mark.parametrize("succeed_after, expected", [(2, 200), (4, 503)])
def test_retry_connection_error(server, succeed_after, expected):
    status, key = _send(server, "/retry/no-status-code-attempts-3", succeedAfter=succeed_after)
    assert status == expected  # the suite takes 500 or 503 once the retries are spent
    assert Simulating.counts[key] == min(succeed_after, 3) + 1


@pytest.mark.parametrize("path, simulation, expected", [
    # each try cut at 1 s by backendRequest; attempts 2: three tries
    ("/retry/backend-request-timeout", {"responseCode": 500, "succeedAfter": 2, "delayRetry": "3s"}, 200),
    ("/retry/backend-request-timeout", {"responseCode": 500, "succeedAfter": 3, "delayRetry": "3s"}, 504),
    # retries well within the 2 s request timeout, and failures that together pass it
    ("/retry/request-timeout", {"responseCode": 500, "succeedAfter": 1}, 200),
    ("/retry/request-timeout", {"responseCode": 500, "succeedAfter": 4, "delayRetry": "800ms"}, 504),
])
def test_retry_with_timeouts(server, path, simulation, expected):
    status, _ = _send(server, path, **simulation)
    assert status == expected


def test_the_backoff_separates_the_tries(server):
    status, key = _send(server, "/retry/backoff", responseCode=500, succeedAfter=2)
    assert status == 200
    first, second, third = Simulating.arrivals[key]
    assert second - first >= 0.9 and third - second >= 0.9  # at least the 1 s backoff (a minimum, not a speed)


def test_the_routes_are_accepted(server):
    _, _, body = server.admin("/routes")
    found = {(item["kind"], item["name"]): item["status"] for item in json.loads(body)["status"]}
    for name in ("retries", "retries-connection-error", "retries-with-timeouts"):
        (parent,) = found[("HTTPRoute", name)]["parents"]
        assert {c["type"]: c["status"] for c in parent["conditions"]} == {"Accepted": "True", "ResolvedRefs": "True"}
