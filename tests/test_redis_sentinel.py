"""redis+sentinel://: the master found through real ``redis-server --sentinel`` processes, and found
again after a failover (``SENTINEL failover``, and the master killed)."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from harness import free_port
from ingressd.redis.client import RedisClient, RedisURL
from ingressd.redis.decisions import Decisions
from redis_server import RedisServer, require_redis_server
from test_redis_client import reactor, result_of, spin  # noqa: F401  (fixture)


@pytest.mark.parametrize("text, sentinels, master, db, password", [
    ("redis+sentinel://127.0.0.1:26379/mymaster", (("127.0.0.1", 26379),), "mymaster", 0, ""),
    ("redis+sentinel://:p%40w@s1,s2:5000/cache/3", (("s1", 26379), ("s2", 5000)), "cache", 3, "p@w"),
])
def test_sentinel_urls(text, sentinels, master, db, password):
    url = RedisURL.parse(text)
    assert (url.scheme, url.sentinels, url.master, url.db, url.password) == (
        "redis+sentinel", sentinels, master, db, password)
    assert "p@w" not in url.shown and url.shown.startswith("redis+sentinel://")


@pytest.mark.parametrize("text", ["redis+sentinel://s1/", "redis+sentinel://s1", "redis+sentinel://s1:x/m",
                                  "redis+sentinel://s1,/m", "redis+sentinel://s1/m/x", "redis+sentinel://s1/m/1/2",
                                  "redis+sentinel://s1:0/m"])
def test_bad_sentinel_urls(text):
    with pytest.raises(ValueError):
        RedisURL.parse(text)


def _command(port, *args):
    from ingressd.redis.resp import ReplyParser, encode

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(encode(*args))
        parser, replies = ReplyParser(), []
        deadline = time.monotonic() + 5
        while not replies and time.monotonic() < deadline:
            replies = parser.feed(sock.recv(65536))
        return replies[0]


def _wait(predicate, what, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"not reached in {seconds}s: {what}")


class Sentinel:
    def __init__(self, directory, master_port):
        self.port = free_port()
        config = directory / f"sentinel-{self.port}.conf"
        config.write_text(f"port {self.port}\nbind 127.0.0.1\n"
                          f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n"
                          "sentinel down-after-milliseconds mymaster 1000\n"
                          "sentinel failover-timeout mymaster 10000\n")
        self.process = subprocess.Popen([require_redis_server(), str(config), "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: _command(self.port, "PING") == "PONG", "the sentinel answering")

    def master(self):
        reply = _command(self.port, "SENTINEL", "get-master-addr-by-name", "mymaster")
        return int(reply[1]) if reply else None

    def stop(self):
        self.process.kill()
        self.process.wait(10)


@pytest.mark.slow  # real replication and failovers: about 20 s
def test_failover_is_followed(reactor, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the servers write their replication files
    first = RedisServer()
    second = RedisServer()
    sentinel = None
    client = None
    try:
        _command(second.port, "REPLICAOF", "127.0.0.1", str(first.port))
        _wait(lambda: b"master_link_status:up" in second.command("INFO", "replication"), "the replica in sync")
        sentinel = Sentinel(tmp_path, first.port)
        _wait(lambda: b"slaves=1" in (_command(sentinel.port, "INFO", "sentinel") or b""),
              "the sentinel seeing the replica")
        url = RedisURL.parse(f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{sentinel.port}/mymaster")
        client = RedisClient(url, reactor, size=2, max_backoff=0.2)  # the first sentinel is not there
        decisions = Decisions(client, reactor, timeout=2.0)
        client.start()
        spin(reactor, lambda: client.connected == 2)
        assert client.master_address == ("127.0.0.1", first.port)
        assert result_of(reactor, decisions.check(b"k", 100, 60_000)) == (True, 0)

        # a failover asked of the sentinel: the old master becomes a replica
        # (refused with NOGOODSLAVE until the sentinel has the replica's own INFO)
        _wait(lambda: _command(sentinel.port, "SENTINEL", "failover", "mymaster") == "OK", "a failover started")
        _wait(lambda: sentinel.master() == second.port, "the sentinel naming the new master")

        spin(reactor, lambda: client.connected == 2 and client.master_address == ("127.0.0.1", second.port),
             seconds=30)
        for _ in range(5):
            assert result_of(reactor, decisions.check(b"k", 100, 60_000)) == (True, 0)
        assert b"ingressd:rl:k" in _command(second.port, "KEYS", "ingressd:rl:k*")[0]

        # the new master killed: the sentinel promotes the old one (a replica now) again
        _wait(lambda: b"master_link_status:up" in first.command("INFO", "replication"), "the old master in sync")
        _wait(lambda: b"slaves=1" in (_command(sentinel.port, "INFO", "sentinel") or b""),
              "the sentinel seeing the replica")
        second.stop()
        _wait(lambda: sentinel.master() == first.port, "the sentinel promoting the replica", seconds=60)
        spin(reactor, lambda: client.connected == 2 and client.master_address == ("127.0.0.1", first.port),
             seconds=30)
        assert result_of(reactor, decisions.check(b"k2", 100, 60_000)) == (True, 0)
    finally:
        if client is not None:
            client.stop()
        if sentinel is not None:
            sentinel.stop()
        first.stop()
        second.stop()


def test_a_readonly_answer_makes_the_connection_again(reactor, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the servers write their replication files
    master, replica = RedisServer(), RedisServer()
    try:
        _command(replica.port, "REPLICAOF", "127.0.0.1", str(master.port))
        client = RedisClient(RedisURL.parse(replica.url), reactor, size=1, max_backoff=0.2)
        client.start()
        spin(reactor, lambda: client.connected == 1)
        failure = result_of(reactor, client.call("SET", "k", "v"))
        assert failure.value.code == "READONLY"
        spin(reactor, lambda: client.connects == 2 and client.connected == 1)  # closed and made again
        client.stop()
    finally:
        master.stop()
        replica.stop()
