"""The example Gateway API manifests (etc/k8s/gateway-api): they parse, are what the API
server accepts, name each other consistently (class → Gateway → HTTPRoute → listeners) and
are read by the file provider as they are by the cluster."""

from __future__ import annotations

import pathlib

import yaml

from ingressd.providers import files
from ingressd.providers.kube.gateway_status import DEFAULT_CONTROLLER_NAME

try:
    from tests import fakeapi
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import fakeapi

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "etc" / "k8s" / "gateway-api"
SERVICE = ROOT / "etc" / "k8s" / "service.yaml"
GROUP = "gateway.networking.k8s.io"


def load() -> dict[str, dict]:
    documents = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                assert document["kind"] not in documents, document["kind"]
                documents[document["kind"]] = document
    return documents


DOCS = load()


def test_the_three_kinds_in_the_standard_channel_version():
    assert set(DOCS) == {"GatewayClass", "Gateway", "HTTPRoute", "TLSRoute"}
    for document in DOCS.values():
        assert document["apiVersion"] == f"{GROUP}/v1"


def test_the_class_is_ingressds():
    gateway_class = DOCS["GatewayClass"]
    assert "namespace" not in gateway_class["metadata"]  # cluster-scoped
    assert gateway_class["spec"]["controllerName"] == DEFAULT_CONTROLLER_NAME


def test_the_gateway_listeners_match_the_service_ports():
    gateway = DOCS["Gateway"]
    assert gateway["spec"]["gatewayClassName"] == DOCS["GatewayClass"]["metadata"]["name"]
    listeners = gateway["spec"]["listeners"]
    assert len({listener["name"] for listener in listeners}) == len(listeners)
    service_ports = {port["name"]: port["port"] for port in yaml.safe_load(SERVICE.read_text())["spec"]["ports"]}
    for listener in listeners:
        assert listener["protocol"] in ("HTTP", "HTTPS", "TLS")
        # TLS (passthrough) listeners are served on the HTTPS port too
        assert listener["port"] == service_ports[listener["protocol"].lower().replace("tls", "https")]
        if listener["protocol"] == "TLS":
            assert listener["tls"]["mode"] == "Passthrough"
        if listener["protocol"] == "HTTPS":
            assert listener["tls"]["mode"] == "Terminate"
            assert all(ref.get("kind", "Secret") == "Secret" for ref in listener["tls"]["certificateRefs"])


def test_the_route_attaches_to_the_gateways_listeners():
    gateway, route = DOCS["Gateway"], DOCS["HTTPRoute"]
    listeners = {listener["name"]: listener for listener in gateway["spec"]["listeners"]}
    for parent in route["spec"]["parentRefs"]:
        assert parent["name"] == gateway["metadata"]["name"]
        assert parent.get("namespace", route["metadata"]["namespace"]) == gateway["metadata"]["namespace"]
        listener = listeners[parent["sectionName"]]
        # a route in another namespace is allowed only by "from: All" (or a selector)
        assert listener["allowedRoutes"]["namespaces"]["from"] == "All"
        hostname = listener.get("hostname")
        assert hostname is None or hostname in route["spec"]["hostnames"]
    for rule in route["spec"]["rules"]:
        for match in rule["matches"]:
            assert match["path"]["type"] in ("Exact", "PathPrefix", "RegularExpression")
        for backend in rule["backendRefs"]:
            assert backend["port"] and backend.get("kind", "Service") == "Service"


def test_the_file_provider_reads_them():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        objects, problems = files.parse_manifest(path.read_text(), path.name)
        assert problems == [] and len(objects) == 1, path.name


def test_the_api_server_accepts_them():
    cluster = fakeapi.FakeCluster()
    for document in DOCS.values():
        created = cluster.apply(document)
        assert created["metadata"]["generation"] == 1
        assert created["spec"] == document["spec"]
