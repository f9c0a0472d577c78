"""A configuration followed change by change is the one built from nothing.

The reloader makes each configuration from the last one in proportion to what changed: the
translator redoes only the Ingresses the store says changed (``StoreSnapshot.changed``,
``Translator._changes_only``), the route table, the certificate store, the plugins' view of the
annotation values in use (``values_in_use``) and the passes over the entries follow the last
build. Here random sequences of changes (Ingresses added, modified, deleted, moved between hosts,
two on one host and path, canaries, server aliases, www redirects, default backends, TLS; their
Services, EndpointSlices and Secrets) are applied to one store and reloader, and after each step
the configuration served, the routing answers for many (host, path) pairs, the certificates
served and the rejections are compared with those of a fresh reloader given the same objects.
"""

from __future__ import annotations

import copy
import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

import certs
from harness import INGRESS_CLASS, ingress, service
from ingressd.config.reloader import Reloader, State
from ingressd.config.store import ObjectStore
from ingressd.config.translate import Translator, _Resolver
from ingressd.plugin_manager import load_plugins
from ingressd.tls.certificates import CertificateStore

HOSTS = ["a.test", "b.test", "www.c.test", "c.test", "*.w.test", ""]
PATHS = ["/", "/x", "/x/y", "/z"]
SERVICES = ["s1", "s2", "s3"]
UNUSED = "s4"  # a Service (and EndpointSlice) no Ingress names
SECRETS = ["t1", "t2"]
UNUSED_SECRETS = ["t0", "t3"]  # Secrets no Ingress names (before and after the others in order)
NAMES = [f"i{n}" for n in range(6)]
CREATED = ["2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z", "2024-01-01T00:00:02Z"]
PROBES = [(host, path) for host in ["a.test", "b.test", "c.test", "www.c.test", "x.w.test", "alias.test",
                                    "other.test"]
          for path in ["/", "/x", "/x/y/q", "/z", "/zz", "/q"]]
