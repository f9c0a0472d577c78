"""The reactor ``twistd ingressd`` runs on: Twisted's epoll reactor, with each ready
descriptor's handler called directly rather than through ``log.callWithLogger``.

For every readable or writable descriptor, Twisted's reactors run the handler inside
``twisted.python.log.callWithLogger``: the selectable's ``logPrefix()``, two copies of the log
context and a push and pop of the context stack, so that a legacy log line emitted during
the call names the connection as its "system". A proxied keep-alive request is two such
dispatches (the client's request, the backend's response), and they cost 4-5 µs of the
45 µs of CPU ingressd spends per request (bench/bench.py keepalive, alternate runs with
and without: 45.0-45.5 against 40.5-41.4 µs). Twisted's own measurement, in
twisted/twisted#2534 (open since 2007), was 15% of a UDP echo server's CPU. ingressd's
log lines say what they are about themselves, so nothing needs that context; a handler's
exception is still logged, as Twisted logs it.

It also ends each round of events for the connections' batched writes
(``ingressd.proxy.transport``): ``call_at_round_end(f)`` calls ``f`` once when the current
round ends, the round being the events one poll dispatched (ended as the next
``runUntilCurrent`` begins, which is right after the poll) or the timed calls one
``runUntilCurrent`` runs (ended as it returns, before the reactor polls again). Twisted's way
to the same point, ``callLater(0, f)``, makes a ``DelayedCall``, pushes it on the timers' heap
and pops it again for every round that writes (each proxied request, each connection).

The main loop's turn where no timed call is due (most turns of a busy server: a poll, its
events, the poll again) is taken without Twisted's ``runUntilCurrent`` and ``timeout`` (two
clock reads, two insertions of no new calls, a context manager's two calls): ``mainLoop``
ends the round, and polls until the first timed call is due, itself. A turn with anything
for Twisted to do (a timed call due, new timed calls, calls from threads, the shutdown,
cancelled calls to weed out, round ends asked by round ends) is Twisted's, as before.

Only ``doPoll``, ``runUntilCurrent`` and ``mainLoop`` are replaced; ``doPoll`` uses three attributes ``EPollReactor`` does not
document (``_poller``, ``_selectables``, ``_doReadOrWrite``), ``mainLoop`` six of
``ReactorBase`` (``_MAIN_LOOP_RELIED_ON``). Should a Twisted release
rename them, the reactor says so in the log and uses Twisted's own ``doPoll`` or ``mainLoop``: slower,
never broken. A reactor chosen with ``twistd --reactor NAME`` is installed before
``ingressd`` starts and is kept (``--reactor epoll`` gives Twisted's dispatch back).
"""

from __future__ import annotations

import errno
import sys

from twisted.internet import base as _twisted_base
from twisted.internet.epollreactor import EPollReactor
from twisted.python import log

_RELIED_ON = ("_poller", "_selectables", "_doReadOrWrite")
_MAIN_LOOP_RELIED_ON = ("_started", "_pendingTimedCalls", "_newTimedCalls", "threadCallQueue", "_justStopped",
                        "_cancellations")
_LONGEST_WAIT = 2147483  # s: Twisted's bound on a poll's timeout (epoll_wait's int of milliseconds)


class DirectDispatchEPollReactor(EPollReactor):
    """``EPollReactor`` whose ``doPoll`` calls each handler without a log context, and which
    ends rounds of events (``call_at_round_end``)."""

    def __init__(self) -> None:
        self._round_ends: list = []
        super().__init__()
        missing = [name for name in _RELIED_ON if not hasattr(self, name)]
        if missing:
            log.msg(f"ingressd: this Twisted's epoll reactor has no {', '.join(missing)}; "
                    "dispatching events the way Twisted does")
            self.doPoll = self.doIteration = super().doPoll  # type: ignore[method-assign]
        missing = [name for name in _MAIN_LOOP_RELIED_ON if not hasattr(self, name)]
        if missing:
            log.msg(f"ingressd: this Twisted's reactor has no {', '.join(missing)}; "
                    "running Twisted's main loop")
            self.mainLoop = super().mainLoop  # type: ignore[method-assign]

    def mainLoop(self) -> None:
        """Twisted's ``ReactorBase.mainLoop`` (``runUntilCurrent``, ``timeout``, ``doIteration``
        in turn, an error logged as Twisted logs it), with a turn where no timed call is due
        taken in line (see the module's docstring): the same calls in the same order."""
        top_handler = getattr(_twisted_base, "_topHandler", None)  # Twisted's "Unexpected error in main loop"
        while self._started:
            try:
                # runUntilCurrent's first step: the round of the poll just dispatched ends
                if self._round_ends:
                    self._end_round()
                pending = self._pendingTimedCalls
                if (self.threadCallQueue or self._newTimedCalls or self._justStopped or self._round_ends
                        or (self._cancellations > 50 and self._cancellations > len(pending) >> 1)):
                    timeout = self._twisteds_turn()
                elif pending:
                    timeout = pending[0].time - self.seconds()
                    if timeout <= 0:  # due: Twisted runs it
                        timeout = self._twisteds_turn()
                    elif timeout > _LONGEST_WAIT:
                        timeout = _LONGEST_WAIT
                else:
                    timeout = None  # nothing timed: wait for events
                self.doIteration(self.running and timeout)
            except BaseException:  # as Twisted's loop: logged, and the loop goes on
                if top_handler is not None:
                    top_handler.__exit__(*sys.exc_info())
                else:
                    log.err(None, "Unexpected error in main loop")

    def _twisteds_turn(self) -> float | None:
        """The rest of ``runUntilCurrent`` (its round end done), then Twisted's ``timeout``."""
        super().runUntilCurrent()
        if self._round_ends:  # the round of the timed calls just run
            self._end_round()
        return self.timeout()

    def doPoll(self, timeout: float | None) -> None:
        if timeout is None:
            timeout = -1  # wait until something happens
        selectables = self._selectables
        try:
            # As EPollReactor: at most as many events as descriptors we watch.
            events = self._poller.poll(timeout, len(selectables))
        except OSError as error:
            if error.errno == errno.EINTR:
                return
            raise
        dispatch = self._doReadOrWrite
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:  # removed by an earlier handler of this round
                continue
            try:
                dispatch(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:  # as callWithLogger: log, and go on with the next one
                log.err(None, f"ingressd: handling an event of {selectable!r}")

    doIteration = doPoll

    def call_at_round_end(self, f) -> None:
        """Call ``f()`` once when the current round of events ends (see the module's docstring)."""
        self._round_ends.append(f)

    def runUntilCurrent(self) -> None:
        if self._round_ends:  # the round of the poll just dispatched
            self._end_round()
        super().runUntilCurrent()
        if self._round_ends:  # the round of the timed calls just run
            self._end_round()

    def _end_round(self) -> None:
        ends, self._round_ends = self._round_ends, []
        for end in ends:
            try:
                end()
            except Exception:  # as a timed call's: logged, the others still run
                log.err(None, "ingressd: ending a round of events")


def install() -> bool:
    """Install the reactor as Twisted's global one, unless a reactor is installed already
    (``twistd --reactor``, or imported first). True when this one was installed."""
    if "twisted.internet.reactor" in sys.modules:
        return False
    from twisted.internet.main import installReactor

    installReactor(DirectDispatchEPollReactor())
    return True
