"""What the Ingress translator keeps between translations, and that keeping less changes
nothing: the order of Ingresses (creation time, then namespace and name) follows their
creation times as they change, and an Ingress none of whose routes is on a TLS host serves
its own routes tuple, not a copy."""

from ingressd.config.store import pack
from ingressd.config.translate import TranslateSettings, Translator

SETTINGS = TranslateSettings(ingress_class="ingressd")
CLASS = {("", "ingressd"): pack({"metadata": {"name": "ingressd"},
                                 "spec": {"controller": "ingressd.io/ingress-controller"}})}


def ingress(namespace, name, created, host="same.test", path="/", tls=False):
    obj = {"metadata": {"name": name, "namespace": namespace},
           "spec": {"ingressClassName": "ingressd",
                    "rules": [{"host": host, "http": {"paths": [
                        {"path": path, "pathType": "Prefix",
                         "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
    if created is not None:
        obj["metadata"]["creationTimestamp"] = created
    if tls:
        obj["spec"]["tls"] = [{"hosts": [host], "secretName": "web-tls"}]
    return pack(obj)


def objects(ingresses):
    return {"IngressClass": CLASS, "Service": {}, "EndpointSlice": {}, "Secret": {},
            "Ingress": {(ns, name): packed for (ns, name), packed in ingresses.items()}}


def owners(config):
    return [(route.ingress.namespace, route.ingress.name) for route in config.routes]


def test_oldest_first_then_namespace_then_name_and_none_last():
    translator = Translator()
    ingresses = {
        ("b", "x"): ingress("b", "x", "2024-01-02T00:00:00Z", path="/1"),
        ("a", "y"): ingress("a", "y", "2024-01-02T00:00:00Z", path="/2"),
        ("a", "x"): ingress("a", "x", "2024-01-02T00:00:00Z", path="/3"),
        ("z", "z"): ingress("z", "z", "2024-01-01T00:00:00Z", path="/4"),
        ("a", "a"): ingress("a", "a", None, path="/5"),  # no creation time: sorts last
    }
    config = translator(objects(ingresses), SETTINGS)
    assert owners(config) == [("z", "z"), ("a", "x"), ("a", "y"), ("b", "x"), ("a", "a")]


def test_a_changed_creation_time_moves_the_ingress_and_the_oldest_wins():
    translator = Translator()
    ingresses = {("a", "first"): ingress("a", "first", "2024-01-01T00:00:00Z"),
                 ("a", "second"): ingress("a", "second", "2024-01-02T00:00:00Z")}
    config = translator(objects(ingresses), SETTINGS)
    assert owners(config) == [("a", "first"), ("a", "second")]
    # recreated: a new creation time makes it the younger one
    ingresses[("a", "first")] = ingress("a", "first", "2024-01-03T00:00:00Z")
    config = translator(objects(ingresses), SETTINGS)
    assert owners(config) == [("a", "second"), ("a", "first")]
    # one goes, one comes back older than the other
    del ingresses[("a", "second")]
    config = translator(objects(ingresses), SETTINGS)
    assert owners(config) == [("a", "first")]
    ingresses[("a", "second")] = ingress("a", "second", "2023-12-31T00:00:00Z")
    config = translator(objects(ingresses), SETTINGS)
    assert owners(config) == [("a", "second"), ("a", "first")]
    # unchanged objects: the same order, the same routes
    again = translator(objects(ingresses), SETTINGS)
    assert again.routes == config.routes and all(a is b for a, b in zip(again.routes, config.routes))


def test_routes_on_no_tls_host_are_served_as_translated_without_a_copy():
    translator = Translator()
    ingresses = {("a", "plain"): ingress("a", "plain", "2024-01-01T00:00:00Z", host="plain.test"),
                 ("a", "secure"): ingress("a", "secure", "2024-01-02T00:00:00Z", host="secure.test", tls=True)}
    config = translator(objects(ingresses), SETTINGS)
    assert [(route.host, route.tls) for route in config.routes] == [("plain.test", False), ("secure.test", True)]
    plain, secure = translator._cache[("a", "plain")], translator._cache[("a", "secure")]
    assert plain.served[1] is plain.routes
    # a marked route is kept once: the unmarked route as translated is not kept beside it
    assert secure.served[1] is secure.routes and secure.routes[0].tls
    # the plain host becomes a TLS host (another Ingress lists it): its route is marked now
    ingresses[("a", "other")] = ingress("a", "other", "2024-01-03T00:00:00Z", host="plain.test", path="/o", tls=True)
    config = translator(objects(ingresses), SETTINGS)
    assert [(route.host, route.tls) for route in config.routes][:1] == [("plain.test", True)]
    assert plain.served[1] is plain.routes and plain.routes[0].tls
    marked = config.routes[0]
    unchanged = translator(objects(ingresses), SETTINGS)
    assert unchanged.routes[0] is marked  # still marked: the very object
    # ... and no longer (the other Ingress goes): unmarked again, as a translation from nothing has it
    del ingresses[("a", "other")]
    config = translator(objects(ingresses), SETTINGS)
    assert config.routes == Translator()(objects(ingresses), SETTINGS).routes
    assert [(route.host, route.tls) for route in config.routes] == [("plain.test", False), ("secure.test", True)]


# -- EndpointSlices followed incrementally: the same backends as a translation from nothing --

from hypothesis import given, settings, strategies as st  # noqa: E402

from ingressd.config.store import ObjectStore  # noqa: E402

SERVICES = ("web", "api")


def service(name):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "a"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def endpoint_slice(name, owner, addresses, ready=True):
    labels = {"kubernetes.io/service-name": owner} if owner else {}
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "a", "labels": labels}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [address], "conditions": {"ready": ready}} for address in addresses]}


def web_ingress(name):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": f"i-{name}", "namespace": "a", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"ingressClassName": "ingressd", "rules": [{"host": f"{name}.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}}


slice_states = st.dictionaries(
    st.sampled_from(("s1", "s2", "s3", "s4")),
    st.tuples(st.sampled_from(SERVICES + ("", "gone")),
              st.lists(st.sampled_from(("10.0.0.1", "10.0.0.2", "10.0.0.3")), max_size=2, unique=True),
              st.booleans()),
    max_size=4)


def backends(config):
    return sorted((route.host, route.backend.service, route.backend.endpoints) for route in config.routes)


@settings(max_examples=150, deadline=None)
@given(st.lists(slice_states, min_size=1, max_size=8))
def test_endpoint_slices_followed_change_by_change_as_from_nothing(states):
    store = ObjectStore()
    store.register("t")
    store.replace("t", "IngressClass", [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                                         "metadata": {"name": "ingressd"},
                                         "spec": {"controller": "ingressd.io/ingress-controller"}}])
    store.replace("t", "Service", [service(name) for name in SERVICES])
    store.replace("t", "Ingress", [web_ingress(name) for name in SERVICES])
    incremental = Translator()
    for number, state in enumerate(states):
        wanted = [endpoint_slice(name, owner, addresses, ready) for name, (owner, addresses, ready) in state.items()]
        if number % 2:  # one at a time, as watch events come
            current = {key[1] for key in store.snapshot()["EndpointSlice"]}
            for name in current - set(state):
                store.apply("t", "EndpointSlice", "DELETED", {"metadata": {"name": name, "namespace": "a"}})
            for obj in wanted:
                store.apply("t", "EndpointSlice", "MODIFIED", obj)
        else:  # a whole LIST
            store.replace("t", "EndpointSlice", wanted)
        snapshot = store.snapshot()
        assert backends(incremental(snapshot, SETTINGS)) == backends(Translator()(snapshot, SETTINGS))


