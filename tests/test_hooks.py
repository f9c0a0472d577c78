"""One ``test_hook_<name>`` per hookspec, each driving its hook through the real core code."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

import fakes  # noqa: F401  (makes ingressd_plugins importable)
from harness import INGRESS_CLASS, ingress, service
from ingressd import Annotation, AnnotationError, Option, Phase, hookimpl
from ingressd.plugin_manager import load_plugins
from ingressd.config.reloader import Reloader, State
from ingressd.config.store import ObjectStore
from ingressd.testing import PluginHarness


class Recorder:
    """A plugin implementing every hook, recording its calls."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def ingressd_options(self):
        return [Option("recorder-level", 3, "a test option", int), Option("recorder-on", flag=True)]

    @hookimpl
    def ingressd_configure(self, settings, reactor):
        self.calls.append(("configure", dict(settings), reactor))

    @hookimpl
    def ingressd_annotations(self):
        def parse(text):
            if text == "bad":
                raise AnnotationError("bad is not a colour")
            return text

        return [Annotation("colour", parse, "none", "a colour")]

    @hookimpl
    def ingressd_route_features(self, route, values, context):
        self.calls.append(("route_features", route.ingress.name, values["colour"]))
        if values["colour"] == "boom":
            raise AnnotationError("boom is not allowed here")
        if values["colour"] == "none":
            return None

        class Late:
            phase = Phase.PROXY

            def request(self, exchange):
                exchange.headers.add(b"x-order", b"late")

        class Early:
            phase = Phase.REWRITE

            def request(self, exchange):
                exchange.headers.add(b"x-order", b"early")

            def response(self, exchange, status, headers):
                headers.append((b"x-colour", values["colour"].encode()))

        return [Late(), None, Early()]

    @hookimpl
    def ingressd_config_applied(self, config, context):
        self.calls.append(("config_applied", tuple(sorted(r.ingress.name for r in config.routes)), context.reactor))


def test_hook_ingressd_options(tmp_path, monkeypatch):
    from ingressd import tap

    # Built-in: rate_limit adds --limit-req-status-code, coerced by its own function.
    options = tap.Options()
    options.parseOptions(["--manifests", str(tmp_path), "--limit-req-status-code", "429"])
    assert options["limit-req-status-code"] == 429
    assert tap.settings_from(options)["limit_req_status_code"] == 429
    # A plugin's options become twistd parameters and flags.
    recorder = Recorder()
    parameters, flags = tap._plugin_option_lists(load_plugins(extra=[recorder], entry_points=False))
    assert ["recorder-level", None, 3, "a test option", int] in parameters
    assert ["recorder-on", None, ""] in flags


def test_hook_ingressd_configure(tmp_path):
    from ingressd.server import build_server

    recorder = Recorder()
    plugins = load_plugins(extra=[recorder], entry_points=False)
    clock = Clock()
    build_server({"manifests": [], "recorder_level": 7}, plugins, clock)
    [(kind, settings, reactor)] = [call for call in recorder.calls if call[0] == "configure"]
    assert settings["recorder_level"] == 7 and reactor is clock


def test_hook_ingressd_annotations():
    recorder = Recorder()
    # Both prefixes are read; ingressd.io/ wins when both are set.
    nginx = PluginHarness(plugins=[recorder], annotations={"nginx.ingress.kubernetes.io/colour": "red"})
    assert nginx.request().response(200).get("x-colour") == "red"
    both = PluginHarness(plugins=[recorder], annotations={"nginx.ingress.kubernetes.io/colour": "red",
                                                          "ingressd.io/colour": "blue"})
    assert both.request().response(200).get("x-colour") == "blue"
    # Absent: the default reaches route_features; a parse error rejects the Ingress, naming it all.
    assert PluginHarness(plugins=[recorder]).features == ()
    assert ("route_features", "web", "none") in recorder.calls
    bad = PluginHarness(plugins=[recorder], annotations={"colour": "bad"}, name="shop")
    assert bad.rejection == "annotation ingressd.io/colour: bad is not a colour"
    assert load_plugins(extra=[recorder], entry_points=False).annotation_owners["colour"]


def test_hook_ingressd_route_features():
    recorder = Recorder()
    harness = PluginHarness(plugins=[recorder], annotations={"colour": "green"})
    # None items are dropped; features run in phase order whatever order they came in.
    assert [feature.phase for feature in harness.features] == [Phase.REWRITE, Phase.PROXY]
    outcome = harness.request()
    assert [v for k, v in outcome.upstream_headers if k == "x-order"] == ["early", "late"]
    # AnnotationError rejects only that Ingress.
    harness.objects.append(ingress("other", [("other.com", [("/", "Prefix", "web", 80)])],
                                   annotations={"ingressd.io/colour": "boom"}))
    harness.rebuild()
    assert [str(r) for r in harness.config.rejections] == ["Ingress default/other: boom is not allowed here"]
    assert harness.request().proxied


def test_hook_ingressd_config_applied():
    recorder = Recorder()
    plugins = load_plugins(extra=[recorder], entry_points=False)
    store, state, clock = ObjectStore(), State(), Clock()
    reloader = Reloader(store, state, clock, plugins)
    objects = [INGRESS_CLASS, *service("web", [("http", 80, 8080)]),
               ingress("one", [("a.com", [("/", "Prefix", "web", 80)])])]
    store.replace("test", "Ingress", [o for o in objects if o["kind"] == "Ingress"])
    store.replace("test", "Service", [o for o in objects if o["kind"] == "Service"])
    store.set_synced("test")
    clock.advance(1)
    applied = [call for call in recorder.calls if call[0] == "config_applied"]
    assert applied == [("config_applied", ("one",), clock)]
    # After the swap: the new table is already in place when the hook runs.
    assert state.table.match("a.com", "/") is not None
    # An unchanged snapshot is not applied again; a change is.
    store.replace("test", "Ingress", [o for o in objects if o["kind"] == "Ingress"])
    clock.advance(1)
    assert len([c for c in recorder.calls if c[0] == "config_applied"]) == 1
    store.replace("test", "Ingress", [])
    clock.advance(1)
    assert [c for c in recorder.calls if c[0] == "config_applied"][-1] == ("config_applied", (), clock)


def test_hook_ingressd_host_routes():
    import dataclasses

    from ingressd import HostRoute

    class Alias:
        """Adds alias.com for every route of example.com, answering 204 and nothing else."""

        @hookimpl
        def ingressd_host_routes(self, config, context):
            class Answer:
                phase = Phase.REWRITE

                def request(self, exchange):
                    from ingressd import LocalResponse
                    return LocalResponse(204)

            return [HostRoute(dataclasses.replace(route, host="alias.com"), (Answer(),))
                    for route in config.routes if route.host == "example.com"]

    harness = PluginHarness(plugins=[Alias()])
    entry = harness.table.match("alias.com", "/x")
    assert entry is not None and entry.route.ingress.name == "web"
    assert [feature.phase for feature in entry.features] == [Phase.REWRITE]
    assert "alias.com" in {route.host for route in harness.config.routes}
    # the Ingress's own route is as it was
    assert harness.request().proxied
