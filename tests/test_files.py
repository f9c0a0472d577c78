"""The file provider: parsing manifests, and the folder being polled."""

import json

from twisted.internet.task import Clock

from ingressd.files import ManifestProvider, parse_manifest
from ingressd.store import ObjectStore


def test_multi_document_yaml_list_and_unknown_kinds():
    text = """
apiVersion: v1
kind: Service
metadata: {name: a}
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Secret, metadata: {name: s, namespace: ns}}
- {apiVersion: apps/v1, kind: Deployment, metadata: {name: ignored}}
---
---
kind: Ingress
metadata: {}
---
- not a mapping
"""
    objects, problems = parse_manifest(text, "x.yaml")
    assert [(o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in objects] == [
        ("Service", "a", "default"), ("Secret", "s", "ns")]
    assert any("no metadata.name" in p for p in problems)
    assert any("not a mapping" in p for p in problems)


def test_json_manifest():
    objects, problems = parse_manifest(json.dumps(
        {"kind": "IngressClass", "metadata": {"name": "c"}, "spec": {}}), "c.json")
    assert objects[0]["metadata"] == {"name": "c"} and not problems  # cluster-scoped: no namespace


def test_folder_polling_add_change_remove_and_bad_file(tmp_path):
    store = ObjectStore()
    provider = ManifestProvider([str(tmp_path)], store, Clock(), interval=0.5)
    good = tmp_path / "sub" / "svc.yml"
    good.parent.mkdir()
    good.write_text("kind: Service\nmetadata: {name: one}\n")
    (tmp_path / "notes.txt").write_text("kind: Service\nmetadata: {name: ignored}\n")
    provider.scan()
    assert store.synced
    assert set(store.snapshot()["Service"]) == {("default", "one")}
    good.write_text("kind: Service\nmetadata: {name: two}\n")
    provider.scan()
    assert set(store.snapshot()["Service"]) == {("default", "two")}
    good.write_text("kind: Service\nmetadata: {name: [unclosed\n")
    provider.scan()
    assert set(store.snapshot()["Service"]) == {("default", "two")}  # last good content kept
    good.unlink()
    provider.scan()
    assert store.snapshot()["Service"] == {}
