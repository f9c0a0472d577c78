"""The deployment manifests (etc/k8s) and the Dockerfile: what matters, and that the RBAC
rules cover every API request ingressd.providers.kube makes (and the code makes no request not listed)."""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess

import pytest
import yaml
from kubernetes import client

from ingressd.providers.kube import config as kube_config
from ingressd.providers.kube import rest
from ingressd.providers.kube.config import API_CALLS, ApiCall
from ingressd.providers.kube.events import CONTROLLER
from ingressd.providers.kube.service import DEFAULT_ELECTION_ID
from ingressd.config.store import KINDS

ROOT = pathlib.Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "etc" / "k8s"
KUBE_PACKAGE = ROOT / "ingressd" / "providers" / "kube"
NAMESPACE = "ingressd"

MODELS = {"Deployment": client.V1Deployment, "Service": client.V1Service,
          "Ingress": client.V1Ingress, "IngressClass": client.V1IngressClass,
          "ServiceAccount": client.V1ServiceAccount, "Namespace": client.V1Namespace,
          "ClusterRole": client.V1ClusterRole, "ClusterRoleBinding": client.V1ClusterRoleBinding,
          "Role": client.V1Role, "RoleBinding": client.V1RoleBinding,
          "HorizontalPodAutoscaler": client.V2HorizontalPodAutoscaler,
          "PodDisruptionBudget": client.V1PodDisruptionBudget}


def load_all() -> list[dict]:
    documents = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


DOCS = load_all()


def one(kind: str, name: str | None = None) -> dict:
    found = [d for d in DOCS if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container() -> dict:
    return one("Deployment")["spec"]["template"]["spec"]["containers"][0]


def allowed(rules: list[dict], group: str, resource: str, verb: str,
            name: str | None = None) -> bool:
    for rule in rules:
        if group in rule.get("apiGroups", []) and resource in rule.get("resources", []) \
                and verb in rule.get("verbs", []):
            names = rule.get("resourceNames")
            if not names or (name is not None and name in names):
                return True
    return False


# -- the manifests parse, and are valid API objects --------------------------------------


def test_every_document_is_a_valid_object():
    kinds = {d["kind"] for d in DOCS}
    assert kinds == set(MODELS)
    for doc in DOCS:
        MODELS[doc["kind"]].from_dict(doc)  # required fields present, types right


def test_kustomization_lists_every_file_but_the_example():
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml", "example-ingress.yaml"}
    assert set(listed) == files


def test_namespaced_objects_live_in_the_ingressd_namespace():
    one("Namespace", NAMESPACE)
    for doc in DOCS:
        if doc["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding", "IngressClass"):
            assert "namespace" not in doc["metadata"]
        elif doc["kind"] != "Ingress":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]


# -- RBAC ----------------------------------------------------------------------------------


def test_rbac_covers_every_api_call():
    cluster_rules = one("ClusterRole")["rules"]
    lease_rules = one("Role")["rules"]
    for call in API_CALLS:
        if call.resource == "leases":
            # the Lease lives in the pod's namespace: a Role there, limited to its name
            assert allowed(lease_rules, call.group, call.resource, call.verb,
                           DEFAULT_ELECTION_ID), call
        else:
            assert allowed(cluster_rules, call.group, call.resource, call.verb), call


def test_rbac_grants_nothing_unused():
    needed = {(c.group, c.resource, c.verb) for c in API_CALLS}
    for role in (one("ClusterRole"), one("Role")):
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert "*" not in (group, resource, verb)
                        assert (group, resource, verb) in needed, (group, resource, verb)


def test_lease_create_is_not_limited_by_name():
    # RBAC cannot check resourceNames on create; a rule with names would never allow it
    lease_rules = one("Role")["rules"]
    assert allowed(lease_rules, "coordination.k8s.io", "leases", "create")


def test_bindings_name_the_service_account():
    account = one("ServiceAccount")["metadata"]["name"]
    assert one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = one(kind)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                                      "name": one(role_kind)["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account,
                                        "namespace": NAMESPACE}]
    assert one("Role")["metadata"]["namespace"] == one("RoleBinding")["metadata"]["namespace"]


def test_api_calls_name_resources_the_client_requests():
    rules = {rest.rbac_rule(kind, call.verb, sub) for kind in rest.RESOURCES
             for call in API_CALLS for sub in ("", "status")}
    for call in API_CALLS:
        assert call in rules, call


REQUEST_VERBS = ("list", "watch", "get", "create", "update", "patch")


