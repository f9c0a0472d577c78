"""auth-tls without sockets: the TLS side (real handshakes in memory against the store's contexts),
what a connection proved, the plugin's per-request answers and headers, and the host-wide choice."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

import certs
import mtls
from ingressd.config.entries import build_table
from ingressd.config.model import Config, ObjectRef, SecretData, TLSHost
from ingressd.testing import annotation_values, exchange, make_context, make_route
from ingressd.tls import client_auth
from ingressd.tls.certificates import CertificateStore
from ingressd.tls.client_auth import ClientAuth, ClientAuthError, ClientCertificate, load_client_auth
from ingressd_plugins import auth_tls

N = "nginx.ingress.kubernetes.io/"


@pytest.fixture(scope="module")
def world():
    return mtls.make_world()


def policy(world, verify="on", depth=1, crl=True) -> ClientAuth:
    return load_client_auth(world.ca.cert_pem, world.crl if crl else None, verify, depth, "Secret default/ca")


# -- what a connection proved: real handshakes, in memory -------------------------------------


class _Transport:
    def __init__(self, connection):
        self._connection = connection

    def getHandle(self):
        return self._connection


def handshake(server_context: SSL.Context, sni: bytes | None, client: certs.Issued | None = None,
              chain: tuple = (), max_version=None) -> SSL.Connection:
    """A completed handshake; returns the server's connection."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE, None)
    if max_version is not None:
        context.set_max_proto_version(max_version)
    if client is not None:
        context.use_certificate(client.cert)
        context.use_privatekey(client.key)
        for extra in chain:
            context.add_extra_chain_cert(crypto.X509.from_cryptography(extra.cert))
    server = SSL.Connection(server_context, None)
    server.set_accept_state()
    peer = SSL.Connection(context, None)
    peer.set_connect_state()
    if sni:
        peer.set_tlsext_host_name(sni)
    done = set()
    for _ in range(50):
        for name, side in (("client", peer), ("server", server)):
            try:
                side.do_handshake()
                done.add(name)
            except SSL.WantReadError:
                pass
        moved = False
        for source, target in ((peer, server), (server, peer)):
            try:
                data = source.bio_read(65536)
            except SSL.WantReadError:
                continue
            target.bio_write(data)
            moved = True
        if not moved and done == {"client", "server"}:
            return server
    raise AssertionError("the handshake did not complete")


def store_for(world, auth: ClientAuth | None, host="secure.example", wildcard=False) -> CertificateStore:
    store = CertificateStore()
    name = ("*." + host.partition(".")[2]) if wildcard else host
    leaf = certs.make_leaf(name, issuer=world.other_ca)
    secret = SecretData(ObjectRef("Secret", "default", "tls"), "kubernetes.io/tls",
                        (("tls.crt", leaf.cert_pem), ("tls.key", leaf.key_pem())))
    ingress = ObjectRef("Ingress", "default", "web")
    config = Config(tls_hosts=(TLSHost(name, secret.ref, ingress), TLSHost("open.example", secret.ref, ingress)),
                    secrets=(secret,), client_auth=((name, auth),) if auth else ())
    assert store.update(config) == []
    return store


def proved(world, client, auth=None, sni=b"secure.example", chain=(), **kwargs) -> ClientCertificate:
    auth = auth or policy(world)
    store = store_for(world, auth)
    server = handshake(store.context_for_name(sni.decode() if sni else None), sni, client, chain, **kwargs)
    return client_auth.client_certificate(_Transport(server))


def test_valid_certificate_succeeds(world):
    found = proved(world, world.valid)
    assert found.verify == "SUCCESS" and found.error == 0 and found.tls
    assert found.subject == "CN=authtls,O=Foo\\, Inc."
    assert found.issuer == "CN=mtls test CA"
    assert found.pem == world.valid.cert_pem
    assert found.server_name == "secure.example"
    assert found.policy == policy(world)


