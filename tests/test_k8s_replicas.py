"""etc/k8s for N replicas: every manifest under etc/k8s parses, and the fields that must agree do
(the autoscaler and the disruption budget find the Deployment's pods, the grace period covers the
drain, the optional etc/k8s/redis points ingressd at its Redis with the Secret Redis uses)."""

from __future__ import annotations

import pathlib
import shlex

import pytest
import yaml
from kubernetes import client

from ingressd.redis.client import RedisURL

ROOT = pathlib.Path(__file__).resolve().parent.parent
K8S = ROOT / "etc" / "k8s"
MODELS = {"Deployment": client.V1Deployment, "Service": client.V1Service, "Secret": client.V1Secret,
          "HorizontalPodAutoscaler": client.V2HorizontalPodAutoscaler,
          "PodDisruptionBudget": client.V1PodDisruptionBudget}


def documents(folder: pathlib.Path) -> list[dict]:
    found = []
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "kind" in doc and doc["kind"] != "Kustomization":
                found.append(doc)
    return found


ALL = [doc for path in sorted({p.parent for p in K8S.rglob("*.yaml")}) for doc in documents(path)]
TOP = documents(K8S)
REDIS = documents(K8S / "redis")


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def test_every_yaml_file_under_etc_k8s_parses():
    paths = list(K8S.rglob("*.yaml"))
    assert len(paths) >= 14
    for path in paths:
        assert list(yaml.safe_load_all(path.read_text())), path
    for doc in ALL:
        if doc["kind"] in MODELS:
            MODELS[doc["kind"]].from_dict(doc)  # required fields present, types right


def _pod_labels(deployment):
    return deployment["spec"]["template"]["metadata"]["labels"]


def _selects(selector, labels):
    return bool(selector["matchLabels"]) and selector["matchLabels"].items() <= labels.items()


def _args(deployment):
    return dict(arg[2:].split("=", 1) for arg in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
                if arg.startswith("--") and "=" in arg)


def test_the_autoscaler_scales_the_deployment_on_cpu():
    deployment, hpa = one(TOP, "Deployment", "ingressd"), one(TOP, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"], "Deployment", deployment["metadata"]["name"])
    assert hpa["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    # utilisation is measured against the request: the container must have one
    assert "cpu" in deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert "replicas" not in deployment["spec"]  # a re-apply must not reset the autoscaler's count


def test_the_disruption_budget_covers_the_deployments_pods_and_leaves_one_serving():
    deployment, pdb = one(TOP, "Deployment", "ingressd"), one(TOP, "PodDisruptionBudget")
    assert pdb["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert _selects(pdb["spec"]["selector"], _pod_labels(deployment))
    minimum = one(TOP, "HorizontalPodAutoscaler")["spec"]["minReplicas"]
    assert minimum - pdb["spec"]["maxUnavailable"] >= 1


def test_replicas_spread_over_nodes_and_zones():
    deployment = one(TOP, "Deployment", "ingressd")
    pod = deployment["spec"]["template"]["spec"]
    keys = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert set(keys) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for constraint in keys.values():
        assert _selects(constraint["labelSelector"], _pod_labels(deployment))
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"  # a one-node cluster still schedules
    [term] = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert _selects(term["podAffinityTerm"]["labelSelector"], _pod_labels(deployment))


def test_the_grace_period_covers_the_drain_with_the_servers_defaults():
    from ingressd.tap import CORE_PARAMETERS

    defaults = {name: value for name, _, value, _ in CORE_PARAMETERS}
    deployment = one(TOP, "Deployment", "ingressd")
    args = _args(deployment)
    drain = sum(float(args.get(name, defaults[name])) for name in ("shutdown-delay", "shutdown-grace"))
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= drain + 1


def _patched_args():
    deployment = one(TOP, "Deployment", "ingressd")
    args = list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
    patch = yaml.safe_load((K8S / "redis" / "deployment-patch.yaml").read_text())
    for op in patch:
        assert op["op"] == "add" and op["path"] == "/spec/template/spec/containers/0/args/-"
        args.append(op["value"])
    return args


def test_the_redis_folder_points_ingressd_at_its_redis_with_the_secret_redis_uses():
    kustomization = yaml.safe_load((K8S / "redis" / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["..", "redis.yaml"]
    assert {p["path"] for p in kustomization["patches"]} == {"deployment-patch.yaml"}
    redis, service, secret = one(REDIS, "Deployment", "redis"), one(REDIS, "Service", "redis"), one(REDIS, "Secret")
    assert _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(redis))
    assert _selects(redis["spec"]["selector"], _pod_labels(redis))
    options = dict(arg[2:].split("=", 1) for arg in _patched_args() if arg.startswith("--") and "=" in arg)
    url = RedisURL.parse(options["redis"])
    assert (url.host, url.port) == (f"{service['metadata']['name']}.{service['metadata']['namespace']}",
                                    service["spec"]["ports"][0]["port"])
    assert not url.password  # from the Secret, not the command line
    assert options["redis-secret"] == f"$(POD_NAMESPACE)/{secret['metadata']['name']}"
    assert "password" in secret["stringData"]
    container = redis["spec"]["template"]["spec"]["containers"][0]
    [env] = container["env"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "password"}
    assert container["args"][container["args"].index("--requirepass") + 1] == f"$({env['name']})"
    # ingressd's own Deployment's labels do not select the Redis pods, nor the other way round
    ingressd = one(TOP, "Deployment", "ingressd")
    assert not _selects(ingressd["spec"]["selector"], _pod_labels(redis))
    assert not _selects(redis["spec"]["selector"], _pod_labels(ingressd))


def test_the_patched_arguments_are_valid_ingressd_options():
    from ingressd.tap import Options

    args = [arg.replace("$(POD_NAMESPACE)", "ingressd") for arg in _patched_args()]
    assert args[:4] == ["twistd", "-n", "--pidfile=", "ingressd"]
    options = Options()
    options.parseOptions(args[4:])
    assert (options["redis"], options["redis-secret"]) == ("redis://redis.ingressd:6379", "ingressd/ingressd-redis")


@pytest.mark.parametrize("line", [
    line.strip()[2:] for line in (K8S / "deployment.yaml").read_text().splitlines()
    if line.strip().startswith("# - --replicas-hint") or line.strip().startswith("# - --redis")])
def test_the_commented_options_are_valid_too(line):
    from ingressd.tap import Options

    option = shlex.split(line.replace("$(POD_NAMESPACE)", "ingressd"))[-1]
    extra = ["--redis=redis://r"] if option.startswith("--redis-secret") else []
    Options().parseOptions(["--kubernetes", "--publish-service=ingressd/ingressd", *extra, option])
