"""--redis-secret: Redis credentials (AUTH password, or an ACL user) from a Secret, followed live."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ingressd.config.store import ObjectStore
from ingressd.redis.client import RedisClient, RedisURL
from ingressd.redis.secret import SecretCredentials, credentials, parse_ref
from redis_server import RedisServer, redis_server  # noqa: F401  (fixture)
from test_redis_client import reactor, result_of, spin  # noqa: F401  (fixture)


def secret(name="redis", namespace="ingressd", **data):
    return {"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace},
            "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}}


def test_parse_ref():
    assert parse_ref("ingressd/redis") == ("ingressd", "redis")
    for bad in ("redis", "/redis", "ingressd/", "a/b/c"):
        with pytest.raises(ValueError, match="expected NAMESPACE/NAME"):
            parse_ref(bad)


def test_credentials_from_a_secret():
    assert credentials(secret(password="pw")) == ("", "pw")
    assert credentials(secret(password="pw", username="limiter")) == ("limiter", "pw")
    assert credentials({"stringData": {"password": "plain"}}) == ("", "plain")
    assert credentials(None) == "no such Secret"
    assert credentials(secret(username="limiter")) == "it has no key password"
    assert credentials(secret(password="")) == "it has no key password"
    assert credentials({"data": {"password": "%%%"}}) == "its key password is not base64 of UTF-8 text"


class _Client:
    def __init__(self):
        self.url = RedisURL.parse("redis://127.0.0.1:6379")
        self.started = False
        self.used = []

    def start(self):
        self.started = True

    def use_credentials(self, username, password):
        self.used.append((username, password))
        self.url = RedisURL("redis", host="127.0.0.1", username=username, password=password)


def test_not_ready_until_the_secret_is_read_then_followed():
    store, client = ObjectStore(), _Client()
    store.register("test")
    follower = SecretCredentials(store, ("ingressd", "redis"), client)
    follower.start()
    assert follower.not_ready_reason() == "--redis-secret ingressd/redis: not read yet"
    store.replace("test", "Secret", [secret("other", password="x")])
    store.set_synced("test")
    assert follower.not_ready_reason() == "--redis-secret ingressd/redis: no such Secret"
    assert not client.started
    store.replace("test", "Secret", [secret(username="limiter")])
    assert follower.not_ready_reason() == "--redis-secret ingressd/redis: it has no key password"
    store.replace("test", "Secret", [secret(username="limiter", password="one")])
    assert (client.started, client.used, follower.not_ready_reason()) == (True, [("limiter", "one")], None)
    store.replace("test", "Secret", [secret(username="limiter", password="one"), secret("other")])
    assert client.used == [("limiter", "one")] and follower.rotations == 0  # unchanged: nothing done
    store.replace("test", "Secret", [secret(username="limiter", password="two")])
    assert client.used[-1] == ("limiter", "two") and follower.rotations == 1
    store.replace("test", "Secret", [])  # gone after use: the credentials in use stay, so does readiness
    assert client.used[-1] == ("limiter", "two") and follower.not_ready_reason() is None
    follower.stop()
    assert follower.update not in store.observers


def test_a_rotated_password_reconnects_without_a_gap(reactor):
    server = RedisServer(password="old")
    try:
        store = ObjectStore()
        store.register("test")
        store.replace("test", "Secret", [secret(password="old")])
        store.set_synced("test")
        client = RedisClient(RedisURL.parse(f"redis://127.0.0.1:{server.port}"), reactor, size=2)
        follower = SecretCredentials(store, ("ingressd", "redis"), client)
        follower.start()
        spin(reactor, lambda: client.connected == 2)
        assert result_of(reactor, client.call("PING")) == "PONG"
        # the operator rotates: Redis first (connections already authenticated stay), then the Secret
        server.command("CONFIG", "SET", "requirepass", "new")
        server.password = "new"
        store.replace("test", "Secret", [secret(password="new")])
        assert result_of(reactor, client.call("PING")) == "PONG"  # the old connections serve meanwhile
        spin(reactor, lambda: client.connects == 4 and client.connected == 2
             and not any(each.retired for each in client._ready))
        for _ in range(4):
            assert result_of(reactor, client.call("PING")) == "PONG"
        # the old connections closed: ours two, plus the one asking
        spin(reactor, lambda: b"connected_clients:3\r\n" in server.command("INFO", "clients"))
        # an ACL user
        server.command("ACL", "SETUSER", "limiter", "on", ">limiter-pw", "~*", "+@all")
        store.replace("test", "Secret", [secret(password="limiter-pw", username="limiter")])
        spin(reactor, lambda: client.connects == 6 and not any(each.retired for each in client._ready))
        assert {result_of(reactor, client.call("ACL", "WHOAMI")) for _ in range(4)} == {b"limiter"}
        follower.stop()
        client.stop()
    finally:
        server.stop()


# -- the option ----------------------------------------------------------------------------------

def _options(*args):
    from ingressd.tap import Options

    options = Options()
    options.parseOptions(list(args))
    return options


MANIFESTS = ("--manifests", str(Path(__file__).resolve().parent))


def test_option():
    assert _options(*MANIFESTS)["redis-secret"] is None
    assert _options(*MANIFESTS, "--redis", "redis://r", "--redis-secret", "ingressd/redis")["redis-secret"] == \
        "ingressd/redis"


@pytest.mark.parametrize("args, message", [
    ((*MANIFESTS, "--redis-secret", "ingressd/redis"), "--redis-secret gives the credentials of --redis"),
    ((*MANIFESTS, "--redis", "redis://r", "--redis-secret", "redis"), "--redis-secret: expected NAMESPACE/NAME"),
    (("--kubernetes", "--namespace", "apps", "--redis", "redis://r", "--redis-secret", "ingressd/redis"),
     "its namespace is not watched"),
])
def test_bad_option_values(args, message):
    with pytest.raises(Exception, match=message):
        _options(*args)


def test_the_server_starts_its_client_only_from_the_secret():
    from twisted.internet.testing import MemoryReactorClock

    from ingressd.plugin_manager import load_plugins
    from ingressd.server import IngressdService
    from ingressd.tap import settings_from

    service = IngressdService(settings_from(_options(*MANIFESTS, "--redis", "redis://:url-pw@127.0.0.1:1",
                                                     "--redis-secret", "ingressd/redis")),
                              load_plugins(), MemoryReactorClock())
    follower = service.redis_secret
    assert follower.client is service.redis.client and follower.ref == ("ingressd", "redis")
    assert follower.not_ready_reason in service.state.readiness_checks
    follower.start()
    service.store.register("files")
    service.store.set_synced("files")
    assert not service.redis.client.started
    assert follower.not_ready_reason() == "--redis-secret ingressd/redis: no such Secret"
    service.store.replace("files", "Secret", [secret(password="from-secret")])
    assert service.redis.client.started and service.redis.client.url.password == "from-secret"
    follower.stop()
    service.redis.client.stop()
