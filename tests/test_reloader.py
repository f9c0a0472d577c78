"""The reloader: when configurations are built and applied."""

from twisted.internet.task import Clock

from harness import INGRESS_CLASS, ingress, service
from ingressd.config.reloader import Reloader, State
from ingressd.config.store import ObjectStore


def test_first_configuration_waits_for_every_source_to_sync():
    store, state, clock = ObjectStore(), State(), Clock()
    reloader = Reloader(store, state, clock)
    store.register("files")
    store.register("kubernetes")
    store.replace("kubernetes", "IngressClass", [INGRESS_CLASS])
    store.replace("kubernetes", "Ingress", [ingress("one", [("a.com", [("/", "Prefix", "web", 80)])])])
    store.set_synced("files")
    clock.advance(1)
    # Ingresses listed, Services not yet: nothing is built from half a LIST.
    assert state.generation == 0 and reloader.rebuilds == 0 and not state.ready
    for obj in service("web", [("http", 80, 8080)]):
        store.apply("kubernetes", obj["kind"], "ADDED", obj)
    store.set_synced("kubernetes")
    clock.advance(1)
    assert state.generation == 1 and state.ready
    assert state.config.warnings == ()  # the Service was there for the first build
    assert [e.address for e in state.table.match("a.com", "/").route.backend.endpoints] == ["127.0.0.1"]
    # Once serving, changes apply even while a source reads again from scratch.
    store.set_synced("kubernetes", False)
    store.replace("kubernetes", "Ingress", [])
    clock.advance(1)
    assert state.generation == 2 and state.table.match("a.com", "/") is None
