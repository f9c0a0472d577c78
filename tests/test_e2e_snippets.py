"""End to end: configuration-snippet and server-snippet, read as data, through the real ``twistd ingressd``."""

from __future__ import annotations

import json

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"

LOCATION = """
more_set_headers "X-Frame-Options: DENY";
add_header X-Added yes;
more_set_input_headers "X-From-Snippet: $host";
proxy_set_header X-Uri $request_uri;
rewrite ^/old/(.*)$ /new/$1 break;
if ($arg_teapot) {
    return 418 "short and stout";
}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    manifests = tmp_path_factory.mktemp("snippets")
    web = Backend("web")
    objects = [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        ingress("location", [("snip.test", [("/", "Prefix", "web", 80)])], annotations={
            N + "configuration-snippet": LOCATION}),
        # the server-snippet of the oldest Ingress serves every route of its host
        ingress("server", [("srv.test", [("/", "Prefix", "web", 80)])], created="2026-01-01T00:00:00Z",
                annotations={N + "server-snippet": 'if ($host = srv.test) { rewrite ^/legacy(.*) /modern$1; }\n'
                                                   "deny 192.0.2.0/24;\nmore_set_headers 'X-Server: 1';"}),
        ingress("server-other", [("srv.test", [("/other", "Prefix", "web", 80)])],
                annotations={N + "server-snippet": "return 500;"}),
        ingress("closed", [("closed.test", [("/", "Prefix", "web", 80)])], annotations={
            N + "configuration-snippet": 'more_set_headers "X-A: b";\naccess_by_lua_block { ngx.exit(403) }'}),
        ingress("denied", [("denied.test", [("/", "Prefix", "web", 80)])], annotations={
            N + "configuration-snippet": "allow 10.0.0.0/8;\ndeny all;"}),
    ]
    write_manifests(manifests / "all.yaml", objects)
    proc = Ingressd(manifests)
    yield proc, web
    proc.stop()
    web.stop()


def backend_saw(response):
    assert response.status == 200, (response.status, response.body[:200])
    seen = json.loads(response.body)
    return seen["path"], {k.lower(): v for k, v in seen["headers"]}


def test_headers_the_client_and_the_backend_get(world):
    proc, _ = world
    response = proc.get("/old/page?q=1", host="snip.test")
    path, headers = backend_saw(response)
    assert path == "/new/page?q=1"
    assert headers["x-from-snippet"] == "snip.test" and headers["x-uri"] == "/old/page?q=1"
    assert response.headers.get("x-frame-options") == "DENY" and response.headers.get("x-added") == "yes"


def test_return_with_a_body(world):
    proc, _ = world
    response = proc.get("/?teapot=1", host="snip.test")
    assert response.status == 418 and response.body == b"short and stout"
    assert response.headers.get("x-frame-options") == "DENY" and response.headers.get("x-added") is None


def test_a_server_snippet_serves_every_route_of_its_host(world):
    proc, _ = world
    path, _ = backend_saw(proc.get("/legacy/x", host="srv.test"))
    assert path == "/modern/x"
    response = proc.get("/other/y", host="srv.test")  # the other Ingress's route: the oldest's snippet
    assert backend_saw(response)[0] == "/other/y" and response.headers.get("x-server") == "1"


def test_allow_deny(world):
    proc, _ = world
    assert proc.get("/", host="denied.test").status == 403  # 127.0.0.1 is not in 10.0.0.0/8


def test_an_unsupported_snippet_fails_closed_with_its_line(world):
    proc, _ = world
    assert proc.get("/", host="closed.test").status == 404
    _, _, body = proc.admin("/routes")
    rejected = {item["name"]: item for item in json.loads(body)["rejections"] if item["kind"] == "Ingress"}
    assert "line 2: directive access_by_lua_block is not supported" in json.dumps(rejected["closed"])
