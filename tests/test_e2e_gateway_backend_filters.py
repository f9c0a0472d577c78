"""Per-backendRef filters against the real ``twistd ingressd`` in file mode: the conformance cases
HTTPRouteRequestHeaderModifierBackendWeights (each request carries the header of the backend
that got it), the backend-level RequestHeaderModifier manifest, HTTPRouteBackendRequestRedirect
and HTTPRouteBackendURLRewrite (kubernetes-sigs/gateway-api ``conformance/tests``)."""

from __future__ import annotations

import pytest
import yaml

from backends import Backend
from gateway_manifests import GROUP, INFRA, SAME_NAMESPACE_GATEWAY
from harness import Ingressd, service, wait_for, write_manifests

pytestmark = pytest.mark.slow


MANIFESTS = SAME_NAMESPACE_GATEWAY + f"""
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: request-header-modifier-backend-weights, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  hostnames: [weights.example]
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
      weight: 10
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {{set: [{{name: Backend, value: infra-backend-v1}}]}}
    - name: infra-backend-v2
      port: 8080
      weight: 10
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {{set: [{{name: Backend, value: infra-backend-v2}}]}}
---
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: request-header-modifier, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  hostnames: [headers.example]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /set}}}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {{set: [{{name: X-Header-Set, value: set-overwrites-values}}]}}
  - matches: [{{path: {{type: PathPrefix, value: /add}}}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {{add: [{{name: X-Header-Add, value: add-appends-values}}]}}
  - matches: [{{path: {{type: PathPrefix, value: /remove}}}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {{remove: [X-Header-Remove]}}
---
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: backend-request-redirect, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  hostnames: [redirect.example]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /full}}}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: RequestRedirect
        requestRedirect: {{path: {{type: ReplaceFullPath, replaceFullPath: /redirected-full}}}}
  - matches: [{{path: {{type: PathPrefix, value: /prefix}}}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: RequestRedirect
        requestRedirect: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /redirected-prefix}}}}
---
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: backend-url-rewrite, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  hostnames: [rewrite.example]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /full}}}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: URLRewrite
        urlRewrite: {{path: {{type: ReplaceFullPath, replaceFullPath: /rewritten-full}}}}
  - matches: [{{path: {{type: PathPrefix, value: /prefix}}}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: URLRewrite
        urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /rewritten-prefix}}}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-backend-filters")
    manifests = root / "manifests"
    manifests.mkdir()
    backends = {name: Backend(name) for name in ("infra-backend-v1", "infra-backend-v2")}
    objects = list(yaml.safe_load_all(MANIFESTS))
    for name, backend in backends.items():
        objects += service(name, [("http", 8080, backend.port)], namespace=INFRA)
    write_manifests(manifests / "all.yaml", objects)
    ingressd = Ingressd(manifests)
    try:
        wait_for(lambda: ingressd.get("/", host="weights.example").status == 200, "the routes served")
        wait_for(lambda: ingressd.get("/full", host="rewrite.example").status == 200, "every route served")
        yield ingressd
    finally:
        ingressd.stop()
        for backend in backends.values():
            backend.stop()


def headers_seen(response) -> dict:
    found: dict = {}
    for name, value in response.json()["headers"]:
        found.setdefault(name, []).append(value)
    return found


def test_request_header_modifier_backend_weights(server):
    seen = set()
    for _ in range(100):
        response = server.get("/", host="weights.example", headers={"Backend": "client"})
        assert response.status == 200
        backend = response.headers.get("x-backend")
        assert headers_seen(response)["backend"] == [backend]  # exactly one, the chosen backend's
        seen.add(backend)
    assert seen == {"infra-backend-v1", "infra-backend-v2"}


@pytest.mark.parametrize("path, sent, expected, absent", [
    ("/set", {"X-Header-Set": "some-other-value"}, {"x-header-set": "set-overwrites-values"}, ()),
    ("/add", {"X-Header-Add": "something"}, {"x-header-add": "something,add-appends-values"}, ()),
    ("/remove", {"X-Header-Remove": "val"}, {}, ("x-header-remove",)),
])
def test_backend_level_request_header_modifier(server, path, sent, expected, absent):
    response = server.get(path, host="headers.example", headers=sent)
    assert response.status == 200
    seen = headers_seen(response)
    for name, value in expected.items():  # an added value arrives as its own line or joined with ","
        assert ",".join(seen[name]).replace(", ", ",") == value
    for name in absent:
        assert name not in seen


@pytest.mark.parametrize("path, location", [
    ("/full/original", "http://redirect.example/redirected-full"),
    ("/prefix/original", "http://redirect.example/redirected-prefix/original"),
])
def test_backend_request_redirect(server, path, location):
    response = server.get(path, host="redirect.example")
    assert (response.status, response.headers.get("location")) == (302, location)


@pytest.mark.parametrize("path, seen", [
    ("/full/original", "/rewritten-full"),
    ("/prefix/original", "/rewritten-prefix/original"),
])
def test_backend_url_rewrite(server, path, seen):
    response = server.get(path, host="rewrite.example")
    assert response.status == 200 and response.json()["path"] == seen
