"""ingress-nginx's official Grafana dashboards work unchanged with ``--metrics-compat nginx``.

Every PromQL query of the two dashboards (tests/fixtures/grafana/) is read for the metric
names it uses and the labels it selects or groups by; a real ``twistd ingressd`` is scraped
and must expose each name with each label. Labels Prometheus adds itself when it scrapes a
pod (``instance``, ``namespace``, ``kubernetes_pod_name``) are not the exporter's; a metric's
own ``namespace`` label reaches the dashboards renamed ``exported_namespace`` (Prometheus
keeps the target's), so that one is looked for as ``namespace``.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

import certs

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

FIXTURES = Path(__file__).parent / "fixtures" / "grafana"
DASHBOARDS = ("nginx.json", "request-handling-performance.json")
TARGET_LABELS = {"instance", "namespace", "kubernetes_pod_name", "job", "pod"}
RENAMED = {"exported_namespace": "namespace"}
# The nginx dashboard's certificate panel selects ``ingress`` on ssl_expire_time_seconds,
# a label ingress-nginx itself never gave that metric (its labels: namespace, class, host,
# secret_name, identifier): the panel shows nothing there either.
NOT_IN_INGRESS_NGINX = {("nginx_ingress_controller_ssl_expire_time_seconds", "ingress")}
_METRIC = re.compile(r"\b(nginx_ingress_controller_[a-z_]+)\s*(\{[^}]*\})?")
_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_BY = re.compile(r"\bby\s*\(([^)]*)\)")
_LABEL_VALUES = re.compile(r"label_values\(\s*(nginx_ingress_controller_[a-z_]+)\s*(?:\{[^}]*\})?\s*,\s*([a-z_]+)\s*\)")
# A sample line of the exposition, read as written (the client library's parser would add
# ``_total`` to the names of counters ingress-nginx exposes without it, as Prometheus does not).
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_SAMPLE_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _queries(document) -> list[str]:
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "query") and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(document)
    return found


def _base(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def dashboard_uses() -> dict[str, set[str]]:
    """Sample name → labels the dashboards' queries use on it."""
    uses: dict[str, set[str]] = {}
    for name in DASHBOARDS:
        for query in _queries(json.loads((FIXTURES / name).read_text())):
            grouped = {label.strip() for group in _BY.findall(query) for label in group.split(",") if label.strip()}
            for metric, selector in _METRIC.findall(query):
                labels = set(_LABEL.findall(selector or "")) | grouped
                if metric.endswith("_bucket"):
                    labels.add("le")
                uses.setdefault(metric, set()).update(labels)
            for metric, label in _LABEL_VALUES.findall(query):
                uses.setdefault(metric, set()).add(label)
    return uses


def test_the_dashboards_are_read_whole():
    uses = dashboard_uses()
    assert len(uses) >= 17  # names as the queries write them (histograms by _bucket/_sum/_count)
    assert {"nginx_ingress_controller_config_hash", "nginx_ingress_controller_nginx_process_connections",
            "nginx_ingress_controller_nginx_process_cpu_seconds_total",
            "nginx_ingress_controller_nginx_process_resident_memory_bytes"} <= set(uses)
    assert {"controller_pod", "controller_class", "controller_namespace"} <= uses[
        "nginx_ingress_controller_config_hash"]
    assert {"method", "host", "path", "status", "le", "ingress"} <= uses[
        "nginx_ingress_controller_request_duration_seconds_bucket"] | uses[
        "nginx_ingress_controller_request_duration_seconds_count"]


