"""The object store: packed objects, what a replace reports, identity of unchanged objects."""

import datetime
import json

import yaml

import harness
from ingressd.config.store import ObjectStore, object_key, pack, unpack
from ingressd.config.translate import Translator


def service(name, port=80):
    return harness.service(name, [("http", port, 8080)], endpoints=None)[0]


def test_pack_round_trips_and_equal_objects_give_equal_bytes():
    obj = {"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"n": 1, "f": 1.5, "b": True, "z": None,
                                                                       "l": [1, "two", {"three": 3}]}}
    assert unpack(pack(obj)) == obj
    # Built differently (interned literals vs strings made at run time): the same bytes.
    made = {"metadata": {"name": "".join(["a"]), "labels": {"".join("x"): "".join("y")}},
            "spec": {"n": 1, "f": 1.5, "b": True, "z": None, "l": [1, "tw" + "o", {"thr" + "ee": 3}]}}
    assert pack(made) == pack(obj)
    assert unpack(pack(obj)) is not unpack(pack(obj))  # a fresh dict for every consumer


def test_yaml_timestamps_are_stored_as_text():
    obj = yaml.safe_load("metadata: {name: a, creationTimestamp: 2024-01-01T00:00:00Z}")
    assert isinstance(obj["metadata"]["creationTimestamp"], datetime.datetime)
    assert unpack(pack(obj))["metadata"]["creationTimestamp"] == "2024-01-01 00:00:00+00:00"


def test_an_object_that_cannot_be_stored_is_skipped_alone():
    # A YAML alias can make an object contain itself.
    bad = yaml.safe_load("metadata: {name: loop, namespace: default}\nspec: &s {ports: *s}")
    assert bad["spec"]["ports"] is bad["spec"]
    store = ObjectStore()
    store.replace("test", "Service", [service("a"), bad, service("b")])
    assert set(store.snapshot()["Service"]) == {("default", "a"), ("default", "b")}
    assert store.apply("test", "Service", "MODIFIED", bad) is False
    assert set(store.snapshot()["Service"]) == {("default", "a"), ("default", "b")}


def test_replace_reports_changed_keys_and_keeps_unchanged_objects_identical():
    changes = []
    store = ObjectStore(on_change=lambda: changes.append(1))
    assert store.replace("test", "Service", [service("a"), service("b")]) == {("default", "a"), ("default", "b")}
    before = store.snapshot()["Service"]
    # A re-list with fresh, equal dicts: nothing changed, nothing to do.
    assert store.replace("test", "Service", [service("a"), service("b")]) == set()
    assert store.snapshot()["Service"] is before
    assert len(changes) == 1
    changed = store.replace("test", "Service", [service("a"), service("b", port=81), service("c")])
    assert changed == {("default", "b"), ("default", "c")}
    after = store.snapshot()["Service"]
    assert after[("default", "a")] is before[("default", "a")]  # what the translator's memo checks
    assert store.get("Service", ("default", "b"))["spec"]["ports"][0]["port"] == 81
    assert store.replace("test", "Service", [service("a")]) == {("default", "b"), ("default", "c")}


def test_apply_reports_whether_it_changed_anything():
    store = ObjectStore()
    assert store.apply("test", "Service", "ADDED", service("a")) is True
    assert store.apply("test", "Service", "MODIFIED", service("a")) is False
    assert store.apply("test", "Service", "MODIFIED", service("a", port=81)) is True
    assert store.get("Service", ("default", "a"), source="test")["spec"]["ports"][0]["port"] == 81
    assert store.get("Service", ("default", "a"), source="other") is None
    assert store.apply("test", "Service", "DELETED", service("a")) is True
    assert store.apply("test", "Service", "DELETED", service("a")) is False
    assert store.get("Service", ("default", "a")) is None


def _slice(name, service_name, address):
    return {"kind": "EndpointSlice", "metadata": {"name": name, "namespace": "default",
                                                  "labels": {"kubernetes.io/service-name": service_name}},
            "ports": [{"name": "http", "port": 8080}], "endpoints": [{"addresses": [address]}]}


def _ingress(name, service_name, class_name="ingressd"):
    return harness.ingress(name, [(f"{name}.test", [("/", "Prefix", service_name, 80)])], class_name=class_name)


