"""TLS settings: --ssl-protocols, --ssl-ciphers, --ssl-prefer-server-ciphers and the per-host
ssl-ciphers / ssl-prefer-server-ciphers annotations (parsing, the store's contexts by SNI name,
handshakes in memory). The real twistd is tested in test_e2e_tls_settings.py."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from OpenSSL import SSL
from twisted.python import usage

import certs
from ingressd.config.entries import build_table
from ingressd.config.model import Backend, Config, Endpoint, ObjectRef, Route
from ingressd.features import AnnotationError, BuildContext
from ingressd.tls.certificates import CertificateStore
from ingressd.tls.settings import (
    DEFAULT_CIPHERS,
    HostTLS,
    TLSSettings,
    openssl_options,
    parse_ciphers,
    parse_protocols,
    parse_time,
    tls_settings,
    versions,
)
from ingressd_plugins import ssl_ciphers
from test_tls import config, memory_handshake, tls_host

AES128 = "ECDHE-ECDSA-AES128-GCM-SHA256"
AES256 = "ECDHE-ECDSA-AES256-GCM-SHA384"


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("HIGH", "HIGH"),
    ("  HIGH:!aNULL ", "HIGH:!aNULL"),
    # ingress-nginx's e2e values (test/e2e/annotations/sslciphers.go)
    ("ALL:!aNULL:!EXPORT56:RC4+RSA:+HIGH:+MEDIUM:+LOW:+SSLv2:+EXP",
     "ALL:!aNULL:!EXPORT56:RC4+RSA:+HIGH:+MEDIUM:+LOW:+SSLv2:+EXP"),
    ("ALL:!aNULL:!EXPORT56:RC4+RSA@STRENGTH:+HIGH@SECLEVEL=0:+MEDIUM:+LOW:+SSLv2:+EXP",
     "ALL:!aNULL:!EXPORT56:RC4+RSA@STRENGTH:+HIGH@SECLEVEL=0:+MEDIUM:+LOW:+SSLv2:+EXP"),
    (DEFAULT_CIPHERS, DEFAULT_CIPHERS),
])
def test_cipher_lists_openssl_takes(text, expected):
    assert parse_ciphers(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("HIGH;rm -rf", "not an OpenSSL cipher list"),
    ("HIGH ALL", "not an OpenSSL cipher list"),
    ("@SECLEVEL=9", "not an OpenSSL cipher list"),
    ("NO-SUCH-CIPHER", "OpenSSL finds no cipher"),
    ("TLS_AES_128_GCM_SHA256", "OpenSSL finds no cipher"),  # a TLS 1.3 suite is not a cipher-list entry
])
def test_cipher_lists_refused(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_ciphers(text)


@pytest.mark.parametrize("text, expected", [
    ("TLSv1.2 TLSv1.3", ("TLSv1.2", "TLSv1.3")),
    ("TLSv1.3", ("TLSv1.3",)),
    ("TLSv1.3  TLSv1.2", ("TLSv1.2", "TLSv1.3")),
    ("TLSv1 TLSv1.1 TLSv1.2", ("TLSv1", "TLSv1.1", "TLSv1.2")),
])
def test_protocols(text, expected):
    assert parse_protocols(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("", "no protocol"),
    ("SSLv3 TLSv1.2", "SSLv3: not a protocol"),
    ("tlsv1.2", "tlsv1.2: not a protocol"),
    ("TLSv1.1 TLSv1.3", "gap"),
])
def test_protocols_refused(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_protocols(text)


@pytest.mark.parametrize("text, seconds", [("10m", 600), ("600", 600), ("1h 30m", 5400), ("1d", 86400),
                                           ("2s", 2), ("1w", 604800), ("1M", 2592000), ("1y", 31536000)])
def test_nginx_times(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "10 minutes", "1.5h", "-1m", "0s", "10ms", "m"])
def test_nginx_times_refused(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_versions_are_the_oldest_and_newest():
    from twisted.internet.ssl import TLSVersion

    assert versions(TLSSettings()) == (TLSVersion.TLSv1_2, TLSVersion.TLSv1_3)
    assert versions(TLSSettings(protocols=("TLSv1", "TLSv1.1"))) == (TLSVersion.TLSv1_0, TLSVersion.TLSv1_1)


def test_host_settings_over_the_servers_and_the_oldest_ingress_first():
    server = TLSSettings("HIGH", ("TLSv1.3",), True, False, 60, False)
    assert HostTLS().over(server) == server
    assert HostTLS("MEDIUM").over(server) == TLSSettings("MEDIUM", ("TLSv1.3",), True, False, 60, False)
    assert HostTLS(None, False).over(server) == TLSSettings("HIGH", ("TLSv1.3",), False, False, 60, False)
    older, newer = HostTLS("A", None), HostTLS("B", False)
    assert newer.merged(older) == HostTLS("A", False)  # each setting: the older's when it gives one
    assert HostTLS(None, None).merged(HostTLS(None, True)) == HostTLS(None, True)


def test_the_cipher_preference_option_bit():
    base = SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE
    assert openssl_options(base, TLSSettings(prefer_server_ciphers=False)) == SSL.OP_NO_COMPRESSION
    assert openssl_options(SSL.OP_NO_COMPRESSION, TLSSettings()) == base


def test_server_settings_from_options():
    assert tls_settings({}) == TLSSettings()
    assert tls_settings({"ssl_ciphers": "HIGH", "ssl_protocols": ("TLSv1.3",),
                         "ssl_prefer_server_ciphers": False}) == TLSSettings("HIGH", ("TLSv1.3",), False)
    assert tls_settings({"ssl_prefer_server_ciphers": None}).prefer_server_ciphers is True
    assert tls_settings({"ssl_session_cache": False, "ssl_session_timeout": 60, "ssl_session_tickets": False}) == \
        TLSSettings(session_cache=False, session_timeout=60, session_tickets=False)
    assert TLSSettings().session_cache is True and TLSSettings().session_timeout == 600
    assert TLSSettings().session_tickets is True


def test_twistd_options_are_checked_at_start():
    from ingressd.compat.check import server_settings_from

    settings = server_settings_from([])
    assert tls_settings(settings) == TLSSettings()
    settings = server_settings_from(["--ssl-ciphers", "HIGH:!aNULL", "--ssl-protocols", "TLSv1.3",
                                     "--ssl-prefer-server-ciphers", "off", "--ssl-session-cache", "off",
                                     "--ssl-session-timeout", "1h", "--ssl-session-tickets", "off"])
    assert tls_settings(settings) == TLSSettings("HIGH:!aNULL", ("TLSv1.3",), False, False, 3600, False)
    for args, message in ((["--ssl-ciphers", "NOPE"], "--ssl-ciphers: OpenSSL finds no cipher"),
                          (["--ssl-session-timeout", "soon"], "--ssl-session-timeout: 'soon' is not a time"),
                          (["--ssl-session-tickets", "maybe"], "--ssl-session-tickets maybe"),
                          (["--ssl-session-cache", "maybe"], "--ssl-session-cache maybe"),
                          (["--ssl-protocols", "SSLv3"], "--ssl-protocols: SSLv3: not a protocol"),
                          (["--ssl-prefer-server-ciphers", "maybe"], "--ssl-prefer-server-ciphers maybe")):
        with pytest.raises(usage.UsageError, match=message):
            server_settings_from(args)


# -- the store's contexts and handshakes in memory ------------------------------------------


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    ca = certs.make_ca()
    return {"b": certs.make_leaf("b.example", issuer=ca), "c": certs.make_leaf("c.example", issuer=ca),
            "wild": certs.make_leaf("*.w.example", issuer=ca)}


def client(ciphers: str, maximum=ssl.TLSVersion.TLSv1_2, minimum=ssl.TLSVersion.TLSv1_2) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = minimum
    context.maximum_version = maximum
    context.set_ciphers(ciphers)
    return context


def cipher(store, name, ciphers, **versions_) -> str | None:
    """The cipher a TLS 1.2 handshake naming ``name`` settles on; None when it fails."""
    try:
        return memory_handshake(store, name, client(ciphers, **versions_)).cipher()[0]
    except (ssl.SSLError, SSL.Error):
        return None


def store_with(pki, host_tls=(), server=None) -> CertificateStore:
    store = CertificateStore(tls=server)
    hosts = [tls_host("b.example", "b"), tls_host("c.example", "c"), tls_host("*.w.example", "wild")]
    secrets = [certs.issued_secret("web", name, pki[name]) for name in ("b", "c", "wild")]
    assert store.update(Config(tls_hosts=config(hosts, secrets).tls_hosts, secrets=tuple(secrets),
                               host_tls=tuple(host_tls))) == []
    return store


def test_the_servers_cipher_list_applies_to_every_host(pki):
    store = store_with(pki, server=TLSSettings(ciphers=AES256))
    for name in ("b.example", "x.w.example", "unknown.example", None):
        assert cipher(store, name, AES128) is None, name
        assert cipher(store, name, f"{AES128}:{AES256}") == AES256, name


def test_a_hosts_cipher_list_applies_to_its_sni_name_only(pki):
    store = store_with(pki, host_tls=[("b.example", HostTLS(AES256)), ("*.w.example", HostTLS(AES128))])
    assert cipher(store, "b.example", AES128) is None
    assert cipher(store, "b.example", AES256) == AES256
    assert cipher(store, "x.w.example", AES256) is None  # the wildcard host's
    assert cipher(store, "x.w.example", AES128) == AES128
    for name in ("c.example", "unknown.example", None):  # the others keep the server's list
        assert cipher(store, name, AES128) == AES128, name
        assert cipher(store, name, AES256) == AES256, name


def test_a_host_without_tls_section_gets_its_settings_on_the_default_certificate(pki):
    store = store_with(pki, host_tls=[("plain.example", HostTLS(AES256)), ("*.p.example", HostTLS(AES256))])
    assert cipher(store, "plain.example", AES128) is None
    assert cipher(store, "plain.example", AES256) == AES256
    assert cipher(store, "a.p.example", AES128) is None
    # one context for the configured name, however many names under a wildcard are asked for
    made = [key for key in store.default._made if isinstance(key, tuple) and key[0] == "host"]
    assert sorted(key[1] for key in made) == ["*.p.example", "plain.example"]
    assert store.context_for_name("b.p.example") is store.context_for_name("a.p.example")


def test_host_names_are_read_whatever_their_case_and_trailing_dot_and_the_first_wins(pki):
    store = store_with(pki, host_tls=[(" B.Example. ", HostTLS(AES256)), ("b.example", HostTLS(AES128)),
                                      ("*.W.example", HostTLS(AES256)), ("*.w.example", HostTLS(AES128))])
    assert cipher(store, "b.example", AES128) is None and cipher(store, "B.EXAMPLE", AES256) == AES256
    assert cipher(store, "x.w.example", AES128) is None and cipher(store, "x.w.example", AES256) == AES256


def test_host_settings_equal_to_the_servers_make_no_contexts_of_their_own(pki):
    store = store_with(pki, host_tls=[("b.example", HostTLS(DEFAULT_CIPHERS, True))])
    plain = store_with(pki)
    assert store._map.tls_exact == {} and plain._map.tls_exact == {}
    assert store.context_for_name("b.example") is store.certificate_for("b.example").context_for("b.example")


def test_the_cipher_preference_server_or_client(pki):
    both = f"{AES128}:{AES256}"  # the client's order: AES128 first
    server_first = [("b.example", HostTLS(f"{AES256}:{AES128}", True)),
                    ("c.example", HostTLS(f"{AES256}:{AES128}", False))]
    store = store_with(pki, host_tls=server_first)
    assert cipher(store, "b.example", both) == AES256  # the server's order
    assert cipher(store, "c.example", both) == AES128  # the client's order
    off = store_with(pki, server=TLSSettings(f"{AES256}:{AES128}", prefer_server_ciphers=False))
    assert cipher(off, "unknown.example", both) == AES128
    assert cipher(off, "b.example", both) == AES128


def test_the_servers_protocols_bound_every_handshake(pki):
    store = store_with(pki, server=TLSSettings(protocols=("TLSv1.3",)), host_tls=[("b.example", HostTLS(AES256))])
    for name in ("b.example", "c.example", None):
        assert cipher(store, name, AES256) is None, name  # a TLS 1.2 client
        assert cipher(store, name, AES256, maximum=ssl.TLSVersion.TLSv1_3,
                      minimum=ssl.TLSVersion.TLSv1_3) is not None, name
    only12 = store_with(pki, server=TLSSettings(protocols=("TLSv1.2",)))
    assert cipher(only12, "b.example", AES256, maximum=ssl.TLSVersion.TLSv1_3,
                  minimum=ssl.TLSVersion.TLSv1_3) is None
    assert cipher(only12, "b.example", AES256) == AES256


def test_tls13_suites_are_not_governed_by_the_cipher_list(pki):
    store = store_with(pki, host_tls=[("b.example", HostTLS(AES256))])
    context = client(AES128, maximum=ssl.TLSVersion.TLSv1_3, minimum=ssl.TLSVersion.TLSv1_3)
    assert memory_handshake(store, "b.example", context).version() == "TLSv1.3"


def test_changed_host_settings_get_new_contexts_and_the_old_are_forgotten(pki):
    store = store_with(pki, host_tls=[("b.example", HostTLS(AES256))])
    certificate = store.certificate_for("b.example")
    first = store.context_for_name("b.example")
    hosts = [tls_host("b.example", "b")]
    secrets = (certs.issued_secret("web", "b", pki["b"]),)
    same = Config(tls_hosts=tuple(hosts), secrets=secrets, host_tls=(("b.example", HostTLS(AES256)),))
    store.update(same)
    assert store.context_for_name("b.example") is first  # unchanged: kept
    store.update(Config(tls_hosts=tuple(hosts), secrets=secrets, host_tls=(("b.example", HostTLS(AES128)),)))
    second = store.context_for_name("b.example")
    assert second is not first
    assert not [key for key in certificate._made if isinstance(key, tuple) and len(key) == 3
                and key[2].ciphers == AES256]
    assert cipher(store, "b.example", AES256) is None and cipher(store, "b.example", AES128) == AES128
    store.update(Config(tls_hosts=tuple(hosts), secrets=secrets))  # no settings of its own any more
    assert not [key for key in certificate._made if isinstance(key, tuple) and len(key) == 3]
    assert cipher(store, "b.example", AES256) == AES256
    plain = store.context_for_name("b.example")
    assert ("host", "b.example") in certificate._made and certificate._made[("host", "b.example")] is plain
    store.update(Config(tls_hosts=tuple(hosts), secrets=secrets))
    assert store.context_for_name("b.example") is plain  # the server's settings: kept across updates


def test_client_certificate_hosts_get_their_cipher_list_too(pki):
    from ingressd.tls.client_auth import load_client_auth

    ca = certs.make_ca("clients")
    policy = load_client_auth(ca.cert_pem, None, "optional", 1, "Secret web/ca")
    store = CertificateStore()
    hosts = [tls_host("b.example", "b")]
    secrets = (certs.issued_secret("web", "b", pki["b"]),)
    store.update(Config(tls_hosts=tuple(hosts), secrets=secrets, client_auth=(("b.example", policy),),
                        host_tls=(("b.example", HostTLS(AES256)),)))
    assert store.context_for_name("b.example").get_app_data() is policy
    assert cipher(store, "b.example", AES128) is None
    assert cipher(store, "b.example", AES256) == AES256
    store.update(Config(tls_hosts=tuple(hosts), secrets=secrets, client_auth=(("b.example", policy),)))
    assert cipher(store, "b.example", AES128) == AES128  # the asking context with the server's list
    assert not [key for key in store.certificate_for("b.example")._made
                if isinstance(key, tuple) and len(key) == 3]


def _options(context) -> int:
    return context.set_options(0)  # SSL_CTX_set_options returns the options now set


def test_session_settings(pki):
    hosts = ("b.example", "x.w.example")
    store = store_with(pki, server=TLSSettings(session_timeout=60))
    for name in hosts:
        context = store.context_for_name(name)
        assert context.get_timeout() == 60
        assert context.get_session_cache_mode() == SSL.SESS_CACHE_SERVER
        assert not _options(context) & SSL.OP_NO_TICKET
    assert _options(store.default.context) & SSL.OP_NO_TICKET  # the default context resumes nothing
    no_tickets = store_with(pki, server=TLSSettings(session_tickets=False))
    no_cache = store_with(pki, server=TLSSettings(session_cache=False))
    for name in hosts:
        assert _options(no_tickets.context_for_name(name)) & SSL.OP_NO_TICKET
        assert no_tickets.context_for_name(name).get_session_cache_mode() == SSL.SESS_CACHE_SERVER
        assert _options(no_cache.context_for_name(name)) & SSL.OP_NO_TICKET
        assert no_cache.context_for_name(name).get_session_cache_mode() == SSL.SESS_CACHE_OFF
    context = client(AES256)
    first = memory_handshake(no_cache, "b.example", context)
    assert not memory_handshake(no_cache, "b.example", context, first.session).session_reused
    first = memory_handshake(no_tickets, "b.example", context)  # a clean close: resumed by id
    assert memory_handshake(no_tickets, "b.example", context, first.session).session_reused


# -- the plugin and build_table -------------------------------------------------------------


def test_the_plugin_parses_and_rejects():
    from ingressd.testing import PluginHarness

    n = "nginx.ingress.kubernetes.io/"
    with PluginHarness([ssl_ciphers], {n + "ssl-ciphers": "NOPE"}) as h:
        assert h.rejection is not None and "OpenSSL finds no cipher" in h.rejection
    with PluginHarness([ssl_ciphers], {n + "ssl-prefer-server-ciphers": "on"}) as h:
        assert h.rejection is not None and "strconv.ParseBool" in h.rejection
    assert ssl_ciphers.ingressd_route_features(None, {}, None) is None
    feature = ssl_ciphers.ingressd_route_features(None, {"ssl-prefer-server-ciphers": False}, None)
    assert feature.host_tls == HostTLS(None, False)
    feature = ssl_ciphers.ingressd_route_features(None, {"ssl-ciphers": "HIGH"}, None)
    assert feature.host_tls == HostTLS("HIGH", None)
    with pytest.raises(AnnotationError):
        ssl_ciphers._ciphers("bad;")


def test_build_table_gives_each_host_its_oldest_ingresses_settings():
    def route(name, host, path="/"):
        return Route(host, path, "Prefix", Backend("ns", "s", "80", (Endpoint("10.0.0.1", 80),)),
                     ObjectRef("Ingress", "ns", name))

    given = {"old": HostTLS("A", None), "new": HostTLS("B", False), "other": HostTLS(None, True),
             "nohost": HostTLS("C", None)}

    class Plugins:
        def route_features(self, r, context):
            return [ssl_ciphers.HostCiphers(given[r.ingress.name])] if r.ingress.name in given else []

        def host_routes(self, config, context):
            return []

    routes = (route("old", "a.test"), route("plain", "a.test", "/p"), route("new", "a.test", "/n"),
              route("other", "b.test"), route("nohost", ""))
    _, built = build_table(Config(routes=routes), Plugins(), BuildContext(settings={}, reactor=None))
    assert dict(built.host_tls) == {"a.test": HostTLS("A", False), "b.test": HostTLS(None, True)}
    _, again = build_table(built, Plugins(), BuildContext(settings={}, reactor=None))
    assert again.host_tls == built.host_tls
