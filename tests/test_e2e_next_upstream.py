"""proxy-next-upstream end to end: the real ``twistd ingressd`` and real backends that fail in
each way nginx tells apart (closing, answering garbage, 502/503, too slow), behind Services of
several endpoints: each condition, the tries, the timeout, the non-idempotent rule, the body
sent again, never the same endpoint twice while another is ready."""

from __future__ import annotations

import hashlib
import socket
import socketserver
import threading
import time

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, write_manifests
from test_e2e_affinity import pool

pytestmark = pytest.mark.slow

N = "nginx.ingress.kubernetes.io/"
SLOW = 3.0  # seconds a slow backend takes to answer (the routes wait 1)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        server = self.server
        sock = self.request
        sock.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                piece = sock.recv(65536)
                if not piece:
                    return
                data += piece
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                piece = sock.recv(65536)
                if not piece:
                    break
                body += piece
            with server.lock:
                server.seen.append((head.split(b" ", 1)[0].decode(), body))
            mode = server.mode
            if mode == "close":
                return
            if mode == "garbage":
                sock.sendall(b"this is not HTTP\r\n\r\n")
                return
            if mode.startswith("slow"):  # "slow" or "slow:SECONDS"
                time.sleep(float(mode.partition(":")[2] or SLOW))
                status = 200
            else:
                status = int(mode)
            payload = f"{status} from {server.name}".encode()
            sock.sendall(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\nx-backend: %s\r\nconnection: close\r\n\r\n%s"
                         % (status, len(payload), server.name.encode(), payload))
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Faulty:
    """A backend on 127.0.0.1 that fails as ``mode`` says: ``close`` (reads the request, closes
    without a byte), ``garbage`` (a head that is not HTTP), ``slow`` (200 after SLOW seconds;
    ``slow:0.5`` after 0.5), or a status ("503"). ``seen``: (method, body) of each request."""

    def __init__(self, name: str, mode: str):
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.name, self.server.mode = name, mode
        self.server.seen, self.server.lock = [], threading.Lock()
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    @property
    def hits(self) -> int:
        with self.server.lock:
            return len(self.server.seen)

    @property
    def seen(self) -> list:
        with self.server.lock:
            return list(self.server.seen)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("next-upstream")
    manifests = root / "manifests"
    manifests.mkdir()
    ok = Backend("ok")
    f = {name: Faulty(name, mode) for name, mode in (
        ("closer", "close"), ("closer2", "close"), ("closer3", "close"), ("garbage", "garbage"),
        ("s503", "503"), ("s503b", "503"), ("s502", "502"), ("slow", "slow"), ("slow2", "slow"))}

    def route(name, host, ports, annotations=None):
        return [*pool(name, ports), ingress(name, [(host, [("/", "Prefix", name, 80)])],
                                           annotations={N + "proxy-read-timeout": "1", **(annotations or {})})]

    objects = [
        INGRESS_CLASS,
        *route("plain", "plain.test", [f["closer"].port, ok.port]),
        *route("nonidem", "nonidem.test", [f["closer"].port, ok.port],
               {N + "proxy-next-upstream": "error timeout non_idempotent"}),
        *route("status", "status.test", [f["s503"].port, ok.port], {N + "proxy-next-upstream": "error http_503"}),
        *route("unlisted", "unlisted.test", [f["s502"].port, ok.port], {N + "proxy-next-upstream": "http_503"}),
        *route("last", "last.test", [f["s503"].port, f["s503b"].port],
               {N + "proxy-next-upstream": "http_503", N + "proxy-next-upstream-tries": "2"}),
        *route("tries2", "tries2.test", [f[n].port for n in ("closer", "closer2", "closer3")],
               {N + "proxy-next-upstream-tries": "2"}),
        *route("tries0", "tries0.test", [f[n].port for n in ("closer", "closer2", "closer3")],
               {N + "proxy-next-upstream-tries": "0"}),
        *route("off", "off.test", [f[n].port for n in ("closer", "closer2", "closer3")],
               {N + "proxy-next-upstream": "off"}),
        *route("slow", "slow.test", [f["slow"].port, ok.port]),
        *route("erroronly", "erroronly.test", [f["slow"].port, f["slow2"].port], {N + "proxy-next-upstream": "error"}),
        *route("deadline", "deadline.test", [f["slow"].port, f["slow2"].port],
               {N + "proxy-next-upstream-timeout": "1"}),
        *route("garbage", "garbage.test", [f["garbage"].port, ok.port]),
        *route("invalid", "invalid.test", [f["garbage"].port, ok.port],
               {N + "proxy-next-upstream": "error invalid_header"}),
    ]
    write_manifests(manifests / "all.yaml", objects)
    proc = Ingressd(manifests)
    yield proc, ok, f
    proc.stop()
    ok.stop()
    for backend in f.values():
        backend.stop()


def _ok_hits(ok, host):
    return sum(1 for _, _, headers, _ in list(ok.requests)
               if any(name.lower() == "host" and value == host for name, value in headers))


