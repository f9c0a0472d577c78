"""End to end in cluster mode: ``twistd ingressd --kubernetes`` against the fake apiserver.

The real process, the official kubernetes client (through a kubeconfig pointing at the
fake), real backends: objects created through the API reach traffic; changes, 410s and an
API outage are survived; status and Events are written back.
"""

from __future__ import annotations

import time

import pytest

import fakeapi
from backends import Backend
from harness import Ingressd

pytestmark = pytest.mark.slow


def wait_for(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def seed(c, port: int, host: str) -> None:
    """Our IngressClass, Service web with one endpoint on ``port``, Ingress app for ``host``."""
    c.apply(fakeapi.ingress_class())
    c.apply(fakeapi.service("web"))
    c.apply(fakeapi.endpoint_slice("web-1", "web", addresses=("127.0.0.1",), port=port))
    c.apply(fakeapi.ingress("app", host=host, service="web"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("kube")
    (root / "manifests").mkdir()
    one, two = Backend("one"), Backend("two")
    api = fakeapi.FakeAPIServer(bookmark_interval=0.5).start()
    kubeconfig = api.write_kubeconfig(str(root / "kubeconfig"))
    c = api.cluster
    seed(c, one.port, "app.example.com")
    c.apply(fakeapi.ingress("foreign", host="foreign.example.com", service="web", ingress_class="nginx"))
    proc = Ingressd(root / "manifests", ["--kubernetes", "--kubeconfig", kubeconfig,
                                         "--publish-status-address", "192.0.2.10"])
    yield proc, api, one, two
    proc.stop()
    api.stop()
    one.stop()
    two.stop()


def backend_of(proc, host, path="/"):
    response = proc.get(path, host=host)
    return response.json()["backend"] if response.status == 200 else response.status


def test_initial_sync_serves_and_ignores_other_classes(cluster):
    proc, api, *_ = cluster
    assert backend_of(proc, "app.example.com") == "one"
    assert backend_of(proc, "foreign.example.com") == 404


def test_changes_reach_traffic_quickly(cluster):
    proc, api, one, two = cluster
    c = api.cluster
    latencies = []
    started = time.monotonic()
    c.apply(fakeapi.ingress("added", host="added.example.com", service="web"))
    wait_for(lambda: backend_of(proc, "added.example.com") == "one")
    latencies.append(time.monotonic() - started)

    c.apply(fakeapi.service("other"))
    c.apply(fakeapi.endpoint_slice("other-1", "other", addresses=("127.0.0.1",), port=two.port))
    started = time.monotonic()
    c.apply(fakeapi.ingress("added", host="added.example.com", service="other"))
    wait_for(lambda: backend_of(proc, "added.example.com") == "two")
    latencies.append(time.monotonic() - started)

    started = time.monotonic()
    c.apply(fakeapi.endpoint_slice("other-1", "other", addresses=("127.0.0.1",), port=one.port))
    wait_for(lambda: backend_of(proc, "added.example.com") == "one")
    latencies.append(time.monotonic() - started)

    started = time.monotonic()
    c.remove("Ingress", "default", "added")
    wait_for(lambda: backend_of(proc, "added.example.com") == 404)
    latencies.append(time.monotonic() - started)
    print("change → traffic latencies (s):", ", ".join(f"{x:.3f}" for x in latencies))


def test_410_recovery(cluster):
    proc, api, one, two = cluster
    c = api.cluster
    c.compact()
    c.kill_all_watches()  # every watch resumes from a compacted version: 410 → re-list
    c.apply(fakeapi.ingress("after-410", host="after410.example.com", service="web"))
    wait_for(lambda: backend_of(proc, "after410.example.com") == "one", timeout=15)


def test_api_outage_keeps_serving_then_converges(cluster):
    proc, api, one, two = cluster
    port = api.port
    api.stop()
    for _ in range(10):
        assert backend_of(proc, "app.example.com") == "one"
        time.sleep(0.2)
    assert proc.admin("/readyz")[0] == 200
    api.port = port
    api.start()
    api.cluster.apply(fakeapi.ingress("after-outage", host="outage.example.com", service="web"))
    wait_for(lambda: backend_of(proc, "outage.example.com") == "one", timeout=20)


def test_status_written_only_for_our_ingresses(cluster):
    proc, api, *_ = cluster
    c = api.cluster

    def status(name):
        return (c.get("ingresses", "default", name).get("status") or {}).get("loadBalancer", {}).get("ingress")

    assert wait_for(lambda: status("app")) == [{"ip": "192.0.2.10"}]
    assert not status("foreign")


def test_rejected_ingress_gets_a_warning_event(cluster):
    proc, api, *_ = cluster
    c = api.cluster
    bad = fakeapi.ingress("bad-port", host="bad.example.com", service="web", port=81)
    c.apply(bad)

    def event():
        for obj in c.objects_of("Event", "default"):
            if obj.get("involvedObject", {}).get("name") == "bad-port" and obj.get("type") == "Warning":
                return obj
        return None

    found = wait_for(event, timeout=15)
    assert "has no port 81" in found["message"]
    assert backend_of(proc, "app.example.com") == "one"


def test_an_unhonoured_annotation_gets_a_warning_event_and_no_traffic(cluster):
    proc, api, one, _ = cluster
    c = api.cluster
    c.apply(fakeapi.ingress("oauth", host="oauth.example.com", service="web",
                            annotations={"nginx.ingress.kubernetes.io/enable-modsecurity": "true"}))

    def event():
        for obj in c.objects_of("Event", "default"):
            if obj.get("involvedObject", {}).get("name") == "oauth" and obj.get("type") == "Warning":
                return obj
        return None

    found = wait_for(event, timeout=15)
    assert "enable-modsecurity" in found["message"] and "not served" in found["message"]
    assert proc.get("/", host="oauth.example.com").status == 404
    assert backend_of(proc, "app.example.com") == "one"


def test_not_ready_until_every_resource_is_listed(tmp_path):
    """/readyz is 503 while a resource cannot be listed, and 200 once the first full sync
    of every resource is applied; traffic is routed from then on."""
    (tmp_path / "manifests").mkdir()
    web = Backend("web")
    api = fakeapi.FakeAPIServer().start()
    try:
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
        seed(api.cluster, web.port, "ready.example.com")
        api.add_fault("status", code=500, method="GET", path=r"endpointslices", watch=False, times=10_000)
        proc = Ingressd(tmp_path / "manifests", ["--kubernetes", "--kubeconfig", kubeconfig], wait=False)
        try:
            wait_for(lambda: _answers(proc), timeout=20)
            time.sleep(2)  # every other resource listed by now; EndpointSlices keep failing
            assert proc.admin("/readyz")[0] == 503
            assert api.calls("GET", r"endpointslices", watch=False)
            assert proc.admin("/healthz")[0] == 200
            api.clear_faults()
            proc.wait_ready(timeout=30)
            assert backend_of(proc, "ready.example.com") == "web"
        finally:
            proc.stop()
    finally:
        api.stop()
        web.stop()


def _answers(proc) -> bool:
    try:
        proc.admin("/healthz")
        return True
    except OSError:
        return False
