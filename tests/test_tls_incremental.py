"""The certificate store followed Secret change by Secret change serves what one built from nothing does.

``CertificateStore.update`` walks again only the hosts whose Secrets changed (the TLS hosts the
same, no certificate's validity bound crossed); everything else walks every TLS host. Here random
sequences of changes (a Secret's certificate replaced, its key not matching, a certificate not
covering its host, expiring, not yet valid, a chain out of order, the Secret deleted; the default
certificate's Secret; the TLS hosts; the clock) are applied to one store, and after every step the
certificate served for each SNI name, the rejections, the warnings and the expiries (in order) are
compared with those of a store given the same configuration at once. Then what is walked again.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import certs
from ingressd.config.model import Config, ObjectRef, TLSHost
from ingressd.tls.certificates import CertificateStore
from ingressd.tls.client_auth import load_client_auth

START = datetime.now(timezone.utc).replace(microsecond=0)
INGRESS = ObjectRef("Ingress", "web", "shop")
OTHER = ObjectRef("Ingress", "web", "blog")
GATEWAY = ObjectRef("Gateway", "web", "gw")
DEFAULT = ObjectRef("Secret", "web", "dflt")
NAMES = {"s1": ("a.test", "*.w.test"), "s2": ("b.test", "c.test"), "s3": ("c.test",), "s4": ("x.test",),
         "dflt": ("default.test",)}
PROBES = ["a.test", "b.test", "c.test", "x.test", "q.w.test", "w.test", "default.test", "none.test", "", "a.*.test"]
VERSIONS = ("valid", "renewed", "mismatched", "elsewhere", "expiring", "not-yet", "unordered", "no-key")


def _ref(name: str) -> ObjectRef:
    return ObjectRef("Secret", "web", name)


@functools.lru_cache(maxsize=None)
def _unrelated_ca() -> certs.Issued:
    return certs.make_ca("unrelated")


@functools.lru_cache(maxsize=None)
def secret(name: str, version: str):
    """Secret ``name`` in one of ``VERSIONS`` (made once: the same bytes each time asked)."""
    names = NAMES[name]
    if version == "mismatched":
        crt, key = certs.make_mismatched(*names)
        return certs.secret_data("web", name, crt, key)
    if version == "no-key":
        return certs.secret_data("web", name, certs.make_leaf(*names).cert_pem, None)
    leaf = {
        "valid": lambda: certs.make_leaf(*names),
        "renewed": lambda: certs.make_leaf(*names),
        "elsewhere": lambda: certs.make_leaf("elsewhere.test"),
        "expiring": lambda: certs.make_leaf(*names, not_after=START + timedelta(hours=2)),
        "not-yet": lambda: certs.make_leaf(*names, not_before=START + timedelta(hours=1)),
        "unordered": lambda: certs.make_leaf(*names),
    }[version]()
    if version == "unordered":
        return certs.secret_data("web", name, certs.chain_pem(leaf, _unrelated_ca()), leaf.key_pem())
    return certs.issued_secret("web", name, leaf)


# TLS host layouts: several Secrets for one host (the first wins, a warning), a host a plugin added
# (covered_only: served only if the certificate names it), a wildcard, an invalid one, an empty one.
LAYOUTS = [
    (TLSHost("a.test", _ref("s1"), INGRESS), TLSHost("*.w.test", _ref("s1"), INGRESS),
     TLSHost("b.test", _ref("s2"), INGRESS), TLSHost("c.test", _ref("s3"), OTHER),
     TLSHost("c.test", _ref("s2"), INGRESS), TLSHost("x.test", _ref("s4"), OTHER)),
    (TLSHost("c.test", _ref("s2"), GATEWAY, covered_only=True), TLSHost("c.test", _ref("s3"), OTHER),
     TLSHost("x.test", _ref("s1"), GATEWAY, covered_only=True), TLSHost("x.test", _ref("s4"), GATEWAY,
                                                                           covered_only=True),
     TLSHost("A.Test.", _ref("s1"), INGRESS), TLSHost("a.*.test", _ref("s1"), INGRESS),
     TLSHost("", _ref("s2"), INGRESS), TLSHost("b.test", _ref("gone"), OTHER), TLSHost("b.test", _ref("s2"), OTHER)),
    (TLSHost("x.test", _ref("s4"), INGRESS), TLSHost("b.test", _ref("s4"), INGRESS),
     TLSHost("a.test", _ref("s2"), GATEWAY, covered_only=True), TLSHost("a.test", _ref("s1"), OTHER),
     TLSHost("*.w.test", _ref("s3"), OTHER), TLSHost("*.w.test", _ref("s1"), INGRESS)),
]


class _Cluster:
    def __init__(self) -> None:
        self.secrets = {name: secret(name, "valid") for name in NAMES}
        self.layout = 0
        self.now = START

    def config(self) -> Config:
        return Config(tls_hosts=LAYOUTS[self.layout], secrets=tuple(self.secrets[name] for name in sorted(self.secrets)))

    def apply(self, step) -> None:
        kind = step[0]
        if kind == "secret":
            self.secrets[step[1]] = secret(step[1], step[2])
        elif kind == "delete":
            self.secrets.pop(step[1], None)
        elif kind == "layout":
            self.layout = step[1]
        elif kind == "tick":
            self.now += timedelta(minutes=step[1])

    def store(self) -> CertificateStore:
        return CertificateStore(default_ref=DEFAULT, now=lambda: self.now)


def _served(store: CertificateStore) -> list:
    out = []
    for name in PROBES:
        chosen = store.certificate_for(name)
        out.append((name, "default" if chosen is store.default else (chosen.secret, chosen.fingerprint)))
    return out


def _expiries(store: CertificateStore) -> list:
    return [(key, value) for key, value in store.expiries().items() if key[1]]  # the default's: below


def _check(followed: CertificateStore, rejections: list, cluster: _Cluster, default_before) -> None:
    fresh = cluster.store()
    assert fresh.update(cluster.config()) == rejections
    assert followed.warnings == fresh.warnings
    assert _served(followed) == _served(fresh)
    assert _expiries(followed) == _expiries(fresh)
    usable = DEFAULT.name in cluster.secrets and not any(r.ref == DEFAULT for r in rejections)
    if usable:
        assert followed.default.fingerprint == fresh.default.fingerprint
    else:  # missing or unusable: the previous one is still served
        assert followed.default is default_before


_step = st.one_of(
    st.tuples(st.just("secret"), st.sampled_from(sorted(NAMES)), st.sampled_from(VERSIONS)),
    st.tuples(st.just("secret"), st.sampled_from(sorted(NAMES)), st.sampled_from(VERSIONS)),
    st.tuples(st.just("delete"), st.sampled_from(sorted(NAMES))),
    st.tuples(st.just("layout"), st.integers(0, len(LAYOUTS) - 1)),
    st.tuples(st.just("tick"), st.sampled_from([1, 50, 70])),
)


def follow(steps, layout: int = 0) -> CertificateStore:
    cluster = _Cluster()
    cluster.layout = layout
    followed = cluster.store()
    _check(followed, followed.update(cluster.config()), cluster, None)
    for step in steps:
        cluster.apply(step)
        default_before = followed.default
        _check(followed, followed.update(cluster.config()), cluster, default_before)
    return followed


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_step, min_size=1, max_size=10), layout=st.integers(0, len(LAYOUTS) - 1))
def test_a_store_followed_secret_by_secret_serves_what_a_fresh_one_does(steps, layout):
    follow(steps, layout)


# Each kind of Secret change on each layout, one at a time and back (deterministic: what the
# mutation tests run first).
@pytest.mark.parametrize("layout", range(len(LAYOUTS)))
@pytest.mark.parametrize("name", sorted(NAMES))
def test_each_kind_of_secret_change_serves_what_a_fresh_store_does(layout, name):
    steps = []
    for version in VERSIONS[1:]:
        steps += [("secret", name, version), ("secret", name, "valid")]
    steps += [("delete", name), ("secret", name, "renewed"), ("delete", name), ("secret", name, "valid")]
    follow(steps, layout)


def test_the_clock_crossing_a_bound_is_followed():
    follow([("secret", "s1", "expiring"), ("secret", "s3", "not-yet"), ("tick", 50), ("tick", 50),
            ("secret", "s2", "renewed"), ("tick", 50), ("secret", "s4", "renewed")])


# -- what is walked again ---------------------------------------------------------------------


def test_a_secret_change_walks_only_its_hosts_the_others_keep_their_certificates():
    cluster = _Cluster()
    store = cluster.store()
    store.update(cluster.config())
    assert store.walks == 1
    before = {name: store.certificate_for(name) for name in PROBES}
    context = store.context_for_name("x.test")
    for version in ("renewed", "mismatched", "valid"):
        cluster.apply(("secret", "s1", version))
        store.update(cluster.config())
        assert store.walks == 1
        for name in ("b.test", "c.test", "x.test"):
            assert store.certificate_for(name) is before[name]
    assert store.context_for_name("x.test") is context  # made once, kept
    assert store.certificate_for("a.test") is not before["a.test"]
    cluster.apply(("secret", "dflt", "renewed"))  # no TLS host's
    store.update(cluster.config())
    assert store.walks == 1
    cluster.apply(("delete", "s4"))
    store.update(cluster.config())
    assert store.walks == 1 and store.certificate_for("x.test") is store.default


def test_the_same_secrets_walk_nothing_and_keep_the_maps():
    cluster = _Cluster()
    store = cluster.store()
    store.update(cluster.config())
    served = store.certificate_for("a.test")
    store.update(cluster.config())  # equal Secrets, another tuple
    assert store.walks == 1 and store.certificate_for("a.test") is served


@pytest.mark.parametrize("step", [("layout", 1), ("tick", 200)])
def test_other_tls_hosts_or_a_bound_crossed_walk_every_host(step):
    cluster = _Cluster()
    cluster.apply(("secret", "s2", "expiring"))
    store = cluster.store()
    store.update(cluster.config())
    cluster.apply(step)
    store.update(cluster.config())
    assert store.walks == 2


def test_a_host_served_by_another_of_its_tls_hosts_walks_every_host():
    """x.test's first TLS host (a plugin's) is served only while its certificate names x.test."""
    cluster = _Cluster()
    cluster.layout = 1
    cluster.apply(("secret", "s1", "elsewhere"))
    store = cluster.store()
    store.update(cluster.config())
    assert store.certificate_for("x.test").secret == _ref("s4")
    cluster.secrets["s1"] = certs.issued_secret("web", "s1", certs.make_leaf("x.test", "a.test"))
    store.update(cluster.config())
    assert store.walks == 2 and store.certificate_for("x.test").secret == _ref("s1")
    assert list(store.expiries()) == list(_fresh(cluster).expiries())


def _fresh(cluster: _Cluster) -> CertificateStore:
    fresh = cluster.store()
    fresh.update(cluster.config())
    return fresh


def test_after_an_error_the_next_update_walks_every_host():
    cluster = _Cluster()
    store = cluster.store()
    store.update(cluster.config())
    cluster.apply(("secret", "s1", "renewed"))
    broken = dataclasses.replace(cluster.config(), client_auth=None)  # fails once the hosts are walked
    assert "internal error" in store.update(broken)[0].reason
    cluster.apply(("secret", "s2", "renewed"))
    store.update(cluster.config())
    assert store.walks == 2  # the failed update's walk (of s1's hosts) not kept: this one walks all
    assert _served(store) == _served(_fresh(cluster))


def test_secrets_added_and_removed_in_other_places_are_followed():
    cluster = _Cluster()
    store = cluster.store()
    store.update(cluster.config())
    for step in [("delete", "s2"), ("secret", "s2", "renewed"), ("delete", "s1"), ("delete", "s3"),
                 ("secret", "s1", "valid"), ("secret", "s3", "renewed")]:
        cluster.apply(step)
        assert store.update(cluster.config()) == _fresh(cluster).update(cluster.config())
        assert _served(store) == _served(_fresh(cluster))
    assert store.walks == 1
    # Two Secrets swapping places (the same length): each is another in its place.
    swapped = cluster.config()
    secrets = list(swapped.secrets)
    secrets[0], secrets[1] = secrets[1], secrets[0]
    store.update(Config(tls_hosts=swapped.tls_hosts, secrets=tuple(secrets)))
    assert _served(store) == _served(_fresh(cluster)) and store.walks == 1
    # One Secret gone and another come in its place (the same length): both keys changed.
    renamed = Config(tls_hosts=swapped.tls_hosts, secrets=tuple(
        certs.secret_data("web", "s9", b"", b"") if s.ref.name == "s4" else s for s in swapped.secrets))
    rejections = store.update(renamed)
    fresh = cluster.store()
    assert rejections == fresh.update(renamed) and _served(store) == _served(fresh)
    assert store.certificate_for("x.test") is store.default


def test_a_secret_listed_twice_is_the_last_one_as_in_a_fresh_store():
    cluster = _Cluster()
    store = cluster.store()
    first = cluster.config()
    twice = (*first.secrets, secret("s1", "renewed"))
    store.update(Config(tls_hosts=first.tls_hosts, secrets=twice))
    renewed = store.certificate_for("a.test")
    store.update(Config(tls_hosts=first.tls_hosts, secrets=(secret("s1", "mismatched"), *twice[1:])))
    assert store.certificate_for("a.test") is renewed


def test_asking_contexts_follow_a_secret_change_and_a_policy_change():
    """A host's certificate replaced while its client-certificate policy stays: the new one asks
    under that policy; the policy changed with it: no certificate keeps the old policy's context."""
    ca = certs.make_ca("clients")
    first = load_client_auth(ca.cert_pem, None, "on", 1, "Secret web/ca")
    second = load_client_auth(certs.make_ca("other clients").cert_pem, None, "on", 1, "Secret web/ca")
    cluster = _Cluster()
    store = cluster.store()

    def apply(auth) -> None:
        config = cluster.config()
        store.update(Config(tls_hosts=config.tls_hosts, secrets=config.secrets,
                            client_auth=(("a.test", auth), ("b.test", auth))))

    apply(first)
    asking = store.context_for_name("b.test")
    assert store.context_for_name("b.test") is asking
    cluster.apply(("secret", "s1", "renewed"))
    apply(first)
    assert store.context_for_name("b.test") is asking  # its certificate and policy kept
    fresh = store.context_for_name("a.test")
    assert fresh is not None and fresh is not asking
    cluster.apply(("secret", "s1", "valid"))
    apply(second)
    assert store.context_for_name("b.test") is not asking
    assert store.client_auth_for("b.test") is second


