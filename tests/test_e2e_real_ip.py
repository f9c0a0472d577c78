"""End to end: the client's address under each real-IP setting, through the real ``twistd
ingressd``: forwarded-header trust and full-forwarded-for chains from trusted and untrusted
peers (the test's client is 127.0.0.1; "untrusted" is a proxy-real-ip-cidr without it), the
address the access log and an allow list see, and the settings changed live by SIGHUP.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import yaml

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
SPOOF = {"X-Forwarded-For": "203.0.113.7, 10.9.9.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.test",
         "X-Forwarded-Port": "8443", "X-Original-URI": "/admin", "CF-Connecting-IP": "198.51.100.4"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real-ip")
    manifests = folder / "manifests"
    manifests.mkdir()
    web = Backend("web")
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        ingress("app", [("app.test", [("/", "Prefix", "web", 80)]), ("shop.test", [("/", "Prefix", "web", 80)])]),
        ingress("allow", [("allow.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "whitelist-source-range": "203.0.113.0/24"}),
    ])
    yield folder, manifests
    web.stop()


def start(world, *options, name="ingressd"):
    folder, manifests = world
    log = folder / f"{name}-access.log"
    return Ingressd(manifests, ["--access-log", str(log), *options], log_path=folder / f"{name}.log"), log


def echoed(proc, host="app.test", headers=SPOOF, path="/h"):
    response = proc.get(path, host=host, headers=headers)
    assert response.status == 200, response
    pairs = response.json()["headers"]
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), names  # every header sent once
    return dict(pairs)


def logged_client(log, path: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if record.get("path") == path or path in line:
                return record["client"]
        time.sleep(0.1)
    raise AssertionError(f"no access log line for {path}")


@pytest.mark.parametrize("options, client, scheme, host, port", [
    # default: nothing believed (forwarded_headers.go with use-forwarded-headers false)
    pytest.param((), "127.0.0.1", "http", "app.test", None, id="default"),
    # use-forwarded-headers, proxy-real-ip-cidr 0.0.0.0/0: every hop trusted, the left-most
    pytest.param(("--use-forwarded-headers",), "203.0.113.7", "https", "shop.test", "8443", id="use-forwarded-headers"),
    # ... with the hops' network trusted: the right-most untrusted one
    pytest.param(("--use-forwarded-headers", "--proxy-real-ip-cidr", "127.0.0.1/32,10.0.0.0/8"), "203.0.113.7",
                 "https", "shop.test", "8443", id="trusted-chain"),
    # ... from a peer outside proxy-real-ip-cidr: nothing believed
    pytest.param(("--use-forwarded-headers", "--proxy-real-ip-cidr", "10.0.0.0/8"), "127.0.0.1", "http", "app.test",
                 None, id="untrusted-peer"),
    # --trusted-proxies: the same mechanism
    pytest.param(("--trusted-proxies", "127.0.0.1/32"), "10.9.9.9", "https", "shop.test", "8443",
                 id="trusted-proxies"),
    # enable-real-ip: the address only (enable_real_ip.go)
    pytest.param(("--enable-real-ip",), "203.0.113.7", "http", "app.test", None, id="enable-real-ip"),
    # forwarded-for-header names the header the address is read from
    pytest.param(("--enable-real-ip", "--forwarded-for-header", "CF-Connecting-IP"), "198.51.100.4", "http",
                 "app.test", None, id="forwarded-for-header"),
])
def test_who_the_client_is(world, options, client, scheme, host, port):
    proc, log = start(world, *options, name="-".join(options).replace("/", "_").replace(",", "_") or "default")
    try:
        headers = echoed(proc, path="/who")
        assert headers["x-real-ip"] == headers["x-forwarded-for"] == client
        assert headers["x-forwarded-proto"] == scheme
        assert headers["host"] == headers["x-forwarded-host"] == host
        assert headers["x-forwarded-port"] == (port or str(proc.http_port))
        assert logged_client(log, "/who") == client
        assert "x-original-uri" not in headers or options[:1] in (("--use-forwarded-headers",), ("--trusted-proxies",))
        allowed = proc.get("/", host="allow.test", headers=SPOOF).status
        assert allowed == (200 if client.startswith("203.0.113.") else 403)
    finally:
        proc.stop()


def test_compute_full_forwarded_for(world):
    proc, _ = start(world, "--use-forwarded-headers", "--compute-full-forwarded-for",
                    "--proxy-real-ip-cidr", "127.0.0.1/32", "--proxy-add-original-uri-header", name="full")
    try:
        headers = echoed(proc, path="/full?x=1")
        assert headers["x-forwarded-for"] == "203.0.113.7, 10.9.9.9, 127.0.0.1"
        assert headers["x-real-ip"] == "10.9.9.9"  # 10.9.9.9 is not trusted here: the right-most untrusted
        assert headers["x-original-uri"] == "/full?x=1"  # ours, not the client's /admin
    finally:
        proc.stop()
    # from an untrusted peer the chain is not taken: it starts at the peer
    proc, _ = start(world, "--use-forwarded-headers", "--compute-full-forwarded-for",
                    "--proxy-real-ip-cidr", "10.0.0.0/8", name="full-untrusted")
    try:
        headers = echoed(proc)
        assert headers["x-forwarded-for"] == headers["x-real-ip"] == "127.0.0.1"
        assert "x-original-uri" not in headers  # a client's own never passes from an untrusted peer
    finally:
        proc.stop()


def test_generate_request_id_off(world):
    proc, _ = start(world, "--generate-request-id", "off", name="no-request-id")
    try:
        assert "x-request-id" not in echoed(proc)
        assert echoed(proc, headers={"X-Request-ID": "abc-1"})["x-request-id"] == "abc-1"
    finally:
        proc.stop()


def test_settings_change_live_on_sighup(world, tmp_path):
    config = tmp_path / "ingressd.yaml"
    config.write_text(yaml.safe_dump({"proxy-real-ip-cidr": "127.0.0.1/32"}))
    proc, _ = start(world, "--config", str(config), name="live")
    try:
        kept = proc.connection()  # a keep-alive connection open across the change
        try:
            kept.request("GET", "/h", headers={"Host": "app.test", **SPOOF})
            first = dict(json.loads(kept.getresponse().read())["headers"])
            assert first["x-forwarded-for"] == "127.0.0.1"
            config.write_text(yaml.safe_dump({"proxy-real-ip-cidr": "127.0.0.1/32", "use-forwarded-headers": True}))
            os.kill(proc.process.pid, signal.SIGHUP)
            deadline = time.monotonic() + 15
            seen = None
            while time.monotonic() < deadline:
                kept.request("GET", "/h", headers={"Host": "app.test", **SPOOF})
                seen = dict(json.loads(kept.getresponse().read())["headers"])["x-forwarded-for"]
                if seen != "127.0.0.1":
                    break
                time.sleep(0.1)
            assert seen == "10.9.9.9"  # the same connection, the new policy
        finally:
            kept.close()
        assert "applied: --use-forwarded-headers" in proc.log()
    finally:
        proc.stop()
