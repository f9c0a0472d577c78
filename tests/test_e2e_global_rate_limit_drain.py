"""End to end: two ``twistd ingressd`` replicas share a global limit in one real redis-server; SIGTERM
to one of them under load loses no request (every request sent is answered whole; the clients
retry nothing), and the other keeps limiting, with the count the first one left in Redis."""

from __future__ import annotations

import http.client
import signal
import threading

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, wait_for, write_manifests
from redis_server import RedisServer

pytestmark = pytest.mark.slow

N = "nginx.ingress.kubernetes.io/"
LIMIT = 10
WAIT = 30.0
REQUESTS_PER_LOOP = 400  # the bound of each client loop


@pytest.fixture
def world(tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    web = Backend("web")
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        ingress("limited", [("limited.test", [("/", "Prefix", "web", 80)])], annotations={
            N + "global-rate-limit": str(LIMIT), N + "global-rate-limit-window": "1h",
            N + "global-rate-limit-key": "$http_x_client"}),
    ])
    redis = RedisServer()
    procs = []
    try:
        common = ["--redis", redis.url, "--redis-timeout", "0.5", "--access-log", "off"]
        # the one stopped: --shutdown-delay (listeners still open while /readyz fails), then a grace
        procs.append(Ingressd(manifests, [*common, "--shutdown-delay", "1.5", "--shutdown-grace", "20"],
                              log_path=tmp_path / "a.log"))
        procs.append(Ingressd(manifests, common, log_path=tmp_path / "b.log"))
        for proc in procs:
            wait_for(lambda: b"ingressd_redis_connections 2.0" in proc.admin("/metrics")[2], "connected to redis",
                     timeout=WAIT)
        yield procs
    finally:
        for proc in procs:
            proc.stop()
        redis.stop()
        web.stop()


def keepalive_loop(port: int, name: str, stop: threading.Event, result: dict) -> None:
    """Requests on one keep-alive connection, each from a client of its own (never limited), until
    ingressd says Connection: close, closes the idle connection before a request (RFC 9112 9.3.1:
    nothing was sent, so nothing is lost; this client retries nothing), or ``stop``."""
    result.update(ok=0, failures=[], ended="bound")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        for number in range(REQUESTS_PER_LOOP):
            if stop.is_set():
                result["ended"] = "stopped"
                return
            path = f"/slow?delay=0.05&n={number}" if number % 10 == 0 else f"/n/{number}"
            try:
                conn.request("GET", path, headers={"Host": "limited.test", "X-Client": f"{name}-{number}"})
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if result["ok"]:
                    result["ended"] = "closed while idle"
                else:
                    result["failures"].append("the first request failed")
                return
            try:
                body = response.read()
            except Exception as exc:  # noqa: BLE001 - a response cut short
                result["failures"].append(f"request {number}: {exc!r}")
                return
            if response.status != 200 or path.encode() not in body:
                result["failures"].append(f"request {number}: {response.status} {body[:100]!r}")
                return
            result["ok"] += 1
            if (response.getheader("connection") or "").lower() == "close":
                result["ended"] = "Connection: close"
                return
    finally:
        conn.close()


def in_thread(target, *args):
    result: dict = {}
    thread = threading.Thread(target=target, args=(*args, result), daemon=True)
    thread.start()
    return thread, result


def statuses(proc, count, client="shared"):
    return [proc.get("/", host="limited.test", headers={"X-Client": client}, timeout=WAIT).status
            for _ in range(count)]


def test_sigterm_to_one_replica_under_load_loses_nothing_and_the_other_keeps_limiting(world):
    stopping, staying = world
    # Part of the shared client's limit spent on the replica about to stop.
    assert statuses(stopping, 4) == [200] * 4
    stop = threading.Event()
    loops = [(proc, *in_thread(keepalive_loop, proc.http_port, f"{label}{index}", stop))
             for proc, label in ((stopping, "a"), (staying, "b")) for index in range(3)]
    wait_for(lambda: all(result.get("ok", 0) >= 5 for _, _, result in loops), "the loops under way", timeout=WAIT)

    stopping.process.send_signal(signal.SIGTERM)
    wait_for(lambda: stopping.admin("/readyz")[0] == 503, "/readyz failing on the stopped replica", timeout=WAIT)
    assert stopping.process.wait(WAIT) == 0
    stop.set()
    for _, thread, _ in loops:
        thread.join(WAIT)
        assert not thread.is_alive()
    for proc, _, result in loops:
        assert result["failures"] == [] and result["ok"] > 0, result
        if proc is stopping:  # ended by the drain, never cut
            assert result["ended"] in ("Connection: close", "closed while idle"), result
        else:
            assert result["ended"] in ("stopped", "bound"), result
    assert "drained; exiting" in stopping.log()

    # The other replica keeps limiting, from the count both left in Redis: 4 spent, 6 left.
    answers = statuses(staying, LIMIT)
    assert answers == [200] * (LIMIT - 4) + [429] * 4, answers
    assert staying.get("/", host="limited.test", headers={"X-Client": "new"}).status == 200