# Fixed expectations (the comparisons above run the same walk in both stores: these pin what it gives).

def _warning_texts(store: CertificateStore) -> list[tuple[str, str]]:
    return [(r.ref.name, r.reason) for r in store.warnings]


def test_every_later_tls_host_of_a_served_host_with_another_secret_is_warned_about():
    store = CertificateStore(default_ref=DEFAULT, now=lambda: START)
    hosts = (TLSHost("c.test", _ref("s3"), OTHER), TLSHost("c.test", _ref("s2"), INGRESS),
             TLSHost("c.test", _ref("s3"), INGRESS), TLSHost("c.test", _ref("s1"), GATEWAY, covered_only=True),
             TLSHost("c.test", _ref("s4"), GATEWAY))
    secrets = tuple(secret(name, "valid") for name in ("s1", "s2", "s3", "s4"))
    assert store.update(Config(tls_hosts=hosts, secrets=secrets)) == []
    assert store.certificate_for("c.test").secret == _ref("s3")
    # the same Secret again, and a host a plugin added: nothing said; each other Secret: said
    assert _warning_texts(store) == [
        ("shop", "TLS host c.test is already served with Secret web/s3; Secret web/s2 is not used for it"),
        ("gw", "TLS host c.test is already served with Secret web/s3; Secret web/s4 is not used for it"),
    ]
    # followed: s2 changed, the same warnings in the same order
    changed = tuple(secret(name, "renewed" if name == "s2" else "valid") for name in ("s1", "s2", "s3", "s4"))
    assert store.update(Config(tls_hosts=hosts, secrets=changed)) == []
    assert _warning_texts(store)[0][1].startswith("TLS host c.test is already served with Secret web/s3; Secret web/s2")
    assert len(store.warnings) == 2