def test_valid_certificate_over_tls12(world):
    assert proved(world, world.valid, max_version=SSL.TLS1_2_VERSION).verify == "SUCCESS"


@pytest.mark.parametrize("kind, reason, issuer_unknown", [
    ("expired", "certificate has expired", False),
    ("wrong_ca", "unable to verify the first certificate", True),
    ("revoked", "certificate revoked", False),
])
def test_failed_certificates_say_why(world, kind, reason, issuer_unknown):
    found = proved(world, getattr(world, kind))
    assert found.verify == "FAILED:" + reason
    assert found.issuer_unknown is issuer_unknown
    assert found.subject  # the certificate is still described


def test_no_certificate_is_none_under_the_policy(world):
    found = proved(world, None)
    assert found == ClientCertificate(policy=policy(world), server_name="secure.example", tls=True)
    assert found.verify == "NONE"


def test_without_crl_a_revoked_certificate_passes(world):
    assert proved(world, world.revoked, auth=policy(world, crl=False)).verify == "SUCCESS"


def test_verify_depth(world):
    # OpenSSL's (and nginx's) depth: 1 allows the leaf, one intermediate and the root.
    upper = certs.make_ca("upper intermediate", issuer=world.ca)
    lower = certs.make_ca("lower intermediate", issuer=upper)
    one = mtls.client_leaf("one", upper)
    two = mtls.client_leaf("two", lower)
    assert proved(world, one, auth=policy(world, depth=1, crl=False), chain=(upper,)).verify == "SUCCESS"
    deep = proved(world, two, auth=policy(world, depth=1, crl=False), chain=(lower, upper))
    assert deep.verify.startswith("FAILED:")  # OpenSSL stops building the chain at the limit
    assert proved(world, two, auth=policy(world, depth=2, crl=False), chain=(lower, upper)).verify == "SUCCESS"


def test_a_host_without_policy_asks_for_no_certificate(world):
    store = store_for(world, policy(world))
    server = handshake(store.context_for_name("open.example"), b"open.example", world.valid)
    found = client_auth.client_certificate(_Transport(server))
    assert found.policy is None and found.verify == "NONE" and found.server_name == "open.example"
    assert server.get_peer_certificate() is None  # never asked, so never sent


def test_the_certificate_request_names_the_cas(world):
    auth = policy(world)
    context = store_for(world, auth).context_for_name("secure.example")
    assert context.get_app_data() is auth
    assert context.get_verify_mode() == SSL.VERIFY_PEER
    assert context.get_verify_depth() == 1


def test_policies_by_sni(world):
    auth = policy(world)
    store = store_for(world, auth)
    assert store.client_auth_for("secure.example") is auth
    assert store.client_auth_for("SECURE.example.") is auth
    assert store.client_auth_for("open.example") is None
    assert store.client_auth_for(None) is None
    assert store.client_auth_for("other.example") is None
    # The same policy reuses its context; another policy gets its own.
    assert store.context_for_name("secure.example") is store.context_for_name("secure.example")
    wild = store_for(world, auth, host="a.wild.example", wildcard=True)
    assert wild.client_auth_for("b.wild.example") is auth
    assert wild.client_auth_for("wild.example") is None
    assert wild.context_for_name("b.wild.example").get_app_data() is auth


def test_a_policy_for_a_host_without_tls_section_uses_the_default_certificate(world):
    auth = policy(world)
    store = CertificateStore()
    store.update(Config(client_auth=(("bare.example", auth),)))
    context = store.context_for_name("bare.example")
    assert context.get_app_data() is auth and context is not store.default.context
    server = handshake(context, b"bare.example", world.valid)
    assert client_auth.client_certificate(_Transport(server)).verify == "SUCCESS"


def test_plain_http_transport_proves_nothing():
    assert client_auth.client_certificate(object()) is client_auth.NO_TLS
    assert client_auth.NO_TLS.tls is False and client_auth.NO_TLS.verify == "NONE"