def test_translator_follows_endpoint_slices_moving_between_services():
    store = ObjectStore()
    store.replace("test", "IngressClass", [harness.INGRESS_CLASS])
    store.replace("test", "Service", [service("a"), service("b")])
    store.replace("test", "Ingress", [_ingress("one", "a"), _ingress("two", "b")])
    translator = Translator()

    def endpoints():
        config = translator(store.snapshot())
        return {route.host: sorted(e.address for e in route.backend.endpoints) for route in config.routes}

    store.replace("test", "EndpointSlice", [_slice("s1", "a", "10.0.0.1"), _slice("s2", "a", "10.0.0.2")])
    assert endpoints() == {"one.test": ["10.0.0.1", "10.0.0.2"], "two.test": []}
    store.apply("test", "EndpointSlice", "MODIFIED", _slice("s2", "b", "10.0.0.2"))  # relabelled
    assert endpoints() == {"one.test": ["10.0.0.1"], "two.test": ["10.0.0.2"]}
    store.apply("test", "EndpointSlice", "DELETED", _slice("s1", "a", "10.0.0.1"))
    assert endpoints() == {"one.test": [], "two.test": ["10.0.0.2"]}
    store.apply("test", "EndpointSlice", "ADDED", _slice("s3", "b", "10.0.0.3"))
    assert endpoints() == {"one.test": [], "two.test": ["10.0.0.2", "10.0.0.3"]}


def test_translator_remembers_ingresses_of_other_classes(monkeypatch):
    import ingressd.config.translate as translate_module

    store = ObjectStore()
    store.replace("test", "Ingress", [_ingress("ours", "a"), _ingress("theirs", "a", class_name="nginx")])
    translator = Translator()
    assert [r.host for r in translator(store.snapshot()).routes] == ["ours.test"]
    unpacked = []
    monkeypatch.setattr(translate_module, "unpack", lambda data: unpacked.append(data) or unpack(data))
    store.replace("test", "Service", [service("a")])  # ours used it (absent then): ours is redone
    translator(store.snapshot())
    assert sorted(object_key(unpack(data)) for data in unpacked) == [("default", "a"), ("default", "ours")]


def test_packed_objects_are_deflated_well_below_their_marshal_form():
    # The store's memory at 10,000 Ingresses is mostly packed objects: pin that they are
    # compressed (an Ingress of three paths packs to a few hundred bytes of marshal).
    import marshal

    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "i1", "namespace": "ns1", "generation": 3},
               "spec": {"ingressClassName": "ingressd", "rules": [{"host": "h1.example.com", "http": {"paths": [
                   {"path": f"/p{n}", "pathType": "Prefix",
                    "backend": {"service": {"name": "s1", "port": {"number": 80}}}} for n in range(3)]}}]}}
    assert len(pack(ingress)) * 3 < len(marshal.dumps(ingress, 0))
    assert unpack(pack(ingress)) == ingress


def test_pack_round_trips_every_value_marshal_holds_and_stays_deterministic():
    import random

    rng = random.Random(7)
    for size in (0, 1, 255, 4096, 70000):
        blob = bytes(rng.randrange(256) for _ in range(size))
        obj = {"data": {"b": blob.hex(), "t": blob.decode("latin-1")}, "n": [size, -size, 1.5, None, True],
               "nested": {"x" * 300: [{"k": "é\u2603\U0001F600"}] * 3}}
        assert unpack(pack(obj)) == obj
        assert pack(obj) == pack(json.loads(json.dumps(obj)))  # equal objects, equal bytes
    assert unpack(pack({})) == {}


def test_a_snapshot_handed_out_never_changes_when_its_single_source_does():
    # With one source the snapshot is that source's own mapping (no copy); a watch event must
    # not change a snapshot already handed out, and the next snapshot sees the event.
    store = ObjectStore()
    store.replace("k8s", "Service", [{"metadata": {"name": "a", "namespace": "default"}}])
    before = store.snapshot()["Service"]
    assert store.snapshot()["Service"] is before
    for event, name in (("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "a")):
        kept = dict(before)
        obj = {"metadata": {"name": name, "namespace": "default"}, "spec": {"n": event}}
        assert store.apply("k8s", "Service", event, obj)
        assert before == kept  # unchanged, key by key and byte by byte
        after = store.snapshot()["Service"]
        assert after is not before
        before = after
    assert set(before) == {("default", "b")}
    assert store.get("Service", ("default", "b"))["spec"] == {"n": "ADDED"}
    store.register("files")  # a second source: a merged copy again
    assert store.snapshot()["Service"] == before