def test_the_hosts_are_served_in_the_order_of_their_tls_hosts_before_and_after_a_change():
    now = [START]
    store = CertificateStore(default_ref=DEFAULT, now=lambda: now[0])
    hosts = (TLSHost("x.test", _ref("s4"), INGRESS), TLSHost("b.test", _ref("s2"), INGRESS),
             TLSHost("a.test", _ref("s1"), INGRESS), TLSHost("c.test", _ref("s2"), OTHER))
    names = ("s1", "s2", "s4")
    assert store.update(Config(tls_hosts=hosts, secrets=tuple(secret(n, "valid") for n in names))) == []
    assert [host for _, host in store.expiries() if host] == ["x.test", "b.test", "a.test", "c.test"]
    walks = store.walks
    renewed = tuple(secret(n, "renewed" if n == "s1" else "valid") for n in names)
    assert store.update(Config(tls_hosts=hosts, secrets=renewed)) == []
    assert store.walks == walks  # only a.test walked again
    assert [host for _, host in store.expiries() if host] == ["x.test", "b.test", "a.test", "c.test"]
    assert store.certificate_for("a.test").fingerprint == secret_fingerprint("s1", "renewed")


def secret_fingerprint(name: str, version: str) -> str:
    fresh = CertificateStore(default_ref=DEFAULT, now=lambda: START)
    fresh.update(Config(tls_hosts=(TLSHost(NAMES[name][0], _ref(name), INGRESS),), secrets=(secret(name, version),)))
    return fresh.certificate_for(NAMES[name][0]).fingerprint
