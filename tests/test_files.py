"""The file provider: parsing manifests, and the folder being polled."""

import json

import pytest
import yaml
from twisted.internet.task import Clock

from ingressd.providers.files import ManifestProvider, parse_manifest
from ingressd.config.store import ObjectStore


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


# -- Ingresses of older API versions: converted to networking.k8s.io/v1 as the API server does

CONVERSIONS = {
    "networking-v1beta1-service-ports": ("""
apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata:
  name: shop
  namespace: web
  annotations: {kubernetes.io/ingress.class: nginx, nginx.ingress.kubernetes.io/ssl-redirect: "false"}
spec:
  ingressClassName: nginx
  backend: {serviceName: fallback, servicePort: 8080}
  tls:
  - {hosts: [shop.test], secretName: shop-tls}
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {serviceName: api, servicePort: 80}}
      - {path: /web, backend: {serviceName: web, servicePort: http}}
      - {path: /exact, pathType: Exact, backend: {serviceName: web, servicePort: "8080"}}
""", """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: web
  annotations: {kubernetes.io/ingress.class: nginx, nginx.ingress.kubernetes.io/ssl-redirect: "false"}
spec:
  ingressClassName: nginx
  defaultBackend: {service: {name: fallback, port: {number: 8080}}}
  tls:
  - {hosts: [shop.test], secretName: shop-tls}
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /web, pathType: ImplementationSpecific, backend: {service: {name: web, port: {name: http}}}}
      - {path: /exact, pathType: Exact, backend: {service: {name: web, port: {name: "8080"}}}}
"""),
    "extensions-v1beta1-no-path-type-and-null-path-type": ("""
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: old}
spec:
  rules:
  - http:
      paths:
      - backend: {serviceName: web, servicePort: 80}
      - path: /x
        pathType: null
        backend: {serviceName: web, servicePort: 80}
""", """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: old, namespace: default}
spec:
  rules:
  - http:
      paths:
      - {pathType: ImplementationSpecific, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /x, pathType: ImplementationSpecific, backend: {service: {name: web, port: {number: 80}}}}
"""),
    "resource-backend-kept-and-host-without-http": ("""
apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata: {name: assets, namespace: web}
spec:
  backend:
    resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: static-assets}
  rules:
  - host: only-default.test
""", """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: assets, namespace: web}
spec:
  defaultBackend:
    resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: static-assets}
  rules:
  - host: only-default.test
"""),
    # The API server makes a service when any of its fields is set; an empty string port
    # counts, a zero or missing one does not; empty port fields are left out (omitempty).
    "partial-backends": ("""
apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata: {name: partial, namespace: web}
spec:
  rules:
  - http:
      paths:
      - {path: /a, pathType: Prefix, backend: {serviceName: web}}
      - {path: /b, pathType: Prefix, backend: {serviceName: web, servicePort: 0}}
      - {path: /c, pathType: Prefix, backend: {serviceName: web, servicePort: ""}}
      - {path: /d, pathType: Prefix, backend: {servicePort: 80}}
      - {path: /e, pathType: Prefix, backend: {servicePort: ""}}
      - {path: /f, pathType: Prefix, backend: {}}
      - {path: /g, pathType: Prefix, backend: null}
""", """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: partial, namespace: web}
spec:
  rules:
  - http:
      paths:
      - {path: /a, pathType: Prefix, backend: {service: {name: web, port: {}}}}
      - {path: /b, pathType: Prefix, backend: {service: {name: web, port: {}}}}
      - {path: /c, pathType: Prefix, backend: {service: {name: web, port: {}}}}
      - {path: /d, pathType: Prefix, backend: {service: {name: "", port: {number: 80}}}}
      - {path: /e, pathType: Prefix, backend: {service: {name: "", port: {}}}}
      - {path: /f, pathType: Prefix, backend: {}}
      - {path: /g, pathType: Prefix, backend: {}}
"""),
    "v1-unchanged": ("""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: new, namespace: web}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
""", """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: new, namespace: web}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
"""),
    "no-api-version-read-as-v1": ("""
kind: Ingress
metadata: {name: bare, namespace: web}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
""", """
kind: Ingress
metadata: {name: bare, namespace: web}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
"""),
}


@pytest.mark.parametrize("name", sorted(CONVERSIONS))
def test_ingress_versions_converted_to_v1(name):
    given, expected = CONVERSIONS[name]
    objects, problems = parse_manifest(given, "ingress.yaml")
    assert problems == []
    assert objects == [yaml.safe_load(expected)]


