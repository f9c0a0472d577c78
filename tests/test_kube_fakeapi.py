"""The fake apiserver itself, through the official client: the semantics the provider relies on."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from ingressd.providers.kube.config import load_configuration

try:
    from tests import fakeapi
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import fakeapi


@pytest.fixture
def fake(tmp_path):
    server = fakeapi.FakeAPIServer(bookmark_interval=0.2, token="t0ken").start()
    server.kubeconfig = server.write_kubeconfig(str(tmp_path / "kubeconfig"))
    yield server
    server.stop()


@pytest.fixture
def api(fake):
    api_client = client.ApiClient(load_configuration(fake.kubeconfig, environ={}))
    yield api_client
    api_client.close()


def body(response) -> dict:
    return json.loads(response.data)


def watch(method, **kwargs) -> list[dict]:
    response = method(watch=True, _preload_content=False, _request_timeout=(2, 5), **kwargs)
    return [json.loads(line) for line in iter_resp_lines(response) if line]


def test_list_items_have_no_kind_and_carry_the_list_version(fake, api):
    fake.cluster.apply(fakeapi.ingress("web"))
    listed = body(client.NetworkingV1Api(api).list_ingress_for_all_namespaces(
        _preload_content=False))
    assert listed["kind"] == "IngressList"
    assert listed["metadata"]["resourceVersion"] == str(fake.cluster.rv)
    assert "kind" not in listed["items"][0]
    # the typed path works too (schema-valid objects)
    typed = client.NetworkingV1Api(api).list_ingress_for_all_namespaces()
    assert typed.items[0].metadata.name == "web"


def test_wrong_token_is_refused(fake, tmp_path):
    with open(fake.kubeconfig) as source:
        config = json.load(source)
    config["users"][0]["user"]["token"] = "wrong"
    (tmp_path / "wrong").write_text(json.dumps(config))
    configuration = load_configuration(str(tmp_path / "wrong"), environ={})
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(client.ApiClient(configuration)).list_secret_for_all_namespaces(
            _preload_content=False)
    assert caught.value.status == 401


def test_selectors(fake, api):
    core = client.CoreV1Api(api)
    fake.cluster.apply(fakeapi.secret("tls"))
    fake.cluster.apply(fakeapi.secret("auth", type="Opaque"))
    names = lambda r: [i["metadata"]["name"] for i in body(r)["items"]]  # noqa: E731
    assert names(core.list_secret_for_all_namespaces(
        field_selector="type=kubernetes.io/tls", _preload_content=False)) == ["tls"]
    assert names(core.list_secret_for_all_namespaces(
        field_selector="metadata.name!=tls", _preload_content=False)) == ["auth"]
    with pytest.raises(ApiException) as caught:
        core.list_secret_for_all_namespaces(field_selector="data.x=1", _preload_content=False)
    assert caught.value.status == 400
    discovery = client.DiscoveryV1Api(api)
    fake.cluster.apply(fakeapi.endpoint_slice("a-1", "a"))
    fake.cluster.apply(fakeapi.endpoint_slice("b-1", "b"))
    for selector, expected in (("kubernetes.io/service-name=a", ["a-1"]),
                               ("kubernetes.io/service-name in (a,b)", ["a-1", "b-1"]),
                               ("kubernetes.io/service-name notin (a)", ["b-1"]),
                               ("!kubernetes.io/service-name", []),
                               ("kubernetes.io/service-name", ["a-1", "b-1"])):
        assert names(discovery.list_endpoint_slice_for_all_namespaces(
            label_selector=selector, _preload_content=False)) == expected, selector


def test_watch_from_version_selector_transitions_and_timeout(fake, api):
    cluster = fake.cluster
    start = str(cluster.rv)
    cluster.apply(fakeapi.secret("a", type="Opaque"))
    cluster.apply(fakeapi.secret("a", type="kubernetes.io/tls"))  # starts matching
    cluster.apply(fakeapi.secret("a", type="Opaque"))  # stops matching
    events = watch(client.CoreV1Api(api).list_secret_for_all_namespaces,
                   resource_version=start, field_selector="type=kubernetes.io/tls",
                   timeout_seconds=1)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    assert events[0]["object"]["kind"] == "Secret"  # watch objects carry kind
    assert events[1]["object"]["metadata"]["resourceVersion"] == str(cluster.rv)


def test_watch_without_version_replays_then_bookmarks(fake, api):
    fake.cluster.apply(fakeapi.ingress("web"))
    events = watch(client.NetworkingV1Api(api).list_ingress_for_all_namespaces,
                   allow_watch_bookmarks=True, timeout_seconds=1)
    assert events[0]["type"] == "ADDED"
    assert {e["type"] for e in events[1:]} == {"BOOKMARK"}
    assert events[-1]["object"]["metadata"] == {"resourceVersion": str(fake.cluster.rv)}


def test_compaction_gives_410_as_event_and_for_exact_lists(fake, api):
    net = client.NetworkingV1Api(api)
    old = str(fake.cluster.rv)
    fake.cluster.apply(fakeapi.ingress("web"))
    fake.cluster.compact()
    events = watch(net.list_ingress_for_all_namespaces, resource_version=old, timeout_seconds=5)
    assert [e["type"] for e in events] == ["ERROR"]
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"
    with pytest.raises(ApiException) as caught:
        net.list_ingress_for_all_namespaces(resource_version=old, resource_version_match="Exact",
                                            _preload_content=False)
    assert caught.value.status == 410


def test_exact_list_rebuilds_history(fake, api):
    fake.cluster.apply(fakeapi.ingress("one"))
    at = str(fake.cluster.rv)
    fake.cluster.apply(fakeapi.ingress("two"))
    fake.cluster.remove("Ingress", "default", "one")
    listed = body(client.NetworkingV1Api(api).list_ingress_for_all_namespaces(
        resource_version=at, resource_version_match="Exact", _preload_content=False))
    assert [i["metadata"]["name"] for i in listed["items"]] == ["one"]


def test_status_subresource(fake, api):
    net = client.NetworkingV1Api(api)
    fake.cluster.apply(fakeapi.ingress("web"))
    current = body(net.read_namespaced_ingress_status("web", "default", _preload_content=False))
    stale = json.loads(json.dumps(current))
    current["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    current["spec"]["rules"][0]["host"] = "ignored.example.com"  # /status ignores spec
    net.replace_namespaced_ingress_status("web", "default", current, _preload_content=False)
    stored = fake.cluster.get("ingresses", "default", "web")
    assert stored["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.1"}]
    assert stored["spec"]["rules"][0]["host"] == "app.example.com"
    with pytest.raises(ApiException) as caught:  # a stale resourceVersion
        net.replace_namespaced_ingress_status("web", "default", stale, _preload_content=False)
    assert caught.value.status == 409
    with pytest.raises(ApiException) as caught:  # validation: ip must be an IP
        net.patch_namespaced_ingress_status(
            "web", "default", {"status": {"loadBalancer": {"ingress": [{"ip": "nope"}]}}},
            _content_type="application/merge-patch+json", _preload_content=False)
    assert caught.value.status == 422
    # the main resource ignores status
    stored["status"] = {}
    net.replace_namespaced_ingress("web", "default", stored, _preload_content=False)
    assert fake.cluster.get("ingresses", "default", "web")["status"]["loadBalancer"]


def test_leases_conflict_and_microtime(fake, api):
    coordination = client.CoordinationV1Api(api)
    lease = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}
    coordination.create_namespaced_lease("ns", lease, _preload_content=False)
    with pytest.raises(ApiException) as caught:
        coordination.create_namespaced_lease("ns", lease, _preload_content=False)
    assert caught.value.status == 409
    current = body(coordination.read_namespaced_lease("l", "ns", _preload_content=False))
    fake.cluster.apply({"kind": "Lease", "metadata": {"name": "l", "namespace": "ns"},
                        "spec": {"holderIdentity": "b"}})
    with pytest.raises(ApiException) as caught:
        coordination.replace_namespaced_lease("l", "ns", current, _preload_content=False)
    assert caught.value.status == 409
    # a MicroTime without its six digits (what the client makes of microsecond 0) is refused
    with pytest.raises(fakeapi.APIError) as caught:
        fake.cluster.apply({"kind": "Lease", "metadata": {"name": "l", "namespace": "ns"},
                            "spec": {"renewTime": "2026-01-01T00:00:00+00:00"}})
    assert caught.value.code == 400


def test_event_namespace_must_match(fake, api):
    event = {"metadata": {"name": "e"}, "involvedObject": {
        "kind": "Ingress", "name": "web", "namespace": "other"}, "reason": "R", "message": "m"}
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).create_namespaced_event("default", event, _preload_content=False)
    assert caught.value.status == 422


def test_faults(fake, api):
    core = client.CoreV1Api(api)
    fake.add_fault("status", code=503, path=r"/services$")
    with pytest.raises(ApiException) as caught:
        core.list_service_for_all_namespaces(_preload_content=False)
    assert caught.value.status == 503
    core.list_service_for_all_namespaces(_preload_content=False)  # once only
    fake.add_fault("reset", path=r"/services$")
    with pytest.raises(Exception):
        core.list_service_for_all_namespaces(_preload_content=False)
    assert len(fake.calls("GET", r"/services$")) == 3  # retries are off: one request each


def test_unknown_paths_and_verbs(fake):
    import urllib.error
    import urllib.request

    def fetch(path: str, method: str = "GET") -> tuple[int, dict]:
        request = urllib.request.Request(fake.url + path, method=method,
                                         headers={"Authorization": "Bearer t0ken"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    code, status = fetch("/apis/example.com/v1/widgets")
    assert (code, status["kind"], status["reason"]) == (404, "Status", "NotFound")
    assert fetch("/apis/networking.k8s.io/v1/namespaces/x/ingressclasses")[0] == 404
    assert fetch("/api/v1/namespaces/default/secrets/x/status", "PUT")[0] == 405
    request = urllib.request.Request(fake.url + "/api/v1/services?watch=1&timeoutSeconds=1",
                                     headers={"Authorization": "Bearer t0ken"})
    with urllib.request.urlopen(request, timeout=5) as response:  # watch=1 is a watch too
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert response.read() == b""