# -- parsing the policy, formatting ------------------------------------------------------------


def test_load_client_auth_refuses_what_cannot_be_used(world):
    with pytest.raises(ClientAuthError, match="no ca.crt"):
        load_client_auth(None, None, "on", 1, "")
    with pytest.raises(ClientAuthError, match="no readable PEM certificate"):
        load_client_auth(b"garbage", None, "on", 1, "")
    with pytest.raises(ClientAuthError, match="no readable PEM CRL"):
        load_client_auth(world.ca.cert_pem, b"garbage", "on", 1, "")
    with pytest.raises(ClientAuthError, match="cannot be read"):
        load_client_auth(world.ca.cert_pem, b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", "on", 1, "")
    with pytest.raises(ClientAuthError, match="unterminated"):
        load_client_auth(world.ca.cert_pem, b"-----BEGIN X509 CRL-----\nAAAA\n", "on", 1, "")
    with pytest.raises(ClientAuthError, match="verify-client"):
        load_client_auth(world.ca.cert_pem, None, "maybe", 1, "")
    with pytest.raises(ClientAuthError, match="depth"):
        load_client_auth(world.ca.cert_pem, None, "on", 0, "")
    two = load_client_auth(world.ca.cert_pem + world.other_ca.cert_pem, world.crl + world.crl, "on", 1, "x")
    assert len(two._cas) == 2 and len(two._crls) == 2
    assert load_client_auth(world.ca.cert_pem, b"  \n", "on", 1, "")._crls == ()


def test_equal_policies_compare_equal_whatever_their_errors(world):
    assert policy(world) == policy(world) and hash(policy(world)) == hash(policy(world))
    assert policy(world) != policy(world, verify="optional")
    assert policy(world) != policy(world, crl=False)


def test_rfc2253_as_openssl_prints_it():
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "A+B, \"C\" <d>; e\\"),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "x"),
                                        x509.NameAttribute(NameOID.USER_ID, "u")]).__iter__().__next__(),
        x509.NameAttribute(NameOID.COMMON_NAME, " #lead trail "),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.example"),
    ])
    assert client_auth.rfc2253(name) == (
        "emailAddress=a@b.example,CN=\\ #lead trail\\ ,OU=x,O=A\\+B\\, \\\"C\\\" \\<d\\>\\; e\\\\,C=DE")
    multi = x509.Name([x509.RelativeDistinguishedName([
        x509.NameAttribute(NameOID.COMMON_NAME, "a"), x509.NameAttribute(NameOID.USER_ID, "b")])])
    assert client_auth.rfc2253(multi) in ("CN=a+UID=b", "UID=b+CN=a")
    assert client_auth.rfc2253(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "#x")])) == "CN=\\#x"
    # Never a control character or a non-ASCII byte: header-safe.
    odd = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a\r\nb\x7fé")])
    assert client_auth.rfc2253(odd) == "CN=a\\0D\\0Ab\\7F\\C3\\A9"
    unknown = x509.Name([x509.NameAttribute(x509.ObjectIdentifier("1.2.3.4"), "v")])
    assert client_auth.rfc2253(unknown) == "1.2.3.4=v"


def test_escaped_pem_as_nginx_escapes_it(world):
    pem = world.valid.cert_pem
    escaped = ClientCertificate(pem=pem).escaped_pem
    assert escaped.startswith("-----BEGIN%20CERTIFICATE-----%0A")
    assert "/" not in escaped and "+" not in escaped and "=" not in escaped.replace("%3D", "")
    from urllib.parse import unquote
    assert unquote(escaped).encode() == pem
    assert ClientCertificate(pem=b"a-._~ /+=!*'()").escaped_pem == "a-._~%20%2F%2B%3D%21%2A%27%28%29"


def test_verify_error_text():
    assert client_auth.verify_error_text(10) == "certificate has expired"
    assert client_auth.verify_error_text(23) == "certificate revoked"


