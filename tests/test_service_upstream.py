"""service-upstream: a route's one endpoint is its Service's cluster IP and port (translation and
route entries; the end-to-end test is test_e2e_service_upstream.py)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from ingressd.config.entries import build_table
from ingressd.config.model import Backend, Endpoint
from ingressd.config.translate import TranslateSettings, translate
from ingressd.features import Annotation, BuildContext
from ingressd.plugin_manager import load_plugins
from ingressd_plugins.service_upstream import cluster_ip_backend

from harness import ingress
from test_translate import snapshot

N = "nginx.ingress.kubernetes.io/"
SETTINGS = TranslateSettings(watch_ingress_without_class=True)


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


def service(name, cluster_ip="10.96.0.10", kind=None, ports=(("http", 8080, 9000),), external=None,
            endpoints=("10.1.0.1", "10.1.0.2")):
    spec = {"ports": [{"name": n, "port": p, "targetPort": t} for n, p, t in ports]}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    if kind:
        spec["type"] = kind
    if external:
        spec["externalName"] = external
    objects = [{"kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec}]
    if endpoints:
        objects.append({"kind": "EndpointSlice", "metadata": {"name": f"{name}-1", "namespace": "default",
                                                              "labels": {"kubernetes.io/service-name": name}},
                        "ports": [{"name": n, "port": t} for n, _, t in ports],
                        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in endpoints]})
    return objects


def routes_of(objects, plugins):
    config = translate(snapshot(objects), SETTINGS, plugins.annotations)
    assert not config.rejections, config.rejections
    return {route.host: route for route in config.routes}, config


def endpoints(route):
    return [(e.address, e.port) for e in route.backend.endpoints]


def test_true_sends_to_the_cluster_ip_and_the_service_port(plugins):
    routes, _ = routes_of([
        *service("web"),
        ingress("on", [("on.test", [("/", "Prefix", "web", 8080)])], annotations={N + "service-upstream": "true"},
                class_name=None),
        ingress("named", [("named.test", [("/", "Prefix", "web", "http")])],
                annotations={"ingressd.io/service-upstream": "True"}, class_name=None),
        ingress("off", [("off.test", [("/", "Prefix", "web", 8080)])], annotations={N + "service-upstream": "false"},
                class_name=None),
        ingress("absent", [("absent.test", [("/", "Prefix", "web", 8080)])], class_name=None),
    ], plugins)
    assert endpoints(routes["on.test"]) == [("10.96.0.10", 8080)]
    assert endpoints(routes["named.test"]) == [("10.96.0.10", 8080)]  # a named port: the Service's number
    assert endpoints(routes["off.test"]) == [("10.1.0.1", 9000), ("10.1.0.2", 9000)]
    assert endpoints(routes["absent.test"]) == [("10.1.0.1", 9000), ("10.1.0.2", 9000)]
    # the Backend keeps what it was resolved from: the label and the cluster endpoint
    assert routes["on.test"].backend.label == "default/web:8080"
    assert routes["absent.test"].backend.cluster_endpoint == Endpoint("10.96.0.10", 8080)


def test_an_empty_value_is_absent_and_the_own_prefix_wins(plugins):
    routes, _ = routes_of([
        *service("web"),
        ingress("empty", [("empty.test", [("/", "Prefix", "web", 8080)])],
                annotations={N + "service-upstream": " "}, class_name=None),
        ingress("own", [("own.test", [("/", "Prefix", "web", 8080)])],
                annotations={N + "service-upstream": "true", "ingressd.io/service-upstream": "false"},
                class_name=None),
    ], plugins)
    assert endpoints(routes["empty.test"]) == [("10.1.0.1", 9000), ("10.1.0.2", 9000)]
    assert endpoints(routes["own.test"]) == [("10.1.0.1", 9000), ("10.1.0.2", 9000)]


def test_the_ingress_default_backend_too(plugins):
    objects = [*service("web"),
               ingress("d", [], annotations={N + "service-upstream": "true"}, default=("web", 8080), class_name=None)]
    objects[-1]["spec"].pop("rules")
    config = translate(snapshot(objects), SETTINGS, plugins.annotations)
    assert endpoints(config.default_backend) == [("10.96.0.10", 8080)]


@pytest.mark.parametrize("cluster_ip", ["None", "", None])
def test_a_service_without_cluster_ip_keeps_its_endpoints(plugins, cluster_ip):
    routes, _ = routes_of([
        *service("headless", cluster_ip=cluster_ip),
        ingress("h", [("h.test", [("/", "Prefix", "headless", 8080)])], annotations={N + "service-upstream": "true"},
                class_name=None),
    ], plugins)
    assert endpoints(routes["h.test"]) == [("10.1.0.1", 9000), ("10.1.0.2", 9000)]
    assert routes["h.test"].backend.cluster_endpoint is None


def test_an_external_name_service_keeps_its_name(plugins):
    routes, _ = routes_of([
        *service("ext", cluster_ip=None, kind="ExternalName", external="example.org", endpoints=()),
        ingress("x", [("x.test", [("/", "Prefix", "ext", 8080)])], annotations={N + "service-upstream": "true"},
                class_name=None),
    ], plugins)
    assert endpoints(routes["x.test"]) == [("example.org", 8080)]
    assert routes["x.test"].backend.external_name == "example.org"


def test_a_service_without_ready_endpoints_is_still_reached_through_its_cluster_ip(plugins):
    routes, _ = routes_of([
        *service("idle", endpoints=()),
        ingress("i", [("i.test", [("/", "Prefix", "idle", 8080)])], annotations={N + "service-upstream": "true"},
                class_name=None),
    ], plugins)
    assert endpoints(routes["i.test"]) == [("10.96.0.10", 8080)]


def test_a_value_go_does_not_read_as_a_boolean_rejects_the_ingress(plugins):
    config = translate(snapshot([
        *service("web"),
        ingress("bad", [("bad.test", [("/", "Prefix", "web", 8080)])], annotations={N + "service-upstream": "yes"},
                class_name=None),
    ]), SETTINGS, plugins.annotations)
    assert not config.routes
    assert "service-upstream" in str(config.rejections[0])


def test_a_route_backend_error_rejects_only_its_ingress():
    def refuse(value, backend):
        raise ValueError("no such thing")

    def wrong(value, backend):
        return "10.0.0.1"

    declared = [Annotation("x-refuse", str, route_backend=refuse), Annotation("x-wrong", str, route_backend=wrong)]
    config = translate(snapshot([
        *service("web"),
        ingress("a", [("a.test", [("/", "Prefix", "web", 8080)])], annotations={"ingressd.io/x-refuse": "1"},
                class_name=None),
        ingress("b", [("b.test", [("/", "Prefix", "web", 8080)])], annotations={"ingressd.io/x-wrong": "1"},
                class_name=None),
        ingress("c", [("c.test", [("/", "Prefix", "web", 8080)])], class_name=None),
    ]), SETTINGS, declared)
    assert [route.host for route in config.routes] == ["c.test"]
    reasons = sorted(str(rejection) for rejection in config.rejections)
    assert "annotation x-refuse: no such thing" in reasons[0]
    assert "annotation x-wrong: its plugin gave str, not a Backend" in reasons[1]


def test_cluster_ip_backend_alone():
    cluster = Endpoint("10.96.0.1", 80)
    backend = Backend("ns", "svc", "80", (Endpoint("10.1.0.1", 8080),), cluster_endpoint=cluster)
    assert cluster_ip_backend(True, backend).endpoints == (cluster,)
    assert cluster_ip_backend(True, backend).cluster_endpoint == cluster
    assert cluster_ip_backend(False, backend) is backend
    headless = Backend("ns", "svc", "80", (Endpoint("10.1.0.1", 8080),))
    assert cluster_ip_backend(True, headless) is headless


def test_balancers_affinity_and_a_canary_see_the_one_cluster_endpoint(plugins):
    """ewma, consistent hashing and affinity balance over the one endpoint; a canary Ingress
    without the annotation keeps its pods (each Ingress's own annotations, as ingress-nginx)."""
    on = {N + "service-upstream": "true"}
    objects = [
        *service("web"), *service("canary-web", cluster_ip="10.96.0.11", endpoints=("10.2.0.1",)),
        ingress("ewma", [("ewma.test", [("/", "Prefix", "web", 8080)])], annotations={**on, N + "load-balance": "ewma"},
                class_name=None),
        ingress("hash", [("hash.test", [("/", "Prefix", "web", 8080)])],
                annotations={**on, N + "upstream-hash-by": "$request_uri"}, class_name=None),
        ingress("sticky", [("sticky.test", [("/", "Prefix", "web", 8080)])],
                annotations={**on, N + "affinity": "cookie"}, class_name=None),
        ingress("main", [("c.test", [("/", "Prefix", "web", 8080)])], annotations=on, class_name=None),
        ingress("canary", [("c.test", [("/", "Prefix", "canary-web", 8080)])],
                annotations={N + "canary": "true", N + "canary-weight": "50"}, class_name=None),
    ]
    config = translate(snapshot(objects), SETTINGS, plugins.annotations)
    assert not config.rejections, config.rejections
    table, config = build_table(config, plugins, BuildContext(settings={}, reactor=Clock()))
    assert not config.rejections, config.rejections
    entries = {entry.route.host: entry for entry in table.entries()}
    cluster = Endpoint("10.96.0.10", 8080)
    for host in ("ewma.test", "hash.test", "sticky.test", "c.test"):
        assert entries[host].endpoints == (cluster,), host
        assert entries[host].pick() == cluster
    canary_entry = entries["c.test"].alternatives[0][1]
    assert canary_entry.endpoints == (Endpoint("10.2.0.1", 9000),)


def test_the_kube_reflector_keeps_a_services_cluster_ip():
    from ingressd.providers.kube.reflector import slim

    obj = {"metadata": {"name": "web", "namespace": "default", "managedFields": [{}]},
           "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80}]}}
    assert slim(obj, "Service")["spec"]["clusterIP"] == "10.96.0.10"
