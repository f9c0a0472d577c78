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


def test_each_configuration_change_is_logged_once_with_what_changed():
    from twisted.python import log

    lines = []
    log.addObserver(lines.append)
    try:
        store, state, clock = ObjectStore(), State(), Clock()
        Reloader(store, state, clock)
        store.register("files")
        objects = [INGRESS_CLASS, *service("web", [("http", 80, 8080)]),
                   ingress("one", [("a.com", [("/", "Prefix", "web", 80)])]),
                   ingress("two", [("b.com", [("/", "Prefix", "web", 80)])])]
        store.replace("files", "IngressClass", [objects[0]])
        for obj in objects[1:3]:
            store.apply("files", obj["kind"], "ADDED", obj)
        store.replace("files", "Ingress", objects[3:])
        store.set_synced("files")
        clock.advance(1)
        store.replace("files", "Ingress", [ingress("one", [("a.com", [("/x", "Prefix", "web", 80)])]),
                                           ingress("bad", [("c.com", [("/", "Prefix", "web", 80)])],
                                                   annotations={"nginx.ingress.kubernetes.io/proxy-body-size": "lots"})])
        clock.advance(1)
        store.replace("files", "Ingress", [ingress("one", [("a.com", [("/x", "Prefix", "web", 80)])])])
        clock.advance(1)  # only a rejected Ingress went away: the served routes are the same
    finally:
        log.removeObserver(lines.append)
    changes = [" ".join(line["message"]) for line in lines if "configuration" in " ".join(line["message"])]
    assert len(changes) == 3, changes
    assert changes[0].startswith("ingressd: configuration 1: 2 Ingresses added (default/one, default/two), "
                                 "2 route(s), 0 rejected, built in ")
    assert changes[1].startswith("ingressd: configuration 2: 1 Ingress removed (default/two), "
                                 "1 Ingress changed (default/one), 1 route(s), 1 rejected, built in ")
    assert changes[2].startswith("ingressd: configuration 3: no Ingress changed, 1 route(s), 0 rejected")