# -- the plugin: per request --------------------------------------------------------------------


def certificate(world, verify="SUCCESS", error=0, auth=None, sni="secure.example", subject="CN=authtls,O=Foo",
                pem=True):
    return ClientCertificate(verify=verify, subject=subject if verify != "NONE" else "",
                             issuer="CN=mtls test CA" if verify != "NONE" else "",
                             pem=world.valid.cert_pem if pem and verify != "NONE" else b"", error=error,
                             policy=auth if auth is not None else policy(world), server_name=sni, tls=True)


def check(world, mode="on", **kwargs) -> auth_tls.ClientCertificateCheck:
    return auth_tls.ClientCertificateCheck(policy(world), mode, **kwargs)


SUCCESS = dict(verify="SUCCESS")
EXPIRED = dict(verify="FAILED:certificate has expired", error=10)
UNKNOWN_CA = dict(verify="FAILED:unable to get local issuer certificate", error=20)
NONE = dict(verify="NONE")


@pytest.mark.parametrize("mode, proof, status, text", [
    ("on", SUCCESS, None, None),
    ("on", EXPIRED, 400, b"The SSL certificate error"),
    ("on", UNKNOWN_CA, 400, b"The SSL certificate error"),
    ("on", NONE, 400, b"No required SSL certificate was sent"),
    ("optional", SUCCESS, None, None),
    ("optional", EXPIRED, 400, b"The SSL certificate error"),
    ("optional", UNKNOWN_CA, 400, b"The SSL certificate error"),
    ("optional", NONE, None, None),
    ("optional_no_ca", SUCCESS, None, None),
    ("optional_no_ca", EXPIRED, 400, b"The SSL certificate error"),
    ("optional_no_ca", UNKNOWN_CA, None, None),
    ("optional_no_ca", NONE, None, None),
    ("off", SUCCESS, None, None),
    ("off", EXPIRED, None, None),
    ("off", NONE, None, None),
])
def test_each_mode_answers_as_nginx(world, mode, proof, status, text):
    feature = check(world, mode)
    auth = policy(world) if mode != "off" else None
    assert feature.client_auth == auth
    answer = feature.request(exchange(https=True, client_certificate=certificate(world, **proof)))
    if status is None:
        assert answer is None
    else:
        assert answer.status == status and text in answer.body
        assert answer.body == b"400 " + text + b"\n"


@pytest.mark.parametrize("proof", [EXPIRED, NONE])
def test_error_page_redirects_instead(world, proof):
    feature = check(world, error_page="https://errors.example/ssl")
    answer = feature.request(exchange(https=True, client_certificate=certificate(world, **proof)))
    assert (answer.status, answer.headers) == (302, [(b"location", b"https://errors.example/ssl")])


def test_match_cn(world):
    feature = check(world, match_cn="CN=(itwillmatch|authtls)")
    assert feature.request(exchange(https=True, client_certificate=certificate(world))) is None
    feature = check(world, match_cn="CN=notgonnamatch")
    answer = feature.request(exchange(https=True, client_certificate=certificate(world)))
    assert (answer.status, answer.body) == (403, b"client certificate unauthorized")
    # optional without certificate: the empty subject does not match either (nginx's server-level if).
    feature = check(world, "optional", match_cn="CN=authtls")
    assert feature.request(exchange(https=True, client_certificate=certificate(world, **NONE))).status == 403
    # off: nothing is asked, so nothing matches.
    feature = check(world, "off", match_cn="CN=authtls")
    assert feature.request(exchange(https=True, client_certificate=certificate(world))).status == 403


