"""What keeps the configuration small at 10,000 Ingresses, pinned where a regression would be
silent (docs/benchmarks.md, "Configuration memory in cluster mode")."""

from ingressd import hookimpl, same_for_every_path
from ingressd.config.model import Backend, Endpoint, ObjectRef, Route
from ingressd.config.store import pack
from ingressd.config.translate import TranslateSettings, Translator
from ingressd.features import BuildContext
from ingressd.plugin_manager import load_plugins

BACKEND = Backend("ns", "svc", "80", (Endpoint("10.0.0.1", 80),))


def _route(name, path, values):
    return Route("h.com", path, "Prefix", BACKEND, ObjectRef("Ingress", "ns", name), features=values)


def test_a_build_keeps_the_values_dict_of_the_last_ingress_and_host_only():
    # One values dict per Ingress and host kept for the whole build was ~32 MiB of peak at
    # 10,000 Ingresses. The host's next path still gets the very dict (one dict per call, as
    # pluggy); a path of an Ingress met earlier gets an equal fresh one, and the marked
    # implementation is still asked once per Ingress and host.
    seen, asked = [], []

    class Marked:
        @hookimpl
        @same_for_every_path
        def ingressd_route_features(self, route, values):
            asked.append(route.ingress.name)

    class PerPath:
        @hookimpl
        def ingressd_route_features(self, route, values):
            seen.append((route.ingress.name, route.path, values))

    plugins = load_plugins(entry_points=False, extra=[Marked(), PerPath()])
    built = plugins.route_features_for_build()
    context = BuildContext(settings={}, reactor=None)
    a_values, b_values = (("x", "1"),), (("x", "2"),)
    for route in (_route("a", "/", a_values), _route("a", "/p", a_values), _route("b", "/", b_values),
                  _route("a", "/q", a_values)):
        built(route, context)
    assert asked == ["a", "b"]
    (_, _, first), (_, _, second), (_, _, other), (_, _, again) = seen
    assert second is first and first == {"x": "1"} and other == {"x": "2"}
    assert again == first and again is not first


def test_an_ingress_translation_remembers_its_dependencies_in_one_flat_tuple():
    translator = Translator()
    ingress = pack({"metadata": {"name": "web", "namespace": "default"},
                    "spec": {"ingressClassName": "ingressd", "rules": [{"host": "web.test", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix",
                         "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    objects = {"IngressClass": {("", "ingressd"): pack({"metadata": {"name": "ingressd"},
                                                        "spec": {"controller": "ingressd.io/ingress-controller"}})},
               "Ingress": {("default", "web"): ingress},
               "Service": {("default", "web"): pack({"metadata": {"name": "web", "namespace": "default"},
                                                      "spec": {"ports": [{"port": 80}]}})},
               "EndpointSlice": {}, "Secret": {}}
    config = translator(objects, TranslateSettings(ingress_class="ingressd"))
    assert len(config.routes) == 1
    (done,) = translator._cache.values()
    assert done.deps and len(done.deps) % 3 == 0
    assert not any(isinstance(item, tuple) and len(item) == 3 for item in done.deps)
    tables = done.deps[0::3]
    assert "services" in tables
