"""The conformance cases HTTPRouteTimeoutRequest and HTTPRouteTimeoutBackendRequest
(kubernetes-sigs/gateway-api ``conformance/tests/httproute-timeout-*``) against the real
``twistd ingressd`` in file mode, with a backend that answers after ``?delay=`` seconds as the
conformance echo server does. The limits are longer than the conformance suite's 500 ms so that
a loaded machine does not turn an answer in time into a 504; the delays twice as long."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from backends import Backend, EchoHandler
from gateway_manifests import GROUP, INFRA, SAME_NAMESPACE_GATEWAY
from harness import Ingressd, service, wait_for, write_manifests

pytestmark = pytest.mark.slow

LIMIT, SLOW = "2s", 4.0

MANIFESTS = SAME_NAMESPACE_GATEWAY + f"""
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: request-timeout, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  hostnames: [timeouts.example]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /request-timeout}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
    timeouts: {{request: {LIMIT}}}
  - matches: [{{path: {{type: PathPrefix, value: /disable-request-timeout}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
    timeouts: {{request: "0s"}}
---
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: backend-request-timeout, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  hostnames: [timeouts.example]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /backend-timeout}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
    timeouts: {{backendRequest: {LIMIT}}}
  - matches: [{{path: {{type: PathPrefix, value: /disable-backend-timeout}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
    timeouts: {{backendRequest: "0s"}}
"""


class Delaying(EchoHandler):
    """The echo backend, answering after ``?delay=`` seconds (the conformance echo server's)."""

    def _handle(self):
        delay = parse_qs(urlsplit(self.path).query).get("delay")
        if delay:
            time.sleep(float(delay[0].rstrip("s")))
        super()._handle()

    do_GET = do_POST = _handle


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-timeouts")
    manifests = root / "manifests"
    manifests.mkdir()
    backend = Backend("infra-backend-v1", handler=Delaying)
    objects = [*yaml.safe_load_all(MANIFESTS), *service("infra-backend-v1", [("http", 8080, backend.port)],
                                                        namespace=INFRA)]
    write_manifests(manifests / "all.yaml", objects)
    ingressd = Ingressd(manifests)
    try:
        wait_for(lambda: ingressd.get("/request-timeout", host="timeouts.example").status == 200,
                 "the routes served")
        yield ingressd
    finally:
        ingressd.stop()
        backend.stop()


def status(server, path: str) -> int:
    return server.get(path, host="timeouts.example", timeout=60).status


@pytest.mark.parametrize("path, expected", [
    ("/request-timeout", 200),
    (f"/request-timeout?delay={SLOW}s", 504),
    (f"/disable-request-timeout?delay={SLOW}s", 200),
])
def test_request_timeout(server, path, expected):
    assert status(server, path) == expected


@pytest.mark.parametrize("path, expected", [
    ("/backend-timeout", 200),
    (f"/backend-timeout?delay={SLOW}s", 504),  # each try (proxy-next-upstream's three) cut at 2 s
    (f"/disable-backend-timeout?delay={SLOW}s", 200),
])
def test_backend_request_timeout(server, path, expected):
    assert status(server, path) == expected


def test_the_routes_are_accepted_with_their_timeouts(server):
    _, _, body = server.admin("/routes")
    found = {(item["kind"], item["name"]): item["status"] for item in json.loads(body)["status"]}
    for name in ("request-timeout", "backend-request-timeout"):
        (parent,) = found[("HTTPRoute", name)]["parents"]
        assert {c["type"]: c["status"] for c in parent["conditions"]} == {"Accepted": "True",
                                                                           "ResolvedRefs": "True"}