def test_another_policy_under_an_sni_name_is_misdirected(world):
    other = load_client_auth(world.other_ca.cert_pem, None, "on", 1, "Secret default/other")
    for proof in (certificate(world, auth=other), ClientCertificate(server_name="open.example", tls=True)):
        answer = check(world).request(exchange(https=True, client_certificate=proof))
        assert answer.status == 421
    # Without SNI the connection proved nothing for this host: as without certificate.
    no_sni = certificate(world, auth=other, sni="")
    assert check(world).request(exchange(https=True, client_certificate=no_sni)).status == 400
    assert check(world, "optional").request(exchange(https=True, client_certificate=no_sni)) is None
    headers = []
    check(world, "optional").upstream_request(exchange(https=True, client_certificate=no_sni), headers)
    assert headers == [(b"ssl-client-verify", b"NONE")]


def test_an_equal_policy_of_another_host_is_accepted(world):
    assert check(world).request(exchange(https=True, client_certificate=certificate(world, auth=policy(world)))) is None


def test_plain_http(world):
    feature = check(world)
    guard = auth_tls.PlainHTTPGuard(feature)
    plain_exchange = exchange(client_certificate=client_auth.NO_TLS)
    assert feature.request(plain_exchange) is None  # ssl-redirect comes first
    answer = guard.request(plain_exchange)
    assert answer.status == 400 and b"No required SSL certificate was sent" in answer.body
    assert guard.request(exchange(https=True, client_certificate=certificate(world))) is None
    assert auth_tls.PlainHTTPGuard(check(world, "optional")).request(plain_exchange) is None
    matching = check(world, "optional", match_cn="CN=x")
    assert auth_tls.PlainHTTPGuard(matching).request(plain_exchange).status == 403
    redirected = check(world, error_page="https://e.example/")
    assert auth_tls.PlainHTTPGuard(redirected).request(plain_exchange).status == 302
    headers = [(b"ssl-client-verify", b"SUCCESS"), (b"x", b"1")]
    feature.upstream_request(plain_exchange, headers)
    assert headers == [(b"x", b"1")]  # nginx's variables are empty: nothing sent, forgeries removed


FORGED = [(b"ssl-client-verify", b"SUCCESS"), (b"ssl-client-subject-dn", b"CN=admin"),
          (b"ssl-client-issuer-dn", b"CN=evil"), (b"ssl-client-cert", b"forged"),
          (b"ssl_client_verify", b"SUCCESS"), (b"SSL-Client-Verify", b"SUCCESS"), (b"x-keep", b"1")]


def test_headers_to_the_backend_replace_forged_ones(world):
    headers = list(FORGED)
    check(world, pass_certificate=True).upstream_request(
        exchange(https=True, client_certificate=certificate(world)), headers)
    assert headers == [
        (b"x-keep", b"1"),
        (b"ssl-client-cert", certificate(world).escaped_pem.encode()),
        (b"ssl-client-verify", b"SUCCESS"),
        (b"ssl-client-subject-dn", b"CN=authtls,O=Foo"),
        (b"ssl-client-issuer-dn", b"CN=mtls test CA"),
    ]


def test_headers_without_certificate_or_without_passing_it(world):
    headers = list(FORGED)
    check(world, "optional").upstream_request(exchange(https=True, client_certificate=certificate(world, **NONE)),
                                             headers)
    assert headers == [(b"x-keep", b"1"), (b"ssl-client-verify", b"NONE")]
    headers = []
    check(world).upstream_request(exchange(https=True, client_certificate=certificate(world)), headers)
    assert [name for name, _ in headers] == [b"ssl-client-verify", b"ssl-client-subject-dn", b"ssl-client-issuer-dn"]
    headers = []
    check(world, "optional_no_ca").upstream_request(
        exchange(https=True, client_certificate=certificate(world, **UNKNOWN_CA)), headers)
    assert (b"ssl-client-verify", b"FAILED:unable to get local issuer certificate") in headers
    headers = []
    check(world, "off").upstream_request(exchange(https=True, client_certificate=certificate(world)), headers)
    assert headers == [(b"ssl-client-verify", b"NONE")]  # off: nothing was asked


# -- the plugin: annotations and route features -------------------------------------------------