def test_endpoints_share_one_int_per_port_number():
    store = ObjectStore()
    store.register("t")
    store.replace("t", "IngressClass", [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                                         "metadata": {"name": "ingressd"},
                                         "spec": {"controller": "ingressd.io/ingress-controller"}}])
    store.replace("t", "Service", [service(name) for name in SERVICES])
    store.replace("t", "Ingress", [web_ingress(name) for name in SERVICES])
    store.replace("t", "EndpointSlice", [endpoint_slice("s1", "web", ["10.0.0.1", "10.0.0.2"]),
                                         endpoint_slice("s2", "api", ["10.0.0.3"])])
    config = Translator()(store.snapshot(), SETTINGS)
    ports = [endpoint.port for route in config.routes for endpoint in route.backend.endpoints]
    assert ports == [8080, 8080, 8080] and all(port is ports[0] for port in ports)


def test_a_service_with_one_two_then_no_slices():
    store = ObjectStore()
    store.register("t")
    store.replace("t", "IngressClass", [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                                         "metadata": {"name": "ingressd"},
                                         "spec": {"controller": "ingressd.io/ingress-controller"}}])
    store.replace("t", "Service", [service("web")])
    store.replace("t", "Ingress", [web_ingress("web")])
    translator = Translator()

    def addresses():
        config = translator(store.snapshot(), SETTINGS)
        return [endpoint.address for endpoint in config.routes[0].backend.endpoints]

    store.apply("t", "EndpointSlice", "ADDED", endpoint_slice("s1", "web", ["10.0.0.1"]))
    assert addresses() == ["10.0.0.1"]
    store.apply("t", "EndpointSlice", "ADDED", endpoint_slice("s2", "web", ["10.0.0.2"]))
    assert addresses() == ["10.0.0.1", "10.0.0.2"]
    store.apply("t", "EndpointSlice", "MODIFIED", endpoint_slice("s1", "api", ["10.0.0.1"]))  # moved away
    assert addresses() == ["10.0.0.2"]
    store.apply("t", "EndpointSlice", "DELETED", endpoint_slice("s2", "web", []))
    assert addresses() == []
    store.apply("t", "EndpointSlice", "MODIFIED", endpoint_slice("s1", "web", ["10.0.0.3"]))  # back
    assert addresses() == ["10.0.0.3"]


