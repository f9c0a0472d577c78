"""``providers.kube.status_sync``: the scheduling every status writer shares, on a Clock: only
the leader passes, a burst of marks is one pass, the periodic pass looks at everything, a second
``set_leader(True)`` starts no second loop, a failed write is looked at again, stop cancels."""

from __future__ import annotations

from twisted.internet.task import Clock

from ingressd.config.model import ObjectRef
from ingressd.providers.kube.reflector import KubeTimings
from ingressd.providers.kube.status_sync import LeaderSyncedWriter

A, B, C = (ObjectRef("Ingress", "default", name) for name in "abc")


class Recorder(LeaderSyncedWriter):
    def __init__(self, clock):
        super().__init__(clock, KubeTimings(status_resync=10.0))
        self.passes = []

    def _sync(self):
        if self._syncing():
            self.passes.append(self._take_dirty((A, B, C)))


def test_only_the_leader_passes_and_a_burst_is_one_pass():
    clock = Clock()
    writer = Recorder(clock)
    writer._mark({A})
    clock.advance(0)
    assert writer.passes == []  # not leading
    writer.set_leader(True)
    clock.advance(0)
    assert writer.passes == [{A, B, C}]  # becoming leader looks at everything once
    writer._mark({A})
    writer._mark({B})
    clock.advance(0)
    assert writer.passes[1:] == [{A, B}]
    clock.advance(10)
    assert writer.passes[2:] == [{A, B, C}]  # the periodic pass


def test_a_second_set_leader_starts_no_second_loop_and_losing_the_lead_forgets_pending():
    clock = Clock()
    writer = Recorder(clock)
    writer.set_leader(True)
    writer.set_leader(True)
    clock.advance(0)
    writer._pending["x"] = 1
    clock.advance(10)
    assert writer.passes == [{A, B, C}, {A, B, C}]
    writer.set_leader(False)
    assert writer._pending == {}
    clock.advance(30)
    assert len(writer.passes) == 2


def test_a_failed_write_is_looked_at_again_and_stop_cancels():
    clock = Clock()
    writer = Recorder(clock)
    writer.set_leader(True)
    clock.advance(0)
    writer._retry(C)
    writer._mark({A})
    clock.advance(0)
    assert writer.passes[-1] == {A, C}
    writer._mark({B})
    writer.stop()
    clock.advance(60)
    assert len(writer.passes) == 2 and clock.getDelayedCalls() == []


def test_a_disabled_writer_never_passes():
    clock = Clock()
    writer = Recorder(clock)
    writer.enabled = False
    writer.set_leader(True)
    writer._mark()
    clock.advance(60)
    assert writer.passes == []