def ca_secret(world, name="ca", **data) -> SecretData:
    items = {"ca.crt": world.ca.cert_pem, "ca.crl": world.crl, **data}
    return SecretData(ObjectRef("Secret", "default", name), "Opaque",
                      tuple(sorted((k, v) for k, v in items.items() if v is not None)))


def features(raw: dict, secret=None, host="secure.example"):
    route = dataclasses.replace(make_route(host=host),
                                annotations=tuple(sorted((N + k, v) for k, v in raw.items())))
    resolved = {"auth-tls-secret": secret} if "auth-tls-secret" in raw else None
    values = annotation_values(auth_tls, raw, resolved)
    return auth_tls.ingressd_route_features(route=route, values=values, context=make_context())


def test_no_secret_annotation_no_feature(world):
    assert features({}) is None
    assert features({"auth-tls-verify-client": "on"}) is None
    # Another prefix's auth-tls-secret is not ours; the ingressd.io/ one is.
    route = dataclasses.replace(make_route(), annotations=(("example.com/auth-tls-secret", "ca"),))
    values = annotation_values(auth_tls, {})
    assert auth_tls.ingressd_route_features(route=route, values=values, context=make_context()) is None
    route = dataclasses.replace(make_route(), annotations=(("ingressd.io/auth-tls-secret", "ca"),))
    denied = auth_tls.ingressd_route_features(route=route, values=values, context=make_context())
    assert isinstance(denied, auth_tls.HostDenied)


def test_route_features(world):
    found = features({"auth-tls-secret": "default/ca", "auth-tls-verify-client": "optional",
                      "auth-tls-verify-depth": "2", "auth-tls-pass-certificate-to-upstream": "true",
                      "auth-tls-match-cn": "CN=authtls", "auth-tls-error-page": "http://e.example/err"},
                     ca_secret(world))
    feature, guard = found
    assert feature.mode == "optional" and feature.host_wide == guard.host_wide == "auth-tls"
    assert feature.client_auth == load_client_auth(world.ca.cert_pem, world.crl, "optional", 2, "Secret default/ca")
    assert feature.phase < 100 and guard.phase == 400
    defaults = features({"auth-tls-secret": "ca"}, ca_secret(world))[0]
    assert defaults.mode == "on" and defaults.client_auth.depth == 1
    off = features({"auth-tls-secret": "ca", "auth-tls-verify-client": "off"}, ca_secret(world))[0]
    assert off.client_auth is None and off.mode == "off"
    assert features({"auth-tls-secret": "ca", "auth-tls-verify-depth": "0"}, ca_secret(world))[0].client_auth.depth == 1


@pytest.mark.parametrize("secret, reason", [
    (None, "does not exist"),
    ("no-ca", "no ca.crt"),
    ("bad-ca", "no readable PEM certificate"),
    ("bad-crl", "no readable PEM CRL"),
])
def test_unusable_secret_denies_the_host(world, secret, reason):
    data = {"no-ca": ca_secret(world, **{"ca.crt": None}), "bad-ca": ca_secret(world, **{"ca.crt": b"x"}),
            "bad-crl": ca_secret(world, **{"ca.crl": b"x"})}.get(secret)
    denied = features({"auth-tls-secret": "ca"}, data)
    assert isinstance(denied, auth_tls.HostDenied) and reason in denied.reason
    assert denied.host_wide == "auth-tls" and not hasattr(denied, "client_auth")
    assert denied.request(exchange(https=True)).status == 403