def test_error_is_retried_on_the_other_endpoint_by_default(world):
    proc, ok, f = world
    before = f["closer"].hits
    answers = [proc.get("/x", host="plain.test") for _ in range(6)]
    assert [answer.status for answer in answers] == [200] * 6
    assert all(answer.json()["backend"] == "ok" for answer in answers)
    assert 1 <= f["closer"].hits - before <= 6  # round-robin: some requests met it first, each once


def test_a_post_sent_is_not_retried_without_non_idempotent(world):
    proc, ok, f = world
    before_closer, before_ok = f["closer"].hits, _ok_hits(ok, "plain.test")
    statuses = [proc.get("/form", host="plain.test", method="POST", body=b"a=1").status for _ in range(4)]
    assert sorted(statuses) == [200, 200, 502, 502]  # round-robin: half met the closing endpoint first
    assert f["closer"].hits - before_closer == 2 and _ok_hits(ok, "plain.test") - before_ok == 2


def test_with_non_idempotent_a_post_is_sent_again_body_and_all(world):
    proc, ok, f = world
    body = b"payload-" * 20000  # 160 kB: a body held in memory and a file
    for _ in range(4):
        answer = proc.get("/form", host="nonidem.test", method="POST", body=body,
                          headers={"Content-Type": "application/octet-stream"})
        assert answer.status == 200
        assert answer.json()["sha256"] == hashlib.sha256(body).hexdigest()
    sent_to_closer = [seen for seen in f["closer"].seen if seen[0] == "POST" and seen[1].startswith(b"payload-")]
    assert sent_to_closer and all(seen[1] == body for seen in sent_to_closer)


def test_a_listed_status_is_passed_over(world):
    proc, ok, f = world
    before = f["s503"].hits
    answers = [proc.get("/", host="status.test") for _ in range(4)]
    assert [answer.status for answer in answers] == [200] * 4
    # each request meets s503 at most once; the retry takes the next turn of the round-robin, so
    # after the first request every one meets it first, as in nginx (the endpoints' order is the ports')
    assert f["s503"].hits - before in (3, 4)


def test_a_status_not_listed_is_the_answer(world):
    proc, ok, f = world
    answers = [proc.get("/", host="unlisted.test") for _ in range(4)]
    assert sorted(answer.status for answer in answers) == [200, 200, 502, 502]
    assert {answer.body for answer in answers if answer.status == 502} == {b"502 from s502"}  # the backend's own


def test_with_no_try_left_the_last_answer_is_passed_through(world):
    proc, ok, f = world
    before = f["s503"].hits + f["s503b"].hits
    answer = proc.get("/", host="last.test")
    assert answer.status == 503 and answer.body in (b"503 from s503", b"503 from s503b")
    assert f["s503"].hits + f["s503b"].hits - before == 2


@pytest.mark.parametrize("host, tries", [("tries2.test", 2), ("tries0.test", 3), ("off.test", 1)])
def test_tries(world, host, tries):
    proc, ok, f = world
    closers = [f[name] for name in ("closer", "closer2", "closer3")]
    before = [closer.hits for closer in closers]
    for _ in range(3):
        assert proc.get("/", host=host).status == 502
    after = [closer.hits for closer in closers]
    assert sum(after) - sum(before) == 3 * tries
    if tries == 3:  # 0: no limit, each endpoint once per request
        assert [a - b for a, b in zip(after, before)] == [3, 3, 3]


def test_a_timeout_is_retried_by_default(world):
    proc, ok, f = world
    answers = [proc.get("/", host="slow.test") for _ in range(2)]
    assert [answer.status for answer in answers] == [200, 200]


def test_error_alone_does_not_retry_a_timeout(world):
    proc, ok, f = world
    before = f["slow"].hits + f["slow2"].hits
    assert proc.get("/", host="erroronly.test").status == 504
    assert f["slow"].hits + f["slow2"].hits - before == 1


def test_next_upstream_timeout_stops_the_tries(world):
    proc, ok, f = world
    before = f["slow"].hits + f["slow2"].hits
    assert proc.get("/", host="deadline.test").status == 504  # a 1 s read timeout spent the 1 s
    assert f["slow"].hits + f["slow2"].hits - before == 1


def test_invalid_header_only_when_listed(world):
    proc, ok, f = world
    assert sorted(proc.get("/", host="garbage.test").status for _ in range(4)) == [200, 200, 502, 502]
    assert [proc.get("/", host="invalid.test").status for _ in range(4)] == [200] * 4


def test_the_access_log_lists_every_try_and_never_the_same_endpoint_twice(world):
    import json

    proc, ok, f = world
    assert proc.get("/logged", host="tries0.test").status == 502
    ports = {f[name].port for name in ("closer", "closer2", "closer3")}
    deadline = time.monotonic() + 20
    line = None
    while line is None and time.monotonic() < deadline:  # access-log lines leave in batches
        for text in proc.log().splitlines():
            if '"uri":"/logged"' in text and '"host":"tries0.test"' in text:
                line = json.loads(text)
        time.sleep(0.05)
    assert line is not None
    addresses = line["upstream_address"].split(", ")
    assert {int(address.rsplit(":", 1)[1]) for address in addresses} == ports and len(addresses) == 3
    assert line["upstream_status"] == "502, 502, 502" and line["status"] == 502
