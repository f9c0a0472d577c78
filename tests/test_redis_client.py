"""ingressd.redis: RESP2 (pure), URLs, and the client against a real redis-server on loopback."""

from __future__ import annotations

import time

import pytest
from twisted.internet.epollreactor import EPollReactor

from ingressd.redis.client import RedisClient, RedisUnavailable, RedisURL
from ingressd.redis.resp import ProtocolError, ReplyError, ReplyParser, encode
from redis_server import RedisServer, redis_server  # noqa: F401  (fixture)


# -- RESP2 -------------------------------------------------------------------------------------

def test_encode_is_an_array_of_bulk_strings():
    assert encode("SET", b"k", 12) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"
    assert encode("GET", "é") == b"*2\r\n$3\r\nGET\r\n$2\r\n\xc3\xa9\r\n"


def test_every_reply_type_parsed():
    parser = ReplyParser()
    replies = parser.feed(b"+OK\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n$0\r\n\r\n*-1\r\n-NOSCRIPT No script\r\n")
    assert replies[:6] == ["OK", 42, b"abc", None, [1, b""], None]
    assert isinstance(replies[6], ReplyError) and replies[6].code == "NOSCRIPT"


def test_replies_split_anywhere_come_out_whole_and_in_order():
    data = b"*2\r\n:1\r\n$5\r\nhello\r\n+PONG\r\n:-7\r\n"
    for cut in range(len(data) + 1):
        parser = ReplyParser()
        assert parser.feed(data[:cut]) + parser.feed(data[cut:]) == [[1, b"hello"], "PONG", -7]
    parser = ReplyParser()
    out = []
    for byte in data:
        out += parser.feed(bytes([byte]))
    assert out == [[1, b"hello"], "PONG", -7]


@pytest.mark.parametrize("data", [b"?what\r\n", b":12a\r\n", b"$x\r\n", b"*1\r\n" * 20 + b":1\r\n"])
def test_garbage_is_a_protocol_error(data):
    with pytest.raises(ProtocolError):
        ReplyParser().feed(data)


# -- URLs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, url", [
    ("redis://127.0.0.1", RedisURL("redis", host="127.0.0.1")),
    ("redis://:s%40cret@redis.ns:6380/2", RedisURL("redis", host="redis.ns", port=6380, password="s@cret", db=2)),
    ("redis://user:pw@h/0", RedisURL("redis", host="h", username="user", password="pw")),
    ("rediss://cache.example:6390", RedisURL("rediss", host="cache.example", port=6390)),
    ("unix:///run/redis.sock?db=3&password=pw", RedisURL("unix", path="/run/redis.sock", password="pw", db=3)),
])
def test_urls(text, url):
    assert RedisURL.parse(text) == url
    assert "pw" not in url.shown and "cret" not in url.shown


@pytest.mark.parametrize("text", ["http://h", "redis://", "redis://h/x", "unix://", "redis://h:99999", "h:6379"])
def test_bad_urls(text):
    with pytest.raises(ValueError):
        RedisURL.parse(text)


# -- against a real redis-server -------------------------------------------------------------

@pytest.fixture
def reactor():
    r = EPollReactor()
    yield r
    r.removeAll()
    r.disconnectAll()
    r.runUntilCurrent()
    r._poller.close()


def spin(reactor, until, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if until():
            return
        reactor.iterate(0.01)
    raise AssertionError("the reactor did not get there")


def result_of(reactor, deferred):
    box = []
    deferred.addBoth(box.append)
    spin(reactor, lambda: box)
    return box[0]


def test_commands_pipelined_on_real_redis(reactor, redis_server):
    client = RedisClient(RedisURL.parse(redis_server.url), reactor, size=2)
    client.start()
    try:
        spin(reactor, lambda: client.connected == 2)
        calls = [client.call("INCR", "n") for _ in range(50)]  # all in flight at once
        values = [result_of(reactor, call) for call in calls]
        assert sorted(values) == list(range(1, 51))
        assert result_of(reactor, client.call("GET", "n")) == b"50"
        error = result_of(reactor, client.call("NOSUCHCOMMAND"))
        assert error.check(ReplyError)
        assert result_of(reactor, client.call("PING")) == "PONG"  # the connection goes on after an error
    finally:
        client.stop()


def test_password_and_database_from_the_url(reactor):
    server = RedisServer(password="pässword")
    try:
        url = RedisURL.parse(f"redis://:p%C3%A4ssword@127.0.0.1:{server.port}/3")
        client = RedisClient(url, reactor, size=1)
        client.start()
        spin(reactor, lambda: client.connected == 1)
        assert result_of(reactor, client.call("SET", "where", "three")) == "OK"
        assert b"three" not in server.command("GET", "where")  # db 0
        client.stop()
        wrong = RedisClient(RedisURL.parse(f"redis://:nope@127.0.0.1:{server.port}"), reactor, size=1)
        wrong.start()
        for _ in range(30):
            reactor.iterate(0.01)
        assert wrong.connected == 0  # AUTH refused: never counted as up
        wrong.stop()
    finally:
        server.stop()


def test_evalsha_loads_the_script_again_after_a_flush(reactor, redis_server):
    client = RedisClient(RedisURL.parse(redis_server.url), reactor, size=1)
    client.start()
    try:
        spin(reactor, lambda: client.connected == 1)
        script = b"return redis.call('INCRBY', KEYS[1], ARGV[1])"
        assert result_of(reactor, client.evalsha(script, ("k",), (5,))) == 5  # NOSCRIPT, then EVAL
        assert result_of(reactor, client.evalsha(script, ("k",), (5,))) == 10  # EVALSHA
        redis_server.command("SCRIPT", "FLUSH")
        assert result_of(reactor, client.evalsha(script, ("k",), (1,))) == 11
    finally:
        client.stop()


def test_no_connection_fails_at_once_and_a_restart_is_reconnected(reactor, redis_server):
    client = RedisClient(RedisURL.parse(redis_server.url), reactor, size=2, max_backoff=0.2)
    client.start()
    try:
        spin(reactor, lambda: client.connected == 2)
        redis_server.stop()
        spin(reactor, lambda: client.connected == 0)
        failure = result_of(reactor, client.call("PING"))
        assert failure.check(RedisUnavailable)  # at once: nothing queued behind a reconnect
        redis_server.start()
        spin(reactor, lambda: client.connected == 2)
        assert result_of(reactor, client.call("PING")) == "PONG"
        assert client.connects >= 4
    finally:
        client.stop()


def test_unix_socket(reactor, tmp_path):
    from redis_server import require_redis_server
    import subprocess

    path = tmp_path / "redis.sock"
    process = subprocess.Popen([require_redis_server(), "--port", "0", "--unixsocket", str(path), "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        client = RedisClient(RedisURL.parse(f"unix://{path}?db=1"), reactor, size=1)
        client.start()
        spin(reactor, lambda: client.connected == 1)
        assert result_of(reactor, client.call("PING")) == "PONG"
        client.stop()
    finally:
        process.kill()
        process.wait(10)