@pytest.mark.parametrize("name, value, message", [
    ("auth-tls-secret", "Not A Secret", "not a Secret name"),
    ("auth-tls-verify-client", "yes", "expected on, off, optional or optional_no_ca"),
    ("auth-tls-verify-depth", "-1", "at least 0"),
    ("auth-tls-verify-depth", "2 ", "integer"),
    ("auth-tls-verify-depth", "one", "integer"),
    ("auth-tls-error-page", "/error", "internal redirect"),
    ("auth-tls-error-page", "@named", "internal redirect"),
    ("auth-tls-error-page", "http://e.example/a b", "not a URL"),
    ("auth-tls-match-cn", "authtls", "missing prefix 'CN='"),
    ("auth-tls-match-cn", "CN=(a", "linear time"),
    ("auth-tls-match-cn", "CN=(?=a)", "linear time"),
    ("auth-tls-pass-certificate-to-upstream", "yes", "strconv.ParseBool"),
])
def test_bad_values_are_refused(name, value, message):
    annotation = next(a for a in auth_tls.ingressd_annotations() if a.name == name)
    with pytest.raises(ValueError, match=message):
        annotation.parse(value)


def test_good_values_parse():
    parse = {a.name: a.parse for a in auth_tls.ingressd_annotations()}
    assert parse["auth-tls-verify-client"](" optional_no_ca ") == "optional_no_ca"
    assert parse["auth-tls-error-page"]("ok.com/error") == "ok.com/error"  # as ingress-nginx's own test
    assert parse["auth-tls-error-page"]("https://e.example:8443/ssl/") == "https://e.example:8443/ssl/"
    assert parse["auth-tls-secret"]("ns/ca") == "ns/ca"
    assert parse["auth-tls-match-cn"]("CN=a.*") == "CN=a.*"


# -- host-wide: the oldest Ingress of a host decides; the TLS store learns the policies ----------


class _Plugins:
    """The plugin manager's route_features for a few hand-made features."""

    def __init__(self, by_ingress):
        self.by_ingress = by_ingress

    def route_features(self, route, context):
        return list(self.by_ingress.get(route.ingress.name, ()))

    def host_routes(self, config, context):
        return []


class _Snippet:
    host_wide = True
    phase = 100

    def request(self, exchange):
        return None


def test_host_wide_kinds_are_chosen_apart_and_reach_the_config(world):
    older = dataclasses.replace(make_route(host="h.example", ingress="old"), created="2020")
    newer = dataclasses.replace(make_route(host="h.example", ingress="new", path="/new"), created="2021")
    first = check(world)
    second = auth_tls.ClientCertificateCheck(policy(world, "optional"), "optional")
    snippet = _Snippet()
    plugins = _Plugins({"old": [snippet], "new": [second, auth_tls.PlainHTTPGuard(second)]})
    table, config = build_table(Config(routes=(older, newer)), plugins, make_context())
    assert config.client_auth == (("h.example", second.client_auth),)
    # An older Ingress's server-snippet does not hide the newer one's auth-tls (each kind apart).
    for route in (older, newer):
        entry = table.match("h.example", route.path)
        assert entry.route is route
        assert snippet in entry.features and second in entry.features
    plugins = _Plugins({"old": [first], "new": [second]})
    _, config = build_table(Config(routes=(older, newer)), plugins, make_context())
    assert config.client_auth == (("h.example", first.client_auth),)
    _, config = build_table(Config(routes=(older,)), _Plugins({}), make_context())
    assert config.client_auth == ()


# -- the certificate store's side, branch by branch (tests/mutation.py's "tls" target) -----------


def test_asking_and_plain_contexts_of_one_host_are_apart(world):
    auth, other = policy(world), policy(world, verify="optional")
    store = store_for(world, auth)
    certificate = store.certificate_for("secure.example")
    asking = store.context_for_name("secure.example")
    plain_context = certificate.context_for("secure.example")
    assert plain_context is not asking and plain_context.get_app_data() is None
    assert plain_context.get_verify_mode() == SSL.VERIFY_NONE
    assert asking.get_app_data() is auth and asking.get_verify_mode() == SSL.VERIFY_PEER
    assert certificate.asking_context(auth) is asking
    assert certificate.context_for("secure.example") is plain_context
    assert certificate.asking_context(other).get_app_data() is other
    # An asking context resumes nothing; the host's plain one keeps its session cache.
    assert asking.get_session_cache_mode() == SSL.SESS_CACHE_OFF
    assert plain_context.get_session_cache_mode() != SSL.SESS_CACHE_OFF
    assert asking.set_options(0) & SSL.OP_NO_TICKET  # set_options answers the options now set
    # The asking context serves the host's own certificate, not the default one.
    server = handshake(asking, b"secure.example", world.valid)
    served = server.get_certificate(as_cryptography=True)
    assert served.fingerprint(hashes.SHA256()).hex() == certificate.fingerprint != store.default.fingerprint