def _requests_in(path: pathlib.Path) -> set[ApiCall]:
    """The requests a module makes through ``KubeRest`` (``self.rest.<verb>(kind, ...)``), as
    RBAC rules; a kind that is not a literal stands for the module's ``REQUEST_KINDS`` (a
    literal tuple: the Gateway API status writers') or, without one, for every kind the store
    holds (the reflector's, which is what reflectors are started for)."""
    found = set()
    tree = ast.parse(path.read_text())
    variable_kinds = list(KINDS)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "REQUEST_KINDS"
                                                for t in node.targets):
            variable_kinds = list(ast.literal_eval(node.value))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in REQUEST_VERBS and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "rest" and node.args):
            continue
        first = node.args[0]
        kinds = [first.value] if isinstance(first, ast.Constant) else variable_kinds
        sub = next((k.value.value for k in node.keywords
                    if k.arg == "subresource" and isinstance(k.value, ast.Constant)), "")
        found.update(rest.rbac_rule(kind, node.func.attr, sub) for kind in kinds)
    return found


def test_code_makes_no_request_missing_from_api_calls():
    used: set[ApiCall] = set()
    for path in KUBE_PACKAGE.glob("*.py"):
        if path.name != "rest.py":  # the client itself
            used |= _requests_in(path)
    assert used, "the scan found no request at all: it is broken"
    listed = set(API_CALLS)
    assert used <= listed, f"requests missing from API_CALLS: {sorted(used - listed, key=str)}"
    assert listed <= used, f"API_CALLS lists requests nothing makes: {sorted(listed - used, key=str)}"


def test_the_scan_sees_literal_and_variable_kinds(tmp_path):
    # guard the guard: a literal kind, a subresource and a kind in a variable are all noticed
    module = tmp_path / "module.py"
    module.write_text("self.rest.patch('Ingress', ns, name, body, subresource='status')\n"
                      "self.rest.watch(self.kind, ns)\n"
                      "other.get('Lease', 'a', 'b')\n")
    assert _requests_in(module) == {ApiCall("networking.k8s.io", "ingresses/status", "patch")} | {
        rest.rbac_rule(kind, "watch") for kind in KINDS}


def test_the_scan_reads_a_modules_request_kinds(tmp_path):
    # a module naming the kinds it requests (the Gateway API status writers) is checked for those
    module = tmp_path / "module.py"
    module.write_text("REQUEST_KINDS = ('Gateway', 'HTTPRoute')\n"
                      "self.rest.patch(self.kind, ns, name, body, subresource='status')\n")
    assert _requests_in(module) == {ApiCall("gateway.networking.k8s.io", "gateways/status", "patch"),
                                    ApiCall("gateway.networking.k8s.io", "httproutes/status", "patch")}


def test_gateway_status_calls_are_declared():
    group = "gateway.networking.k8s.io"
    for plural in ("gatewayclasses", "gateways", "httproutes", "grpcroutes", "listenersets", "tlsroutes",
                   "backendtlspolicies"):
        assert ApiCall(group, f"{plural}/status", "patch") in API_CALLS
        assert ApiCall(group, plural, "get") in API_CALLS  # re-read after a conflict
    assert ApiCall(group, "referencegrants/status", "patch") not in API_CALLS  # no status


def test_an_undeclared_request_is_refused_before_it_is_sent():
    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # nothing listens: a request would fail otherwise
    api = rest.KubeRest(client.ApiClient(configuration))
    with pytest.raises(rest.UndeclaredCall, match="create secrets"):
        api.create("Secret", "default", {"metadata": {"name": "x"}})
    with pytest.raises(rest.UndeclaredCall, match="get secrets"):
        api.get("Secret", "default", "x")


# -- Deployment, Service, IngressClass ---------------------------------------------------


