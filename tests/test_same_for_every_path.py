"""``same_for_every_path``: a route table build asks a marked ``ingressd_route_features``
implementation once per Ingress and host, every other implementation once per route, and
the features keep pluggy's order."""

from ingressd import hookimpl, same_for_every_path
from ingressd.config.entries import build_table
from ingressd.config.model import Backend, Config, Endpoint, ObjectRef, Route
from ingressd.features import BuildContext
from ingressd.plugin_manager import load_plugins

BACKEND = Backend("ns", "svc", "80", (Endpoint("10.0.0.1", 80),))
VALUES = (("x", "1"),)


class Tagged:
    def __init__(self, tag):
        self.tag = tag

    def request(self, exchange):
        return None


def routes(name="i", hosts=("h.com",), paths=("/", "/a", "/b"), values=VALUES, tls=False):
    ref = ObjectRef("Ingress", "ns", name)
    return tuple(Route(host, path, "Prefix", BACKEND, ref, features=values, tls=tls)
                 for host in hosts for path in paths)


class Recorder:
    def __init__(self):
        self.whole, self.per_path = [], []

    def plugins(self):
        whole, per_path = self.whole, self.per_path

        class Whole:
            @hookimpl
            @same_for_every_path
            def ingressd_route_features(self, route, values, context):
                whole.append((route.ingress.name, route.host, route.tls, route.path))
                return Tagged(f"whole:{route.ingress.name}:{route.host}")

        class PerPath:
            @hookimpl
            def ingressd_route_features(self, route, values):
                per_path.append((route.host, route.path))
                return [Tagged(f"path:{route.path}"), None]

        class Nothing:
            @hookimpl
            @same_for_every_path
            def ingressd_route_features(self, route):
                return None

        return load_plugins(entry_points=False, extra=[Whole(), PerPath(), Nothing()])


def tags(table, host, path):
    return [f.tag for f in table.match(host, path).features]


def context():
    return BuildContext(settings={}, reactor=None)


def test_the_decorator_marks_the_function_and_returns_it():
    def hook(route, values, context):
        return None
    assert same_for_every_path(hook) is hook and hook.ingressd_same_for_every_path is True


def test_a_marked_implementation_is_asked_once_per_ingress_and_host_the_others_per_route():
    recorder = Recorder()
    plugins = recorder.plugins()
    config = Config(routes=routes(hosts=("h.com", "g.com")) + routes(name="j"))
    table, _ = build_table(config, plugins, context())
    assert recorder.whole == [("i", "h.com", False, "/"), ("i", "g.com", False, "/"), ("j", "h.com", False, "/")]
    assert len(recorder.per_path) == 9
    # Every path gets the marked answer of its own Ingress and host, and its own per-path one.
    assert tags(table, "g.com", "/a/x") == ["path:/a", "whole:i:g.com"]
    assert tags(table, "g.com", "/b") == ["path:/b", "whole:i:g.com"]


def test_the_answers_keep_pluggys_order_and_equal_a_plain_route_features_call():
    plugins = Recorder().plugins()
    built = plugins.route_features_for_build()
    for route in routes(paths=("/", "/a")):
        assert [f.tag for f in built(route, context())] == [f.tag for f in plugins.route_features(route, context())]


def test_tls_and_annotation_values_are_part_of_the_key():
    recorder = Recorder()
    built = recorder.plugins().route_features_for_build()
    other_values = (("x", "2"),)
    for route in (*routes(paths=("/",)), *routes(paths=("/a",), tls=True), *routes(paths=("/b",), values=other_values)):
        built(route, context())
    assert [(tls, path) for _, _, tls, path in recorder.whole] == [(False, "/"), (True, "/a"), (False, "/b")]


def test_each_build_asks_again():
    recorder = Recorder()
    plugins = recorder.plugins()
    config = Config(routes=routes())
    build_table(config, plugins, context())
    build_table(config, plugins, context())
    assert len(recorder.whole) == 2


def test_without_a_marked_implementation_or_with_tracing_every_route_asks_pluggy(monkeypatch):
    class PerPath:
        @hookimpl
        def ingressd_route_features(self, route):
            return None

    plain = load_plugins(entry_points=False, extra=[PerPath()])
    assert plain.route_features_for_build() == plain.route_features
    marked = Recorder().plugins()
    monkeypatch.setenv("INGRESSD_TRACE_HOOKS", "1")
    assert marked.route_features_for_build() == marked.route_features


def test_with_a_hook_wrapper_every_route_asks_pluggy():
    class Wrapper:
        @hookimpl(hookwrapper=True)
        def ingressd_route_features(self, route):
            yield

    plugins = load_plugins(entry_points=False, extra=[*Recorder().plugins().manager.get_plugins(), Wrapper()])
    assert plugins.route_features_for_build() == plugins.route_features


def test_an_annotation_error_of_a_marked_implementation_rejects_the_ingress():
    from ingressd import AnnotationError

    class Refuses:
        @hookimpl
        @same_for_every_path
        def ingressd_route_features(self, route):
            if route.ingress.name == "bad":
                raise AnnotationError("no")

    plugins = load_plugins(entry_points=False, extra=[Refuses()])
    table, config = build_table(Config(routes=routes() + routes(name="bad", hosts=("b.com",))), plugins, context())
    assert [r.ref.name for r in config.rejections] == ["bad"]
    assert table.match("b.com", "/a") is None and table.match("h.com", "/a") is not None


def test_the_built_in_plugins_that_read_the_path_or_backend_are_not_marked():
    """rewrite-target, no-auth-locations, the affinity cookie's path, ewma over the backend,
    the span's name and ext-auth's per-location cache depend on the route itself."""
    plugins = load_plugins()
    marked = {impl.plugin_name: getattr(impl.function, "ingressd_same_for_every_path", False)
              for impl in plugins.manager.hook.ingressd_route_features.get_hookimpls()}
    for name in ("rewrite", "basic_auth", "ext_auth", "affinity", "load_balance", "opentelemetry"):
        assert marked[name] is False, name
    assert marked["cors"] is True