def test_client_auth_hosts_are_normalised_and_the_first_wins(world):
    first, second = policy(world), policy(world, verify="optional")
    store = CertificateStore()
    store.update(Config(client_auth=((" Secure.Example. ", first), ("secure.example", second), ("", second),
                                     ("*.wild.example", first), ("*.WILD.example", second),
                                     ("a.wild.example", second))))
    assert store.client_auth_for("secure.example") is first
    assert store.client_auth_for("b.wild.example") is first
    assert store.client_auth_for("a.wild.example") is second  # the exact host before the wildcard
    assert store.client_auth_for("wild.example") is None
    assert store.client_auth_for("") is None
    assert store.client_auth_for("example") is None
    store.update(Config())
    assert store.client_auth_for("secure.example") is None  # a new configuration replaces the policies
    assert store.context_for_name("secure.example") is store.default.context


def test_an_asking_context_that_cannot_be_made_serves_the_default(world, monkeypatch):
    from ingressd.tls import certificates

    def broken(context, auth):
        raise SSL.Error("refused")

    monkeypatch.setattr(certificates, "configure_context", broken)
    store = store_for(world, policy(world))
    assert store.context_for_name("secure.example") is store.default.context
    # The default context asks for nothing: the request gets policy None and answers 421/400.
    assert store.default.context.get_app_data() is None


def test_a_rotated_policy_forgets_its_contexts(world):
    old, new = policy(world), load_client_auth(world.other_ca.cert_pem, None, "on", 1, "Secret default/ca")
    store = store_for(world, old)
    certificate = store.certificate_for("secure.example")
    kept = store.context_for_name("secure.example")
    plain_context = store.context_for_name("open.example")
    default_asking = store.default.asking_context(old)
    config = store_config(world, certificate, old)
    store.update(config)  # the same policy again: its context is kept
    assert store.context_for_name("secure.example") is kept
    assert store.context_for_name("open.example") is plain_context
    store.update(store_config(world, certificate, new))
    rotated = store.context_for_name("secure.example")
    assert rotated is not kept and rotated.get_app_data() is new
    assert ("client-auth", old) not in certificate._made and ("client-auth", new) in certificate._made
    assert ("client-auth", old) not in store.default._made  # the default certificate's too
    assert store.context_for_name("open.example") is plain_context  # other contexts untouched
    assert default_asking is not None


def store_config(world, certificate, auth) -> Config:
    """The configuration ``store_for`` made, with ``auth`` for secure.example."""
    leaf_pem, key_pem = certificate.pem
    secret = SecretData(ObjectRef("Secret", "default", "tls"), "kubernetes.io/tls",
                        (("tls.crt", leaf_pem), ("tls.key", key_pem)))
    ingress = ObjectRef("Ingress", "default", "web")
    return Config(tls_hosts=(TLSHost("secure.example", secret.ref, ingress),
                             TLSHost("open.example", secret.ref, ingress)),
                  secrets=(secret,), client_auth=(("secure.example", auth),))


def test_a_hello_read_by_openssl_alone_never_gets_an_asking_context(world):
    # When the ClientHello could not be read first, OpenSSL's SNI callback switches to the
    # host's plain context: no certificate is asked, so the request answers 421 (policy None).
    store = store_for(world, policy(world))
    switched = store._context_for_server_name(b"secure.example")
    assert switched is not None and switched.get_app_data() is None