def test_deployment():
    deployment = one("Deployment")
    assert "replicas" not in deployment["spec"]  # the HorizontalPodAutoscaler's (tests/test_k8s_replicas.py)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    spec = container()
    security = spec["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert set(spec["resources"]["requests"]) >= {"cpu", "memory"}
    assert "memory" in spec["resources"]["limits"]
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert ports == {"http": 8080, "https": 8443, "health": 9180}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = spec[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == 9180
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in spec["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_deployment_arguments_match_the_other_objects():
    args = container()["args"]
    assert args[:5] == ["twistd", "-n", "--pidfile=", "ingressd", "--kubernetes"]
    options = dict(a[2:].split("=", 1) for a in args[5:])
    assert options["ingress-class"] == one("IngressClass")["metadata"]["name"]
    service = one("Service")
    assert options["publish-service"] == f"$(POD_NAMESPACE)/{service['metadata']['name']}"
    # the Role names the Lease the code will use
    assert options["election-id"] in one("Role")["rules"][0]["resourceNames"]
    # probes and scraping reach the admin port on the pod's address; /routes is not served there
    assert options["admin"] == "tcp:9180"
    assert options["admin-routes"] == "off"


def test_service():
    service = one("Service")
    assert service["spec"]["type"] == "LoadBalancer"
    ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
    named = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert {port: named[target] for port, target in ports.items()} == {80: 8080, 443: 8443}
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_ingress_class_and_example():
    ingress_class = one("IngressClass")
    assert ingress_class["spec"]["controller"] == CONTROLLER == "ingressd.io/ingress-controller"
    example = one("Ingress")
    assert example["spec"]["ingressClassName"] == ingress_class["metadata"]["name"]
    for rule in example["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["pathType"] in ("Exact", "Prefix", "ImplementationSpecific")


# -- Dockerfile ------------------------------------------------------------------------------


def parse_dockerfile(name: str) -> list[tuple[str, str]]:
    text = (ROOT / name).read_text()
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", text)  # join continued lines, drop inner comments
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile("Dockerfile")


def test_dockerfile(dockerfile):
    values = lambda word: [rest for w, rest in dockerfile if w == word]  # noqa: E731
    assert re.fullmatch(r"python:3\.11-slim\S*", values("FROM")[0])
    runs = " ".join(values("RUN"))
    assert 'pip install ".[otel]"' in runs  # with the otel extra: the image can trace (enable-opentelemetry)
    assert 'python -c "from twisted.plugin import IPlugin, getPlugins; ' \
           'list(getPlugins(IPlugin))"' in runs
    users = values("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert set(" ".join(values("EXPOSE")).split()) == {"8080", "8443", "9180"}
    assert values("CMD")[-1].startswith('["twistd", "-n", "--pidfile=", "ingressd", "--kubernetes"')
    # the plugin cache is built before the switch to the unprivileged user
    words = [w for w, _ in dockerfile]
    plugin_run = max(i for i, (w, rest) in enumerate(dockerfile) if "getPlugins" in rest)
    assert plugin_run < words.index("USER")


def test_pypy_dockerfile_is_the_same_image_on_pypy():
    """Dockerfile.pypy (documented as untested here): the official PyPy base, the GC setting the
    docs require, the plugin cache built before the unprivileged user, the same ports and command."""
    steps = parse_dockerfile("Dockerfile.pypy")
    values = lambda word: [rest for w, rest in steps if w == word]  # noqa: E731
    assert all(re.fullmatch(r"pypy:3\.11-slim(\s+AS\s+\w+)?", base) for base in values("FROM"))
    runs = " ".join(values("RUN"))
    assert "pip install ." in runs and "getPlugins(IPlugin)" in runs
    assert "PYPY_GC_NURSERY=32MB" in " ".join(values("ENV"))
    assert values("USER")[-1].split(":")[0] not in ("root", "0")
    assert set(" ".join(values("EXPOSE")).split()) == {"8080", "8443", "9180"}
    assert values("CMD")[-1] == parse_dockerfile("Dockerfile")[-1][1]
    words = [w for w, _ in steps]
    assert max(i for i, (w, rest) in enumerate(steps) if "getPlugins" in rest) < words.index("USER")


def test_no_file_fetches_software_outside_the_package_managers():
    """The project's machines reach the registries only through their ordinary clients: no script
    or doc in the repository downloads packages another way (bench/pypy.sh did; removed)."""
    hosts = ("deb.debian.org", "snapshot.debian.org", "downloads.python.org", "pypy.org/download",
             "files.pythonhosted.org")
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        path = ROOT / name
        if path.name == "test_k8s_manifests.py" or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        assert not any(host in text for host in hosts), path


def test_config_module_documents_the_call_list():
    assert "API_CALLS" in (kube_config.__doc__ or "")


def test_deployment_grace_period_covers_the_drain():
    """SIGTERM drains for --shutdown-delay + --shutdown-grace: the kubelet must wait longer."""
    args = container()["args"]
    options = dict(a[2:].split("=", 1) for a in args[5:])
    pod = one("Deployment")["spec"]["template"]["spec"]
    drain = float(options["shutdown-delay"]) + float(options["shutdown-grace"])
    assert pod["terminationGracePeriodSeconds"] > drain
    probe = container()["readinessProbe"]
    # The readiness failure is seen before the listeners close.
    assert probe["periodSeconds"] * probe.get("failureThreshold", 3) < float(options["shutdown-delay"])