REFUSED = {
    "unknown-version": ("networking.k8s.io/v2", "spec: {}", "apiVersion 'networking.k8s.io/v2' is not an Ingress version"),
    "extensions-v1": ("extensions/v1", "spec: {}", "apiVersion 'extensions/v1'"),
    "core-group": ("v1", "spec: {}", "apiVersion 'v1'"),
    "v1-field-in-v1beta1-backend": (
        "networking.k8s.io/v1beta1",
        "spec: {rules: [{http: {paths: [{path: /, backend: {service: {name: web, port: {number: 80}}}}]}}]}",
        "spec.rules[0].http.paths[0].backend.service is not a field of networking.k8s.io/v1beta1"),
    "v1-default-backend-in-v1beta1": (
        "extensions/v1beta1", "spec: {defaultBackend: {serviceName: web, servicePort: 80}}",
        "spec.defaultBackend is not a field of extensions/v1beta1"),
    "float-port": ("networking.k8s.io/v1beta1", "spec: {backend: {serviceName: web, servicePort: 80.5}}",
                   "spec.backend.servicePort must be a port number or a port name"),
    "bool-port": ("networking.k8s.io/v1beta1", "spec: {backend: {serviceName: web, servicePort: true}}",
                  "spec.backend.servicePort must be a port number or a port name"),
    "port-beyond-int32": ("networking.k8s.io/v1beta1", "spec: {backend: {serviceName: web, servicePort: 2147483648}}",
                          "spec.backend.servicePort 2147483648 is out of range"),
    "service-name-not-text": ("networking.k8s.io/v1beta1", "spec: {backend: {serviceName: [web], servicePort: 80}}",
                              "spec.backend.serviceName must be a string"),
    "rules-not-a-list": ("networking.k8s.io/v1beta1", "spec: {rules: {host: a.test}}", "spec.rules must be a list"),
    "path-not-a-mapping": ("extensions/v1beta1", "spec: {rules: [{http: {paths: [/x]}}]}",
                           "spec.rules[0].http.paths[0] must be a mapping"),
    "spec-not-a-mapping": ("extensions/v1beta1", "spec: [1]", "spec must be a mapping"),
    "backend-not-a-mapping": ("extensions/v1beta1", "spec: {rules: [{http: {paths: [{path: /, backend: web}]}}]}",
                              "spec.rules[0].http.paths[0].backend must be a mapping"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_ingresses_that_cannot_be_read_as_v1_are_problems(name):
    version, spec, problem = REFUSED[name]
    text = f"apiVersion: {version}\nkind: Ingress\nmetadata: {{name: bad}}\n{spec}\n"
    text += "---\napiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: good}\nspec: {}\n"
    objects, problems = parse_manifest(text, "ingress.yaml")
    assert [o["metadata"]["name"] for o in objects] == ["good"]  # the others in the file are kept
    assert len(problems) == 1 and problem in problems[0], problems
    assert problems[0].startswith("document 0 (Ingress bad): ")


def test_conversion_leaves_the_parsed_document_alone():
    given = CONVERSIONS["networking-v1beta1-service-ports"][0]
    [document] = yaml.safe_load_all(given)
    before = yaml.safe_dump(document)
    from ingressd.providers.files import _ingress_v1

    _ingress_v1(document)
    assert yaml.safe_dump(document) == before


def test_json_v1beta1_ingress_and_list_items_are_converted():
    item = {"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "j"},
            "spec": {"backend": {"serviceName": "web", "servicePort": "http"}}}
    objects, problems = parse_manifest(json.dumps({"apiVersion": "v1", "kind": "List", "items": [item]}), "l.json")
    assert not problems
    assert objects[0]["apiVersion"] == "networking.k8s.io/v1"
    assert objects[0]["spec"] == {"defaultBackend": {"service": {"name": "web", "port": {"name": "http"}}}}


def test_converted_ingress_is_translated_like_its_v1_form(tmp_path):
    """End to end through the provider and the translator: the v1beta1 manifest that used to
    fail with "pathType must be one of …, got None" now routes."""
    from ingressd.config.translate import TranslateSettings, translate

    (tmp_path / "app.yaml").write_text("""
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: shop, namespace: shop}
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, backend: {serviceName: web, servicePort: http}}
""")
    store = ObjectStore()
    ManifestProvider([str(tmp_path)], store, Clock()).scan()
    config = translate(store.snapshot(), TranslateSettings(watch_ingress_without_class=True))
    assert not config.rejections, config.rejections
    assert [(r.host, r.path, r.path_type, r.backend.label) for r in config.routes] == [
        ("shop.test", "/", "ImplementationSpecific", "shop/web:http")]
