"""ingressd check --redis URL: one line per finding about the Redis ingressd would use; exit status 3
when it cannot be used."""

from __future__ import annotations

import io

import yaml

from harness import free_port, ingress, service
from ingressd.compat.check import main
from redis_server import RedisServer, redis_server  # noqa: F401  (fixture)


def check(*args):
    out = io.StringIO()
    status = main(list(args), stdout=out)
    return status, out.getvalue()


def test_a_usable_redis(redis_server):
    status, text = check("--redis", redis_server.url)
    lines = text.splitlines()
    assert status == 0, text
    assert lines[0] == f"redis: ok: connected to redis://127.0.0.1:{redis_server.port}/0"
    assert lines[1].startswith("redis: ok: the server answers (redis_version ")
    assert lines[2] == "redis: ok: the decision scripts load (SCRIPT LOAD)"
    assert lines[3].startswith("redis: ok: 5 PINGs: min ") and lines[3].endswith("(--redis-timeout 5 ms)")
    assert len(lines) == 4
    # a timeout no round trip can meet: a warning, not a failure
    status, text = check("--redis", redis_server.url, "--redis-timeout", "0.000001")
    assert status == 0 and "redis: warning: 5 PINGs" in text and "would time out" in text


def test_passwords_and_acl_users():
    server = RedisServer(password="secret")
    try:
        base = f"127.0.0.1:{server.port}"
        status, text = check("--redis", f"redis://:secret@{base}/2")
        assert status == 0 and "redis: ok: AUTH accepted\n" in text and ", database 2)" not in text
        assert "database 2" in text
        status, text = check("--redis", f"redis://:wrong@{base}")
        assert status == 3 and "redis: problem: AUTH refused: WRONGPASS" in text
        assert text.count("\n") == 2  # connected, refused: nothing after the failed step
        status, text = check("--redis", f"redis://{base}")
        assert status == 3 and "redis: problem: PING refused: NOAUTH" in text and "--redis-secret" in text
        server.command("ACL", "SETUSER", "limiter", "on", ">pw", "~*", "+@all")
        status, text = check("--redis", f"redis://limiter:pw@{base}")
        assert status == 0 and "redis: ok: AUTH accepted as limiter" in text
        server.command("ACL", "SETUSER", "noscripts", "on", ">pw", "~*", "+@all", "-script")
        status, text = check("--redis", f"redis://noscripts:pw@{base}")
        assert status == 3 and "redis: problem: the sliding window (global-rate-limit) script does not load" in text
    finally:
        server.stop()


def test_nothing_there_and_a_replica(tmp_path, monkeypatch):
    status, text = check("--redis", f"redis://127.0.0.1:{free_port()}")
    assert status == 3 and text.startswith("redis: problem: cannot connect to redis://127.0.0.1:")
    monkeypatch.chdir(tmp_path)  # where the servers write their replication files
    master, replica = RedisServer(), RedisServer()
    try:
        replica.command("REPLICAOF", "127.0.0.1", str(master.port))
        status, text = check("--redis", replica.url)
        assert status == 3 and "redis: problem: the server is a slave, not a master" in text
    finally:
        master.stop()
        replica.stop()


def test_sentinels_asked_in_turn(redis_server):
    status, text = check("--redis", f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{redis_server.port}/mymaster")
    # a plain Redis is no sentinel: both sentinels fail, and the master is not found
    assert status == 3
    assert text.count("redis: warning: sentinel 127.0.0.1:") == 2
    assert text.splitlines()[-1] == "redis: problem: no sentinel gave the master mymaster"


def test_global_limits_are_judged_served_with_redis(tmp_path, redis_server):
    objects = [*service("web", [("http", 80, 8080)]),
               ingress("app", [("app.example", [("/", "Prefix", "web", 80)])], annotations={
                   "nginx.ingress.kubernetes.io/global-rate-limit": "100",
                   "nginx.ingress.kubernetes.io/global-rate-limit-window": "1m"})]
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    status, text = check(str(path), "--watch-ingress-without-class")
    assert status == 1 and "--redis" in text
    status, text = check(str(path), "--watch-ingress-without-class", "--redis", redis_server.url)
    assert status == 0, text
    assert text.startswith("redis: ok: connected")
    status, text = check(str(path), "--watch-ingress-without-class", "--redis", f"redis://127.0.0.1:{free_port()}")
    assert status == 3  # Redis unusable wins over the Ingresses' verdicts


def test_usage():
    status, _ = check()
    assert status == 2
    status, _ = check("--redis", "http://nope")
    assert status == 2
