"""The ingress-nginx ConfigMap's TLS keys (ssl-protocols, ssl-ciphers, ssl-session-*): read as live
settings, laid over the options, and ``CertificateStore.use_tls`` making every context anew for new
handshakes (handshakes in memory). The real twistd is tested in test_e2e_configmap_tls.py."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest
from OpenSSL import SSL

import certs
from ingressd.compat.catalogue import IMPLEMENTED, NOT_YET, PARTIAL
from ingressd.compat.check import server_settings_from
from ingressd.compat.configmap_catalogue import lookup
from ingressd.config.model import Config
from ingressd.config.nginx_configmap import overlay, read_configmap, secret_references
from ingressd.live_settings import LIVE, TLS, changed_options
from ingressd.plugin_manager import load_plugins
from ingressd.testing import restore_plugin_configuration
from ingressd.tls.certificates import CertificateStore
from ingressd.tls.client_auth import load_client_auth
from ingressd.tls.settings import DEFAULT_CIPHERS, HostTLS, TLSSettings, ecdh_curve_note, parse_dh_param, parse_ecdh_curve, tls_settings
from test_tls import memory_handshake, tls_host
from test_tls_settings import AES128, AES256, cipher, client, pki, store_with  # noqa: F401 - pki: a fixture

NAME = "ingress-nginx/ingress-nginx-controller"


@pytest.fixture(autouse=True)
def _plugins_as_they_were():
    yield
    restore_plugin_configuration()


def _read(data, argv=()):
    plugins = load_plugins()
    options = {option.name: option.coerce for option in plugins.options}
    return read_configmap(NAME, data, plugins.annotations, options, server_settings_from(list(argv)))


# -- reading the keys ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ssl-protocols", "ssl-ciphers", "ssl-session-cache", "ssl-session-timeout"])
def test_the_tls_keys_are_live_settings_in_the_catalogue(key):
    entry = lookup(key)
    assert entry.status == IMPLEMENTED and entry.target == ("setting", key)
    assert "live" in entry.note


def test_session_tickets_is_live_and_partial_for_its_default():
    entry = lookup("ssl-session-tickets")
    assert entry.status == PARTIAL and entry.target == ("setting", "ssl-session-tickets")
    assert entry.default == "false"  # ingress-nginx's; asks for nothing (ingressd's own default: on)


@pytest.mark.parametrize("data, expected", [
    ({"ssl-protocols": "TLSv1.3"}, {"ssl-protocols": ("TLSv1.3",)}),
    ({"ssl-protocols": "TLSv1.3 TLSv1.2 "}, {"ssl-protocols": ("TLSv1.2", "TLSv1.3")}),  # the default, other order
    ({"ssl-protocols": "TLSv1.1 TLSv1.2"}, {"ssl-protocols": ("TLSv1.1", "TLSv1.2")}),
    ({"ssl-ciphers": AES256}, {"ssl-ciphers": AES256}),
    ({"ssl-ciphers": DEFAULT_CIPHERS}, {}),
    ({"ssl-session-timeout": "1h 30m"}, {"ssl-session-timeout": 5400}),
    ({"ssl-session-timeout": "10m"}, {}),
    ({"ssl-session-timeout": "600"}, {"ssl-session-timeout": 600}),  # the default in seconds: the same value
    ({"ssl-session-cache": "false"}, {"ssl-session-cache": False}),
    ({"ssl-session-cache": "true"}, {}),
    ({"ssl-session-tickets": "true"}, {"ssl-session-tickets": True}),
    ({"ssl-session-tickets": "false"}, {}),
])
def test_values_read(data, expected):
    reading = _read(data)
    assert reading.usable and not reading.warnings, (reading.refusals, reading.warnings)
    assert dict(reading.settings) == expected


@pytest.mark.parametrize("data, reason", [
    ({"ssl-protocols": "SSLv3"}, "SSLv3: not a protocol ingressd offers"),
    ({"ssl-protocols": "TLSv1 TLSv1.3"}, "leaves a gap"),
    ({"ssl-ciphers": "NO-SUCH-CIPHER"}, "OpenSSL finds no cipher"),
    ({"ssl-ciphers": "HIGH;rm"}, "not an OpenSSL cipher list"),
    ({"ssl-session-timeout": "ten minutes"}, "is not a time"),
    ({"ssl-session-timeout": "0"}, "at least 1s"),
    ({"ssl-session-cache": "yes"}, "expected true or false"),
    ({"ssl-session-tickets": "on"}, "expected true or false"),
])
def test_bad_values_refuse_the_configmap_naming_the_key(data, reason):
    reading = _read(data)
    assert not reading.usable
    (refusal,) = reading.refusals
    assert refusal.startswith(f"ConfigMap {NAME} key {next(iter(data))}: ")
    assert reason in refusal


def test_a_configmap_value_wins_over_the_option_and_an_absent_key_leaves_it():
    options = server_settings_from(["--ssl-ciphers", AES128, "--ssl-protocols", "TLSv1.2",
                                    "--ssl-session-timeout", "1m"])
    reading = _read({"ssl-ciphers": AES256, "ssl-protocols": "TLSv1.3"})
    tls = tls_settings(overlay(options, reading))
    assert tls == TLSSettings(ciphers=AES256, protocols=("TLSv1.3",), session_timeout=60)
    # ingress-nginx's default in the ConfigMap asks for nothing: the option stays
    assert tls_settings(overlay(options, _read({"ssl-ciphers": DEFAULT_CIPHERS}))).ciphers == AES128


def test_sighup_applies_the_tls_options_live():
    assert TLS == {"ssl_protocols", "ssl_ciphers", "ssl_prefer_server_ciphers", "ssl_session_cache",
                   "ssl_session_timeout", "ssl_session_tickets", "ssl_ecdh_curve"}
    assert TLS <= LIVE
    old = server_settings_from([])
    new = server_settings_from(["--ssl-ciphers", AES256, "--ssl-prefer-server-ciphers", "off"])
    assert changed_options(old, new) == (["ssl_ciphers", "ssl_prefer_server_ciphers"], [])


# -- the store: new handshakes, new settings ------------------------------------------------


def test_use_tls_changes_new_handshakes_on_every_host_and_keeps_open_connections(pki):
    store = store_with(pki)
    before = {name: store.context_for_name(name) for name in ("b.example", "x.w.example", None)}
    default = store.default.context
    for name in before:
        assert cipher(store, name, AES128) == AES128, name
    store.use_tls(TLSSettings(ciphers=AES256))
    assert store.tls == TLSSettings(ciphers=AES256)
    assert store.default.context is not default
    for name, context in before.items():
        assert store.context_for_name(name) is not context, name
        assert cipher(store, name, AES128) is None, name
        assert cipher(store, name, AES256) == AES256, name
    # A connection made on a context before the change still works: its context is untouched.
    old = SSL.Connection(before["b.example"], None)
    assert old.get_context() is before["b.example"]
    store.use_tls(TLSSettings())
    assert cipher(store, "b.example", AES128) == AES128


def test_use_tls_with_the_same_settings_keeps_every_context(pki):
    store = store_with(pki, server=TLSSettings(ciphers=AES256))
    contexts = [store.context_for_name(name) for name in ("b.example", None)]
    store.use_tls(TLSSettings(ciphers=AES256))
    assert [store.context_for_name(name) for name in ("b.example", None)] == contexts


def test_use_tls_protocols_and_sessions(pki):
    store = store_with(pki)
    tls13 = dict(maximum=ssl.TLSVersion.TLSv1_3, minimum=ssl.TLSVersion.TLSv1_3)
    assert cipher(store, "b.example", AES256) == AES256
    store.use_tls(TLSSettings(protocols=("TLSv1.3",), session_timeout=90, session_tickets=False))
    context = store.context_for_name("b.example")
    assert context.get_timeout() == 90
    assert context.set_options(0) & SSL.OP_NO_TICKET
    assert cipher(store, "b.example", AES256) is None  # a TLS 1.2 client
    assert cipher(store, "b.example", AES256, **tls13) is not None
    store.use_tls(TLSSettings(session_cache=False))
    assert store.context_for_name("b.example").get_session_cache_mode() == SSL.SESS_CACHE_OFF


def test_hosts_own_settings_are_laid_over_the_new_server_settings(pki):
    # ssl-ciphers annotation on b.example; ssl-prefer-server-ciphers: false on c.example
    both = f"{AES128}:{AES256}"
    store = store_with(pki, host_tls=[("b.example", HostTLS(AES256)), ("c.example", HostTLS(None, False))])
    assert cipher(store, "c.example", both) == AES128  # the client's order
    store.use_tls(TLSSettings(ciphers=f"{AES256}:{AES128}", protocols=("TLSv1.2",)))
    assert cipher(store, "b.example", AES128) is None and cipher(store, "b.example", AES256) == AES256
    assert cipher(store, "c.example", both) == AES128  # still the client's order, over the new list
    assert cipher(store, "unknown.example", both) == AES256  # the server's order
    assert store._map.tls_exact["c.example"] == TLSSettings(ciphers=f"{AES256}:{AES128}", protocols=("TLSv1.2",),
                                                            prefer_server_ciphers=False)
    # the host's list equal to the new server list: no settings of its own any more
    store.use_tls(TLSSettings(ciphers=AES256))
    assert "b.example" not in store._map.tls_exact
    assert cipher(store, "b.example", AES256) == AES256


def test_client_certificate_contexts_are_made_anew(pki):
    ca = certs.make_ca("clients")
    policy = load_client_auth(ca.cert_pem, None, "optional", 1, "Secret web/ca")
    store = CertificateStore()
    secrets = (certs.issued_secret("web", "b", pki["b"]),)
    store.update(Config(tls_hosts=(tls_host("b.example", "b"),), secrets=secrets,
                        client_auth=(("b.example", policy),)))
    asking = store.context_for_name("b.example")
    assert cipher(store, "b.example", AES128) == AES128
    store.use_tls(TLSSettings(ciphers=AES256))
    assert store.context_for_name("b.example") is not asking
    assert store.context_for_name("b.example").get_app_data() is policy
    assert cipher(store, "b.example", AES128) is None and cipher(store, "b.example", AES256) == AES256


def test_settings_openssl_refuses_keep_the_previous_ones(pki):
    store = store_with(pki)
    default = store.default.context
    with pytest.raises(Exception):
        store.use_tls(TLSSettings(ciphers="NO-SUCH-CIPHER"))
    assert store.tls == TLSSettings()
    assert store.default.context is default
    assert cipher(store, "b.example", AES128) == AES128


def test_a_handshake_after_use_tls_with_the_default_certificate(pki):
    store = CertificateStore()
    store.use_tls(TLSSettings(protocols=("TLSv1.3",)))
    assert memory_handshake(store, None, client(AES256, maximum=ssl.TLSVersion.TLSv1_3,
                                                 minimum=ssl.TLSVersion.TLSv1_3)).version() == "TLSv1.3"
    assert cipher(store, None, AES256) is None


# -- ssl-ecdh-curve ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("auto", ()),
    (" AUTO ", ()),
    ("secp384r1", ("secp384r1",)),
    ("P-384", ("secp384r1",)),
    ("prime256v1", ("prime256v1",)),
    ("secp256r1", ("prime256v1",)),
    ("p-256", ("prime256v1",)),
    ("P-521", ("secp521r1",)),
    ("X25519:prime256v1:secp384r1", ("X25519", "prime256v1", "secp384r1")),
    ("x25519:X25519:x448", ("X25519", "X448")),
    ("ffdhe2048:ffdhe8192", ("ffdhe2048", "ffdhe8192")),
])
def test_ecdh_curves_read(text, expected):
    assert parse_ecdh_curve(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("", "no curve given"),
    ("  ", "no curve given"),
    ("nope", "'nope': not a key-exchange group"),
    ("X25519:secp192r1", "'secp192r1': not a key-exchange group"),
    ("X25519::prime256v1", "'': not a key-exchange group"),
    ("X25519 prime256v1", "not a key-exchange group"),
    ("ffdhe1024", "not a key-exchange group"),
])
def test_ecdh_curves_refused(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_ecdh_curve(text)


@pytest.mark.parametrize("groups, exact", [
    ((), True), (("prime256v1",), True), (("secp384r1",), True), (("secp521r1",), True),
    (("X25519",), False), (("X448",), False), (("ffdhe2048",), False), (("prime256v1", "secp384r1"), False),
])
def test_what_ecdh_curve_is_applied_exactly(groups, exact):
    note = ecdh_curve_note(TLSSettings(ecdh_curve=groups))
    assert (note is None) is exact
    if note is not None:
        assert note == (f"ssl-ecdh-curve {':'.join(groups)}: ingressd can restrict key exchange to one of "
                        "prime256v1, secp384r1, secp521r1 only; OpenSSL's default groups (X25519, prime256v1, "
                        "X448, secp521r1, secp384r1) are offered instead")


def test_ecdh_curve_from_options_and_the_configmap():
    assert tls_settings(server_settings_from([])).ecdh_curve == ()
    assert tls_settings(server_settings_from(["--ssl-ecdh-curve", "P-384"])).ecdh_curve == ("secp384r1",)
    reading = _read({"ssl-ecdh-curve": "secp521r1"})
    assert dict(reading.settings) == {"ssl-ecdh-curve": ("secp521r1",)}
    assert tls_settings(overlay(server_settings_from(["--ssl-ecdh-curve", "P-384"]), reading)).ecdh_curve == \
        ("secp521r1",)
    assert dict(_read({"ssl-ecdh-curve": "auto"}).settings) == {}
    refused = _read({"ssl-ecdh-curve": "X25519:nope"})
    assert refused.refusals == (f"ConfigMap {NAME} key ssl-ecdh-curve: 'nope': not a key-exchange group "
                                "(X25519, X448, ffdhe2048, ffdhe3072, ffdhe4096, ffdhe6144, ffdhe8192, prime256v1, "
                                "secp384r1, secp521r1, or auto)",)
    assert lookup("ssl-ecdh-curve").status == PARTIAL and lookup("ssl-ecdh-curve").default == "auto"


def test_an_ecdh_curve_applied_or_said_in_the_log(pki):
    from twisted.logger import globalLogPublisher

    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        store = store_with(pki, server=TLSSettings(ecdh_curve=("secp384r1",)))
        assert not [event for event in seen if "ssl-ecdh-curve" in str(event.get("note", ""))]
        store.use_tls(TLSSettings(ecdh_curve=("X25519", "prime256v1")))
    finally:
        globalLogPublisher.removeObserver(seen.append)
    notes = [event["note"] for event in seen if "note" in event]
    assert notes == [ecdh_curve_note(TLSSettings(ecdh_curve=("X25519", "prime256v1")))]
    assert cipher(store, "b.example", AES128) == AES128  # OpenSSL's groups: still served


# -- ssl-dh-param -------------------------------------------------------------------------------

DHE = "DHE-RSA-AES128-GCM-SHA256"


def dh_pem(bits: int = 2048) -> bytes:
    """DH parameters as ``openssl dhparam`` writes them (RFC 7919's group: nothing to generate)."""
    if bits == 2048:
        args = ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048"]
    else:  # a small group OpenSSL's security level refuses
        args = ["openssl", "dhparam", "-dsaparam", str(bits)]
    return subprocess.run(args, capture_output=True, check=True, timeout=60).stdout


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


@needs_openssl
def test_dh_params_read_and_refused():
    pem = dh_pem()
    assert pem.startswith(b"-----BEGIN DH PARAMETERS-----")
    assert parse_dh_param(pem) == pem
    with pytest.raises(ValueError, match=r"^dhparam.pem: OpenSSL refuses the DH parameters \(.*no start line"):
        parse_dh_param(b"not a PEM")
    with pytest.raises(ValueError, match="dh key too small"):
        parse_dh_param(dh_pem(1024))
    with pytest.raises(ValueError, match="OpenSSL refuses"):
        parse_dh_param(b"")


def _read_with_secrets(data, secrets):
    plugins = load_plugins()
    options = {option.name: option.coerce for option in plugins.options}
    return read_configmap(NAME, data, plugins.annotations, options, server_settings_from([]), None, secrets.get)


@needs_openssl
def test_the_dh_param_key_reads_its_secret():
    pem = dh_pem()
    secrets = {"ingress-nginx/dh": {"dhparam.pem": pem}, "ingress-nginx/other": {"tls.crt": b"x"},
               "ingress-nginx/bad": {"dhparam.pem": b"garbage"}}
    reading = _read_with_secrets({"ssl-dh-param": "ingress-nginx/dh"}, secrets)
    assert reading.usable and dict(reading.settings) == {"ssl-dh-param": pem}
    assert tls_settings(overlay(server_settings_from([]), reading)).dh_param == pem
    assert secret_references({"ssl-dh-param": " ingress-nginx/dh ", "ssl-ciphers": "HIGH"}) == ("ingress-nginx/dh",)
    assert secret_references({"ssl-dh-param": ""}) == () and secret_references(None) == ()
    where = f"ConfigMap {NAME} key ssl-dh-param"
    for value, reason in [("ingress-nginx/missing", "Secret ingress-nginx/missing does not exist (expected namespace/name)"),
                          ("dh", "Secret dh does not exist (expected namespace/name)"),
                          ("ingress-nginx/other", "Secret ingress-nginx/other has no dhparam.pem")]:
        assert _read_with_secrets({"ssl-dh-param": value}, secrets).refusals == (f"{where}: {reason}",)
    (refusal,) = _read_with_secrets({"ssl-dh-param": "ingress-nginx/bad"}, secrets).refusals
    assert refusal.startswith(f"{where}: dhparam.pem: OpenSSL refuses the DH parameters")
    # without a lookup (no Secrets known): refused, never served without
    assert _read({"ssl-dh-param": "ingress-nginx/dh"}).refusals == (
        f"{where}: Secret ingress-nginx/dh does not exist (expected namespace/name)",)
    assert lookup("ssl-dh-param").status == IMPLEMENTED and lookup("ssl-dh-param").default == ""


@needs_openssl
def test_dhe_suites_need_the_dh_params(pki):
    rsa = certs.make_leaf("r.example", kind="rsa")
    store = CertificateStore()
    secret = certs.issued_secret("web", "r", rsa)
    assert store.update(Config(tls_hosts=(tls_host("r.example", "r"),), secrets=(secret,))) == []
    assert cipher(store, "r.example", DHE) is None  # no DH parameters: no DHE suite
    store.use_tls(TLSSettings(dh_param=dh_pem()))
    assert cipher(store, "r.example", DHE) == DHE
    assert cipher(store, "r.example", "ECDHE-RSA-AES128-GCM-SHA256") == "ECDHE-RSA-AES128-GCM-SHA256"
    store.use_tls(TLSSettings())
    assert cipher(store, "r.example", DHE) is None


def test_ssl_session_ticket_key_is_not_yet_and_says_why():
    entry = lookup("ssl-session-ticket-key")
    assert entry.status == NOT_YET and entry.target is None
    assert "no public way to set session ticket keys" in entry.note
    (warning,) = _read({"ssl-session-ticket-key": "A" * 64}).warnings  # 48 bytes, base64: harmless, ignored
    assert warning.startswith(f"ConfigMap {NAME} key ssl-session-ticket-key is not supported by ingressd (pyOpenSSL")
    assert warning.endswith("; ignored (harmless)")


# -- ssl-reject-handshake -------------------------------------------------------------------------


def _route(host: str):
    from ingressd.config.model import ObjectRef, Route

    return Route(host=host, path="/", path_type="Prefix", backend=None, ingress=ObjectRef("Ingress", "web", "r"))


def test_rejects_only_names_no_ingress_serves_and_only_when_on(pki):
    store = store_with(pki)  # TLS hosts b.example, c.example, *.w.example
    store.update(Config(routes=(_route("plain.example"), _route("*.p.example"), _route("")),
                        tls_hosts=(tls_host("b.example", "b"), tls_host("*.w.example", "wild")),
                        secrets=(certs.issued_secret("web", "b", pki["b"]), certs.issued_secret("web", "wild", pki["wild"]))))
    names = [None, "", "b.example", "B.Example.", "x.w.example", "w.example", "a.x.w.example", "plain.example",
             "x.p.example", "p.example", "c.example", "unknown.example"]
    assert store.reject_handshake is False
    assert not [name for name in names if store.rejects(name)]  # off: every handshake is served
    store.reject_handshake = True
    assert [name for name in names if store.rejects(name)] == [
        None, "", "w.example", "a.x.w.example", "p.example", "c.example", "unknown.example"]
    store.update(Config(routes=(_route("c.example"),)))  # a new configuration: its hosts
    assert not store.rejects("c.example") and store.rejects("b.example") and store.rejects("plain.example")
    # names as written anywhere: case, spaces and a trailing dot do not matter
    store.update(Config(routes=(_route(" Plain.Example. "), _route("*.P.Example.")),
                        tls_hosts=(tls_host(" *.W.Example ", "wild"), tls_host("B.EXAMPLE.", "b"))))
    assert [name for name in ("plain.example", "x.p.example", "x.w.example", "b.example", "c.example")
            if store.rejects(name)] == ["c.example"]


def test_the_reject_handshake_key():
    assert dict(_read({"ssl-reject-handshake": "true"}).settings) == {"ssl-reject-handshake": True}
    assert dict(_read({"ssl-reject-handshake": "false"}).settings) == {}
    (refusal,) = _read({"ssl-reject-handshake": "on"}).refusals
    assert refusal.startswith(f"ConfigMap {NAME} key ssl-reject-handshake: expected true or false")
    entry = lookup("ssl-reject-handshake")
    assert entry.status == IMPLEMENTED and entry.default == "false" and entry.target == ("setting", "ssl-reject-handshake")


def test_a_refused_hello_gets_an_unrecognized_name_alert_and_no_tls_connection():
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from ingressd.tls.client_hello import UNRECOGNIZED_NAME_ALERT, ClientHelloFirst
    from test_client_hello import Factory, _Stop, hello

    assert UNRECOGNIZED_NAME_ALERT == b"\x15\x03\x03\x00\x02\x02\x70"  # alert record, fatal, unrecognized_name(112)
    asked = []
    for name, refused in (("unknown.example", True), (None, True), ("app.example", False)):
        factory = Factory(Clock())
        factory.reject_handshake = lambda server_name: asked.append(server_name) or server_name != "app.example"
        proto = ClientHelloFirst.__new__(ClientHelloFirst)
        proto.factory = factory
        transport = StringTransport()
        proto.makeConnection(transport)
        data = hello(name)
        try:
            proto.dataReceived(data[:9])
            proto.dataReceived(data[9:])
        except _Stop:  # the TLS connection is being made: served
            pass
        assert proto.rejected is refused
        assert (transport.value() == UNRECOGNIZED_NAME_ALERT) is refused
        assert transport.disconnecting is refused
        assert factory.created == ([] if refused else ["app.example"])
        if refused:
            assert proto.getHandle() is None
            proto.dataReceived(b"more")  # ignored: closing
            proto.connectionLost(None)  # nothing above to end
            assert not factory.clock.getDelayedCalls()
    assert asked == ["unknown.example", None, "app.example"]


def test_a_factory_without_reject_handshake_serves_every_name():
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from ingressd.tls.client_hello import ClientHelloFirst
    from test_client_hello import Factory, _Stop, hello

    factory = Factory(Clock())
    proto = ClientHelloFirst.__new__(ClientHelloFirst)
    proto.factory = factory
    proto.makeConnection(StringTransport())
    with pytest.raises(_Stop):
        proto.dataReceived(hello("unknown.example"))
    assert factory.created == ["unknown.example"] and not proto.rejected
