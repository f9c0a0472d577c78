"""End to end: default-backend and disable-proxy-intercept-errors through the real ``twistd ingressd``.

Re-enacts ingress-nginx's test/e2e/annotations/default_backend.go and
disableproxyintercepterrors.go over loopback, with echo backends that answer with the
request they received (so a test sees the headers the default backend got).
"""

from __future__ import annotations

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, free_port, ingress, service, write_manifests

pytestmark = pytest.mark.slow

NGINX = "nginx.ingress.kubernetes.io/"


def one(name: str, svc: str, **annotations: str) -> dict:
    return ingress(name, [(f"{name}.test", [("/", "Prefix", svc, 80)])],
                   annotations={NGINX + key.replace("_", "-"): value for key, value in annotations.items()})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-error-pages")
    manifests = root / "manifests"
    manifests.mkdir()
    web, errors, fallback = Backend("web"), Backend("errors"), Backend("fallback")
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        *service("errors", [("http", 80, errors.port)]),
        *service("fallback", [("http", 80, fallback.port)]),
        *service("down", [("http", 80, web.port)], ready=False),
        *service("no-endpoints", [("http", 80, errors.port)], endpoints=None),
        *service("errdown", [("http", 80, free_port())]),
        one("default-backend", "invalid", default_backend="errors"),  # default_backend.go: no such Service
        one("not-ready", "down", default_backend="errors"),
        one("has-endpoints", "web", default_backend="errors"),
        one("empty-default", "down", default_backend="no-endpoints"),
        one("dead-default", "down", default_backend="errdown"),
        one("both", "invalid", default_backend="errors", custom_http_errors="404"),
        one("pie", "web", default_backend="errors", custom_http_errors="404,413", proxy_body_size="1k",
            disable_proxy_intercept_errors="true"),
        one("pie-on", "web", default_backend="errors", custom_http_errors="404,413",
            disable_proxy_intercept_errors="false"),
        one("global-pages", "down", custom_http_errors="503"),  # no annotation: the global default backend
    ])
    proc = Ingressd(manifests, ["--default-backend-service", "default/fallback"])
    yield proc, web, errors
    proc.stop()
    for backend in (web, errors, fallback):
        backend.stop()


def seen(response) -> dict:
    return dict(response.json()["headers"])


@pytest.mark.parametrize("host, service_name", [("default-backend.test", "invalid"), ("not-ready.test", "down")])
def test_requests_go_to_the_default_backend_when_the_service_has_no_endpoints(world, host, service_name):
    """default_backend.go: the custom default backend is the location's upstream; it gets
    the request as it came, with X-Code 503 and the X-* headers, and the client its answer."""
    proc, _, errors = world
    response = proc.get("/alma/armud?x=1", host=host, method="POST", body=b"payload",
                        headers={"X-Request-ID": "something-unique", "Accept": "application/json",
                                 "X-Code": "200"})
    assert response.status == 200  # the default backend's own answer
    answer = response.json()
    assert answer["backend"] == "errors"
    assert (answer["method"], answer["path"], answer["body"]) == ("POST", "/alma/armud?x=1", "payload")
    headers = seen(response)
    assert headers["x-code"] == "503"
    assert headers["x-format"] == "application/json"
    assert headers["x-namespace"] == "default"
    assert headers["x-ingress-name"] == host.removesuffix(".test")
    assert headers["x-service-name"] == service_name and headers["x-service-port"] == "80"
    assert headers["x-request-id"] == "something-unique"
    assert headers["host"] == host and headers["x-forwarded-host"] == host
    assert "x-original-uri" not in headers  # only the error-page location sets it
    assert [name for name, _ in answer["headers"]].count("x-code") == 1


def test_default_backend_status_is_relayed(world):
    proc, _, errors = world
    response = proc.get("/status/418", host="default-backend.test")
    assert response.status == 418 and response.body == b"status 418 from errors"


def test_service_with_endpoints_is_used(world):
    proc, *_ = world
    response = proc.get("/", host="has-endpoints.test")
    assert response.json()["backend"] == "web" and "x-code" not in seen(response)


def test_a_default_backend_without_endpoints_is_no_fallback(world):
    proc, *_ = world
    response = proc.get("/", host="empty-default.test")
    assert response.status == 503 and b"503 Service Temporarily Unavailable" in response.body


def test_a_dead_default_backend_is_a_bad_gateway(world):
    proc, *_ = world
    assert proc.get("/", host="dead-default.test").status == 502


def test_the_default_backends_errors_are_intercepted_too(world):
    """custom-http-errors on the same Ingress: the default backend's 404 is replaced with
    its error page (X-Code 404), with the original status (ingress-nginx relays the page's)."""
    proc, *_ = world
    response = proc.get("/status/404", host="both.test")
    assert response.status == 404
    page = seen(response)
    assert page["x-code"] == "404" and page["x-original-uri"] == "/status/404"
    assert response.json()["path"] == "/"


def test_disable_proxy_intercept_errors(world):
    """disableproxyintercepterrors.go: with the annotation true the backend's 404 reaches
    the client as it is; false: the error page replaces it."""
    proc, *_ = world
    passed = proc.get("/status/404", host="pie.test", headers={"X-Request-ID": "proxy_intercept_errors"})
    assert passed.status == 404 and passed.body == b"status 404 from web"
    replaced = proc.get("/status/404", host="pie-on.test", headers={"X-Request-ID": "proxy_intercept_errors"})
    assert replaced.status == 404  # ingress-nginx: the error backend's 200
    page = seen(replaced)
    assert page["x-code"] == "404" and page["x-ingress-name"] == "pie-on"
    assert page["x-service-name"] == "web" and page["x-request-id"] == "proxy_intercept_errors"


def test_disable_proxy_intercept_errors_keeps_pages_for_ingressds_own_errors(world):
    """proxy_intercept_errors is about the backend's responses; nginx's own errors (here
    413) still go to error_page."""
    proc, *_ = world
    response = proc.get("/upload", host="pie.test", method="POST", body=b"x" * 2048)
    assert response.status == 413 and seen(response)["x-code"] == "413"


def test_without_the_annotation_pages_come_from_the_global_default_backend(world):
    proc, *_ = world
    response = proc.get("/", host="global-pages.test")
    assert response.status == 503 and response.json()["backend"] == "fallback"
    assert seen(response)["x-code"] == "503"
