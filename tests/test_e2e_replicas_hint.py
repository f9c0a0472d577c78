"""End to end in cluster mode: ``twistd ingressd --kubernetes --publish-service … --replicas-hint auto``
against the fake apiserver; the publish Service's ready endpoints change, and so does a local limit."""

from __future__ import annotations

import pytest

import fakeapi
from backends import Backend
from harness import Ingressd, wait_for

pytestmark = pytest.mark.slow


def replicas(*addresses):
    return fakeapi.endpoint_slice("ingressd-a", "ingressd", "ingressd", addresses=addresses, port=8080)


def test_a_local_limit_follows_the_number_of_ready_replicas(tmp_path):
    (tmp_path / "manifests").mkdir()
    web = Backend("web")
    api = fakeapi.FakeAPIServer(bookmark_interval=0.5).start()
    proc = None
    try:
        c = api.cluster
        c.apply(fakeapi.ingress_class())
        c.apply(fakeapi.service("web"))
        c.apply(fakeapi.endpoint_slice("web-1", "web", addresses=("127.0.0.1",), port=web.port))
        # limit-rpm 6, burst × 1: alone 7 at once (nginx: burst + 1), then one every 10 s
        c.apply(fakeapi.ingress("app", host="app.test", annotations={
            "nginx.ingress.kubernetes.io/limit-rpm": "6", "nginx.ingress.kubernetes.io/limit-burst-multiplier": "1"}))
        c.apply(fakeapi.service("ingressd", "ingressd"))
        c.apply(replicas("10.0.0.1", "10.0.0.2", "10.0.0.3"))
        proc = Ingressd(tmp_path / "manifests", [
            "--kubernetes", "--kubeconfig", api.write_kubeconfig(str(tmp_path / "kubeconfig")),
            "--publish-service", "ingressd/ingressd", "--replicas-hint", "auto", "--access-log", "off"],
            log_path=tmp_path / "ingressd.log")
        wait_for(lambda: "--replicas-hint auto: 3 ready replica(s)" in proc.log(), "three replicas counted",
                 timeout=30)
        # 3 replicas: 2 a minute each, burst 2 → 3 at once (one more only after 30 s)
        answers = [proc.get("/", host="app.test").status for _ in range(10)]
        assert answers == [200] * 3 + [503] * 7, answers
        c.apply(replicas("10.0.0.1"))  # scaled in to one
        wait_for(lambda: "--replicas-hint auto: 1 ready replica(s)" in proc.log(), "one replica counted", timeout=30)
        # the whole limit again: burst 6, with the 3 requests of the excess still there (minus what
        # drained meanwhile, 1 per 10 s)
        answers = [proc.get("/", host="app.test").status for _ in range(10)]
        assert 4 <= answers.count(200) <= 5 and answers[-1] == 503, answers
    finally:
        if proc is not None:
            proc.stop()
        api.stop()
        web.stop()