@pytest.mark.slow
def test_ingressd_exposes_every_metric_and_label_the_dashboards_use(tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    web = Backend("web")
    leaf = certs.make_leaf("shop.test")
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
        ingress("shop", [("shop.test", [("/", "Prefix", "web", 80)])], namespace="default",
                tls=[{"hosts": ["shop.test"], "secretName": "shop-tls"}]),
        certs.secret_manifest("default", "shop-tls", leaf.cert_pem, leaf.key_pem()),
    ])
    proc = Ingressd(manifests, ["--metrics-compat", "nginx"])
    try:
        deadline = time.monotonic() + 30
        while proc.get("/", host="shop.test").status not in (200, 308) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.get("/missing", host="shop.test")
        status, _, body = proc.admin("/metrics")
        assert status == 200
        exposed: dict[str, set[str]] = {}
        values: dict[tuple, float] = {}
        for line in body.decode().splitlines():
            match = _SAMPLE.match(line)
            if match is None or line.startswith("#"):
                continue
            name, labels = match.group(1), dict(_SAMPLE_LABEL.findall(match.group(2) or ""))
            exposed.setdefault(name, set()).update(labels)
            values[(name, tuple(sorted(labels.items())))] = float(match.group(3))
        missing = []
        for metric, labels in sorted(dashboard_uses().items()):
            if metric not in exposed:
                missing.append(metric)
                continue
            for label in sorted(labels):
                label = RENAMED.get(label, label)
                if label in TARGET_LABELS - {"namespace"} or (metric, label) in NOT_IN_INGRESS_NGINX:
                    continue
                if label == "namespace" and label not in exposed[metric]:
                    continue  # the target's namespace: added by Prometheus
                if label not in exposed[metric]:
                    missing.append(f"{metric}{{{label}}}")
        assert missing == []

        def value(name, **labels):
            return [v for (n, ls), v in values.items() if n == name and all(dict(ls).get(k) == x
                                                                            for k, x in labels.items())]
        assert value("nginx_ingress_controller_config_hash")[0] > 0
        assert value("nginx_ingress_controller_nginx_process_resident_memory_bytes")[0] > 1_000_000
        assert value("nginx_ingress_controller_nginx_process_cpu_seconds_total")[0] > 0
        states = {dict(ls)["state"] for (n, ls) in values if n == "nginx_ingress_controller_nginx_process_connections"}
        assert states == {"active", "reading", "writing", "waiting"}
        assert value("nginx_ingress_controller_nginx_process_connections", state="writing") == [0.0]
        assert value("nginx_ingress_controller_requests", ingress="shop")  # 308: ssl-redirect
    finally:
        proc.stop()
        web.stop()


def test_with_workers_the_process_figures_are_summed_and_the_rest_labelled_by_worker():
    from types import SimpleNamespace

    from ingressd.workers import _metrics

    def worker(rss, writing):
        return 200, (
            "# HELP nginx_ingress_controller_nginx_process_resident_memory_bytes m\n"
            "# TYPE nginx_ingress_controller_nginx_process_resident_memory_bytes gauge\n"
            f'nginx_ingress_controller_nginx_process_resident_memory_bytes{{controller_pod="p"}} {rss}\n'
            "# HELP nginx_ingress_controller_nginx_process_connections c\n"
            "# TYPE nginx_ingress_controller_nginx_process_connections gauge\n"
            f'nginx_ingress_controller_nginx_process_connections{{controller_pod="p",state="writing"}} {writing}\n'
            "# HELP nginx_ingress_controller_config_hash h\n"
            "# TYPE nginx_ingress_controller_config_hash gauge\n"
            'nginx_ingress_controller_config_hash{controller_pod="p"} 7.0\n').encode()

    _, _, body = _metrics([worker(100.0, 1), worker(50.0, 2)], SimpleNamespace(restarts=0))
    text = body.decode()
    assert 'nginx_ingress_controller_nginx_process_resident_memory_bytes{controller_pod="p"} 150.0' in text
    assert 'nginx_ingress_controller_nginx_process_connections{controller_pod="p",state="writing"} 3.0' in text
    assert 'nginx_ingress_controller_config_hash{controller_pod="p",worker="0"} 7.0' in text
    assert 'nginx_ingress_controller_config_hash{controller_pod="p",worker="1"} 7.0' in text


def test_config_hash_changes_exactly_when_what_is_served_does():
    from types import SimpleNamespace

    from ingressd.admin.metrics import Metrics

    def config(*endpoints):
        backend = SimpleNamespace(service="web", port=80,
                                  endpoints=[SimpleNamespace(address=a, port=8080) for a in endpoints])
        route = SimpleNamespace(host="shop.test", path="/", ingress=SimpleNamespace(namespace="d", name="shop"),
                                backend=backend)
        return SimpleNamespace(routes=(route,))

    metrics = Metrics(SimpleNamespace(seconds=lambda: 0.0), compat="nginx")
    hashes = []
    for served in (config("10.0.0.1", "10.0.0.2"), config("10.0.0.2", "10.0.0.1"), config("10.0.0.3")):
        metrics.config_changed(served)
        hashes.append(metrics.nginx.config_hash)
    assert hashes[0] == hashes[1] != hashes[2] and hashes[0] > 0
