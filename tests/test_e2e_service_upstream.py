"""service-upstream end to end: the real ``twistd ingressd`` in file mode sends a route's requests
to its Service's cluster IP and port (here 127.0.0.1 and the port of a backend of its own) instead
of the Service's endpoints (another backend), and a headless Service keeps its endpoints."""

from __future__ import annotations

import time

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, write_manifests

pytestmark = pytest.mark.slow

N = "nginx.ingress.kubernetes.io/"
ON = {N + "service-upstream": "true"}


def service(name: str, cluster_ip: str, port: int, endpoint_ports=()) -> list[dict]:
    """A Service with ``cluster_ip`` and one port ``port`` (named http), its endpoints 127.0.0.1 on
    each of ``endpoint_ports``."""
    objects = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": port}]}}]
    if endpoint_ports:
        objects.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": f"{name}-slice", "namespace": "default",
                                     "labels": {"kubernetes.io/service-name": name}},
                        "addressType": "IPv4", "ports": [{"name": "http", "port": p} for p in endpoint_ports],
                        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]})
    return objects


class World:
    def __init__(self, root):
        self.manifests = root / "manifests"
        self.manifests.mkdir()
        self.cluster = Backend("cluster-ip")  # stands for kube-proxy behind the cluster IP
        self.pods = Backend("pods")
        self.annotations = dict(ON)
        self.write()
        self.proc = Ingressd(self.manifests)

    def write(self) -> None:
        port = self.cluster.port
        write_manifests(self.manifests / "all.yaml", [
            INGRESS_CLASS,
            *service("web", "127.0.0.1", port, [self.pods.port]),
            *service("headless", "None", port, [self.pods.port]),
            *service("idle", "127.0.0.1", port),  # no ready endpoints
            ingress("on", [("on.test", [("/", "Prefix", "web", port)])], annotations=self.annotations),
            ingress("named", [("named.test", [("/", "Prefix", "web", "http")])], annotations=ON),
            ingress("off", [("off.test", [("/", "Prefix", "web", port)])]),
            ingress("headless", [("headless.test", [("/", "Prefix", "headless", port)])], annotations=ON),
            ingress("idle-on", [("idle-on.test", [("/", "Prefix", "idle", port)])], annotations=ON),
            ingress("idle-off", [("idle-off.test", [("/", "Prefix", "idle", port)])]),
        ])

    def stop(self) -> None:
        self.proc.stop()
        self.cluster.stop()
        self.pods.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    built = World(tmp_path_factory.mktemp("service-upstream"))
    yield built
    built.stop()


def answered_by(world, host: str) -> str | None:
    response = world.proc.get("/", host=host, timeout=30)
    return response.headers.get("x-backend") if response.status == 200 else str(response.status)


def test_true_sends_to_the_cluster_ip_and_port(world):
    for _ in range(4):  # every request, not one in turn
        assert answered_by(world, "on.test") == "cluster-ip"
        assert answered_by(world, "named.test") == "cluster-ip"
        assert answered_by(world, "off.test") == "pods"
    before = len(world.cluster.requests)
    world.proc.get("/some/path?x=1", host="on.test")
    method, target, headers, _ = world.cluster.requests[before]
    assert (method, target) == ("GET", "/some/path?x=1")
    assert ("host", "on.test") in headers


def test_a_headless_service_keeps_its_endpoints(world):
    assert answered_by(world, "headless.test") == "pods"


def test_without_ready_endpoints_the_cluster_ip_still_answers(world):
    assert answered_by(world, "idle-on.test") == "cluster-ip"
    assert answered_by(world, "idle-off.test") == "503"  # no endpoint: ingress-nginx's 503


def test_turning_it_off_sends_to_the_endpoints_again(world):
    world.annotations = {N + "service-upstream": "false"}
    world.write()
    try:
        deadline = time.monotonic() + 30
        while answered_by(world, "on.test") != "pods" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answered_by(world, "on.test") == "pods"
    finally:
        world.annotations = dict(ON)
        world.write()
        deadline = time.monotonic() + 30  # the module's other tests expect it on again (any order)
        while answered_by(world, "on.test") != "cluster-ip" and time.monotonic() < deadline:
            time.sleep(0.1)