def test_a_service_named_with_two_ports_resolves_each():
    # The resolver remembers one port per Service (keyed by the Service alone): Ingresses naming
    # its two ports in turn get each port's endpoints, and the same Backend while one port is asked.
    two_ports = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "a"},
                 "spec": {"ports": [{"name": "http", "port": 80}, {"name": "admin", "port": 81}]}}
    slice_obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": "s1", "namespace": "a", "labels": {"kubernetes.io/service-name": "web"}},
                 "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}],
                 "endpoints": [{"addresses": ["10.0.0.1"]}]}

    def named(name, port, paths=("/",)):
        obj = web_ingress("web")
        obj["metadata"]["name"] = name
        obj["spec"]["rules"][0]["http"]["paths"] = [
            {"path": path, "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": port}}}}
            for path in paths]
        return obj

    store = ObjectStore()
    store.register("t")
    store.replace("t", "IngressClass", [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                                         "metadata": {"name": "ingressd"},
                                         "spec": {"controller": "ingressd.io/ingress-controller"}}])
    store.replace("t", "Service", [two_ports])
    store.replace("t", "EndpointSlice", [slice_obj])
    store.replace("t", "Ingress", [named("one", 80, ("/a", "/b")), named("two", 81), named("three", 80)])
    config = Translator()(store.snapshot(), SETTINGS)
    found = {(route.ingress.name, route.path): (route.backend.port, route.backend.endpoints[0].port)
             for route in config.routes}
    assert found == {("one", "/a"): ("80", 8080), ("one", "/b"): ("80", 8080), ("two", "/"): ("81", 9090),
                     ("three", "/"): ("80", 8080)}
    first, second = (route for route in config.routes if route.ingress.name == "one")
    assert first.backend is second.backend