ANNOTATIONS = [
    {},
    {"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "50"},
    {"nginx.ingress.kubernetes.io/server-alias": "alias.test"},
    {"nginx.ingress.kubernetes.io/from-to-www-redirect": "true"},
    {"nginx.ingress.kubernetes.io/ssl-redirect": "false"},
    {"nginx.ingress.kubernetes.io/proxy-body-size": "lots"},  # rejected
    {"nginx.ingress.kubernetes.io/server-snippet": "deny all;"},  # host-wide
    {"nginx.ingress.kubernetes.io/ssl-ciphers": "ECDHE-RSA-AES128-GCM-SHA256"},  # the host's TLS settings
    {"nginx.ingress.kubernetes.io/auth-tls-secret": "default/t1"},  # a Secret used by the translation
]


@functools.lru_cache(maxsize=None)
def _plugins():
    return load_plugins()


@functools.lru_cache(maxsize=None)
def _secret(name: str, version: int) -> dict:
    """Secret ``name``'s certificate ``version``: 0 and 1 two certificates for its hosts, 2 one whose
    key is another's (rejected), 3 one that names another host (a warning)."""
    hosts = {"t1": ("a.test", "*.w.test"), "t2": ("c.test", "www.c.test")}.get(name, ("u.test",))
    if version == 2:
        return certs.secret_manifest("default", name, *certs.make_mismatched(*hosts))
    leaf = certs.make_leaf(*hosts) if version < 3 else certs.make_leaf("elsewhere.test")
    return certs.secret_manifest("default", name, leaf.cert_pem, leaf.key_pem())


_rules = st.lists(st.tuples(st.sampled_from(HOSTS), st.lists(
    st.tuples(st.sampled_from(PATHS), st.sampled_from(["Prefix", "Exact"]), st.sampled_from(SERVICES)),
    min_size=1, max_size=3)), min_size=1, max_size=2)
_ingress = st.builds(
    lambda name, rules, annotations, tls, default, created, ours: ingress(
        name, [(host, [(p, t, s, 80) for p, t, s in paths]) for host, paths in rules],
        annotations=dict(annotations), created=created, class_name="ingressd" if ours else "other",
        tls=[{"hosts": [host for host, _ in rules if host], "secretName": tls}] if tls else None,
        default=(default, 80) if default else None),
    st.sampled_from(NAMES), _rules, st.sampled_from(ANNOTATIONS), st.sampled_from([None, *SECRETS]),
    st.sampled_from([None, "s1"]), st.sampled_from(CREATED), st.booleans().map(lambda b: b or True))
_step = st.one_of(
    st.tuples(st.just("ingress"), _ingress),
    st.tuples(st.just("delete-ingress"), st.sampled_from(NAMES)),
    st.tuples(st.just("service"), st.sampled_from(SERVICES), st.sampled_from([80, 81]),
              st.sampled_from(["10.0.0.1", "10.0.0.2", None])),
    st.tuples(st.just("delete-service"), st.sampled_from(SERVICES)),
    # A Service's endpoints alone (its EndpointSlice), of a Service in use or not.
    st.tuples(st.just("endpoints"), st.sampled_from([*SERVICES, UNUSED]),
              st.lists(st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"]), max_size=2)),
    st.tuples(st.just("service"), st.just(UNUSED), st.sampled_from([80, 81]), st.sampled_from(["10.0.0.9", None])),
    st.tuples(st.just("secret"), st.sampled_from(SECRETS), st.integers(0, 3)),
    st.tuples(st.just("delete-secret"), st.sampled_from(SECRETS)),
    st.tuples(st.just("secret"), st.sampled_from(UNUSED_SECRETS), st.integers(0, 1)),
    st.tuples(st.just("delete-secret"), st.sampled_from(UNUSED_SECRETS)),
    st.tuples(st.just("other-class"), st.sampled_from(NAMES)),
    # An Ingress's paths and backends changed, its hosts, TLS and age kept (the change a rebuild
    # follows without looking at the other Ingresses): more often than the rest.
    *[st.tuples(st.just("edit"), st.sampled_from(NAMES), st.lists(
        st.tuples(st.sampled_from(PATHS), st.sampled_from(["Prefix", "Exact"]), st.sampled_from(SERVICES)),
        min_size=1, max_size=3), st.sampled_from(ANNOTATIONS[:3] + ANNOTATIONS[6:]))] * 3,
)


class _Cluster:
    """The objects of the test cluster, as the API server would hold them."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict] = {("IngressClass", "ingressd"): INGRESS_CLASS}

    def apply(self, store: ObjectStore, step) -> None:
        kind = step[0]
        if kind == "ingress":
            self._put(store, step[1])
        elif kind == "other-class":
            known = self.objects.get(("Ingress", step[1]))
            if known is not None:
                moved = copy.deepcopy(known)
                moved["spec"]["ingressClassName"] = "other"
                self._put(store, moved)
        elif kind == "edit":
            known = self.objects.get(("Ingress", step[1]))
            if known is not None:
                edited = copy.deepcopy(known)
                edited["spec"]["rules"][0]["http"]["paths"] = [
                    {"path": p, "pathType": t, "backend": {"service": {"name": svc, "port": {"number": 80}}}}
                    for p, t, svc in step[2]]
                edited["metadata"]["annotations"] = dict(step[3])
                self._put(store, edited)
        elif kind == "delete-ingress":
            self._delete(store, "Ingress", step[1])
        elif kind == "service":
            _, name, port, address = step
            made = service(name, [("http", port, 8080)], endpoints=(address,) if address else None)
            for obj in made:
                self._put(store, obj)
            if address is None:
                self._delete(store, "EndpointSlice", f"{name}-slice")
        elif kind == "endpoints":
            _, name, addresses = step
            self._put(store, service(name, [("http", 80, 8080)], endpoints=tuple(addresses))[1])
        elif kind == "delete-service":
            self._delete(store, "Service", step[1])
            self._delete(store, "EndpointSlice", f"{step[1]}-slice")
        elif kind == "secret":
            self._put(store, _secret(step[1], step[2]))
        elif kind == "delete-secret":
            self._delete(store, "Secret", step[1])

    def _put(self, store: ObjectStore, obj: dict) -> None:
        kind = obj.get("kind") or "Secret"
        self.objects[(kind, obj["metadata"]["name"])] = obj
        store.apply("cluster", kind, "MODIFIED", obj)

    def _delete(self, store: ObjectStore, kind: str, name: str) -> None:
        obj = self.objects.pop((kind, name), None)
        if obj is not None:
            store.apply("cluster", kind, "DELETED", obj)

    def fresh(self) -> tuple[State, CertificateStore]:
        """A new store and reloader given every object at once, built once."""
        store = ObjectStore()
        state = State()
        reloader, certificates = _reloader(store, state)
        store.register("cluster")
        by_kind: dict[str, list] = {}
        for (kind, _), obj in self.objects.items():
            by_kind.setdefault(kind, []).append(obj)
        for kind, items in by_kind.items():
            store.replace("cluster", kind, items)
        store.set_synced("cluster")
        reloader.stop()
        reloader.rebuild()
        return state, certificates


def _reloader(store: ObjectStore, state: State) -> tuple[Reloader, CertificateStore]:
    reloader = Reloader(store, state, Clock(), _plugins())
    certificates = CertificateStore()
    reloader.appliers.append(certificates.update)
    return reloader, certificates


def _answers(state: State) -> list:
    out = []
    for host, path in PROBES:
        entry = state.table.match(host, path)
        route = None if entry is None else entry.route
        out.append((host, path, route, None if entry is None else tuple(
            alternative.route for _, alternative in entry.alternatives),
            None if entry is None else tuple(type(feature).__name__ for feature in entry.features)))
    return out


def _served(certificates: CertificateStore) -> list:
    """Which Secret's certificate each host is served (each store makes its own self-signed default)."""
    out = []
    for host in ["a.test", "x.w.test", "c.test", "www.c.test", "alias.test", "b.test"]:
        served = certificates.certificate_for(host)
        out.append((host, None if served is None or served.secret is None else (served.secret, served.fingerprint)))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_step, min_size=1, max_size=14))
def test_a_configuration_followed_change_by_change_is_the_one_built_from_nothing(steps):
    _follow(steps)


_MAIN = ingress("i0", [("a.test", [("/", "Prefix", "s1", 80)])], created=CREATED[0])
_CANARY = ingress("i1", [("a.test", [("/", "Prefix", "s2", 80)])], created=CREATED[1], annotations=ANNOTATIONS[1])


def test_canaries_that_come_and_go_leave_their_main_routes_as_a_build_from_nothing():
    """A main route keeps its entry from one build to the next: the canary it had is forgotten
    when the canary goes (or stops being one), as a build from nothing has none."""
    _follow([("ingress", _MAIN), ("ingress", _CANARY), ("edit", "i1", [("/", "Prefix", "s2")], {}),
             ("ingress", _CANARY), ("delete-ingress", "i1"), ("ingress", _CANARY),
             ("edit", "i1", [("/x", "Prefix", "s2")], ANNOTATIONS[1]), ("ingress", _CANARY)])


def test_host_wide_features_and_host_tls_settings_that_come_and_go_are_as_a_build_from_nothing():
    snippet, ciphers = ANNOTATIONS[6], ANNOTATIONS[7]
    _follow([("ingress", _MAIN), ("ingress", ingress("i2", [("a.test", [("/x", "Prefix", "s1", 80)])],
                                                      created=CREATED[2], annotations=snippet)),
             ("edit", "i2", [("/z", "Prefix", "s1")], ciphers), ("edit", "i0", [("/", "Prefix", "s2")], snippet),
             ("edit", "i2", [("/x", "Prefix", "s1")], {}), ("edit", "i0", [("/", "Prefix", "s1")], {}),
             ("delete-ingress", "i2")])


_SAME_PLACE = ingress("i4", [("a.test", [("/", "Prefix", "s2", 80)])], created=CREATED[0])  # loses to i0 (name)
_OLDER = ingress("i5", [("a.test", [("/", "Prefix", "s2", 80), ("/x", "Exact", "s1", 80)])],
                 created="2023-12-31T00:00:00Z")  # wins over both
_CONFLICTS = [("ingress", _MAIN), ("ingress", _SAME_PLACE), ("ingress", _OLDER), ("delete-ingress", "i5"),
              ("ingress", _OLDER), ("endpoints", "s1", ["10.0.0.2"]), ("service", "s1", 80, "10.0.0.3"),
              ("endpoints", "s2", []), ("endpoints", UNUSED, ["10.0.0.1"]), ("service", UNUSED, 81, None),
              ("delete-ingress", "i0"), ("secret", "t1", 0), ("secret", "t1", 1), ("delete-ingress", "i5"),
              ("ingress", _MAIN)]


def test_conflicts_whose_winner_comes_and_goes_are_as_a_build_from_nothing():
    """Ingresses on one host and path added and deleted (the oldest wins; an added older one takes
    the path, a deleted winner gives it back), and the objects they use changing."""
    _follow(_CONFLICTS)


def test_adds_deletes_and_changes_of_the_objects_ingresses_use_are_made_in_proportion(monkeypatch):
    """Each step of ``_CONFLICTS`` is made from the last configuration (``Translator._changes_only``
    answers), not by translating every Ingress again."""
    answered = []
    original = Translator._changes_only

    def spy(self, *args):
        result = original(self, *args)
        answered.append(result is not None)
        return result

    monkeypatch.setattr(Translator, "_changes_only", spy)
    _follow(_CONFLICTS)
    assert answered == [True] * len(_CONFLICTS)


def _follow(steps) -> None:
    cluster = _Cluster()
    store, state = ObjectStore(), State()
    reloader, certificates = _reloader(store, state)
    store.register("cluster")
    store.replace("cluster", "IngressClass", [INGRESS_CLASS])
    for obj in [*service("s1", [("http", 80, 8080)]), *service("s2", [("http", 80, 8080)])]:
        cluster.apply(store, ("service", obj["metadata"]["name"].removesuffix("-slice"), 80, "10.0.0.1"))
    store.set_synced("cluster")
    reloader.stop()
    reloader.rebuild()
    for step in steps:
        cluster.apply(store, step)
        reloader.stop()  # the rebuild the change scheduled: run it now
        reloader.rebuild()
        fresh_state, fresh_certificates = cluster.fresh()
        assert reloader.failures == 0
        assert state.config == fresh_state.config
        assert _answers(state) == _answers(fresh_state)
        assert _served(certificates) == _served(fresh_certificates)
        assert certificates.warnings == fresh_certificates.warnings


def test_the_store_says_which_keys_changed_between_two_snapshots():
    store = ObjectStore()
    store.register("cluster")
    first = store.snapshot()
    store.apply("cluster", "Ingress", "ADDED", ingress("one", [("a.test", [("/", "Prefix", "s1", 80)])]))
    store.apply("cluster", "Service", "ADDED", service("s1", [("http", 80, 8080)])[0])
    second = store.snapshot()
    assert second.changed("Ingress", first) == {("default", "one")}
    assert second.changed("Service", first) == {("default", "s1")}
    assert second.changed("Ingress", second) == frozenset()
    store.apply("cluster", "Ingress", "DELETED", ingress("one", []))
    assert store.snapshot().changed("Ingress", second) == {("default", "one")}
    assert second.changed("Ingress", ObjectStore().snapshot()) is None  # another store's
    assert first.changed("Ingress", second) is None  # a later one
    # Too many changes since: not known.
    many = [ingress(f"i{n}", [("a.test", [("/", "Prefix", "s1", 80)])]) for n in range(600)]
    store.replace("cluster", "Ingress", many)
    assert store.snapshot().changed("Ingress", second) is None


_TLS_INGRESS = ingress("i2", [("a.test", [("/", "Prefix", "s1", 80)]), ("c.test", [("/", "Prefix", "s2", 80)])],
                       created=CREATED[0], tls=[{"hosts": ["a.test", "c.test"], "secretName": "t1"}])
_SECRET_STEPS = [("ingress", _TLS_INGRESS), ("secret", "t3", 0), ("secret", "t1", 0), ("secret", "t0", 0),
                 ("secret", "t1", 2), ("delete-secret", "t3"), ("secret", "t1", 3), ("secret", "t2", 0),
                 ("delete-secret", "t1"), ("secret", "t0", 1), ("secret", "t1", 1), ("delete-secret", "t0"),
                 ("secret", "t3", 1), ("secret", "t1", 0)]


def test_secrets_that_come_go_and_change_are_as_a_build_from_nothing(monkeypatch):
    """A TLS Secret replaced, unusable (a key not its certificate's), naming another host, deleted
    and back, and Secrets no Ingress names coming and going before and after it in order: each
    configuration's Secrets are patched in place of the last (``_Resolver.all_secrets``), not sorted
    again, and serve what a build from nothing does."""
    patched = []
    original = _Resolver._secrets_patched

    def spy(self, last, changed):
        patched.append(set(changed))
        return original(self, last, changed)

    monkeypatch.setattr(_Resolver, "_secrets_patched", spy)
    _follow(_SECRET_STEPS)
    assert [keys for keys in patched if keys] == [{("default", step[1])} for step in _SECRET_STEPS[1:]]
