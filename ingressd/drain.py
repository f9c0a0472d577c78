"""Graceful drain: how a server stops without cutting a response (SIGTERM, SIGINT).

The steps, each logged once:

1. **Not ready** at once (``/readyz`` answers 503), while the listeners keep accepting for
   ``--shutdown-delay`` seconds: load balancers and endpoint controllers notice and stop
   sending new connections here.
2. **Listeners close**; every client connection is told to drain: an idle keep-alive
   connection is closed, a busy HTTP/1 connection answers its request in flight with
   ``Connection: close`` and closes after it, an HTTP/2 connection sends GOAWAY with the
   last stream id it took and closes when those streams are answered.
3. **Grace**: whatever is still open (long downloads, SSE, WebSocket tunnels, gRPC streams)
   has up to ``--shutdown-grace`` seconds to finish by itself.
4. **Close**: what is left is closed (a WebSocket gets a close frame with code 1001, "going
   away", on both sides); the drain is done and the process exits 0.

A second signal skips whatever is left of these steps (``Drain.force``). Everything runs on
the injected clock, so the steps are tested with ``twisted.internet.task.Clock``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from twisted.internet import defer
from twisted.python import log

from ingressd.interfaces import DrainableGroup

_POLL = 0.1  # seconds between two looks at the number of open connections
_CLOSE_WAIT = 2.0  # seconds closed connections get to flush their last bytes (close frames)


class Drain:
    """The drain of one server process. ``start()`` returns a Deferred fired when it is done.

    ``not_ready`` is called once, at the start (readiness fails); ``stop_listening`` once
    the delay is over, returning a Deferred (or None) when the listeners are closed;
    ``groups`` hold the client connections (``interfaces.DrainableGroup``).
    """

    def __init__(self, clock: Any, delay: float, grace: float, not_ready: Callable[[], None],
                 stop_listening: Callable[[], Any], groups: Iterable[DrainableGroup],
                 say: Callable[[str], None] = log.msg):
        self.clock = clock
        self.delay = max(0.0, float(delay))
        self.grace = max(0.0, float(grace))
        self.not_ready = not_ready
        self.stop_listening = stop_listening
        self.groups = list(groups)
        self.say = say
        self.phase = "serving"  # → delaying → draining → closing → done
        self.done: defer.Deferred | None = None
        self._timer = None
        self._grace_ends = 0.0
        self._close_ends = 0.0

    def open_connections(self) -> int:
        return sum(group.open_connections() for group in self.groups)

    def start(self) -> defer.Deferred:
        """Begin draining (once; later calls return the same Deferred)."""
        if self.done is not None:
            return self.done
        self.done = defer.Deferred()
        self.phase = "delaying"
        self.not_ready()
        self.say(f"ingressd: shutting down: /readyz fails from now on; still accepting connections for "
                 f"{self.delay:g}s (--shutdown-delay), then draining for up to {self.grace:g}s (--shutdown-grace)")
        self._timer = self.clock.callLater(self.delay, self._close_listeners)
        return self.done

    def force(self) -> None:
        """A second signal: close everything now and finish."""
        if self.done is None:
            self.start()
        if self.phase == "done":
            return
        self._cancel()
        self.say(f"ingressd: second signal: closing {self.open_connections()} connection(s) now")
        if self.phase == "delaying":
            self._stop_listening()
        for group in self.groups:
            group.close_connections()
        self._finish()

    # -- the steps --------------------------------------------------------------------------

    def _close_listeners(self) -> None:
        self._timer = None
        self.phase = "draining"
        stopped = self._stop_listening()
        if stopped is None:
            self._drain()
        else:  # the ports close their sockets in a later reactor turn: the drain goes on then
            stopped.addCallback(lambda _: self._drain())

    def _drain(self) -> None:
        """The listeners are closed (a new connection is refused from now on): the client
        connections are told to drain, then watched for up to the grace."""
        if self.phase != "draining":  # a second signal finished the drain meanwhile
            return
        for group in self.groups:
            group.drain_connections()
        self.say(f"ingressd: listeners closed; idle connections closed; {self.open_connections()} connection(s) "
                 f"finishing their responses (up to {self.grace:g}s)")
        self._grace_ends = self.clock.seconds() + self.grace
        self._watch()

    def _stop_listening(self) -> defer.Deferred | None:
        """``stop_listening``'s Deferred, its failure logged (then it fires None), or None when
        it returned no Deferred or raised."""
        try:
            stopped = self.stop_listening()
        except Exception:  # noqa: BLE001 - a listener that will not close must not stop the drain
            log.err(None, "ingressd: closing the listeners failed")
            return None
        if isinstance(stopped, defer.Deferred):
            return stopped.addErrback(log.err, "ingressd: closing the listeners failed")
        return None

    def _watch(self) -> None:
        self._timer = None
        left = self.open_connections()
        now = self.clock.seconds()
        if self.phase == "draining":
            if left == 0:
                self.say("ingressd: every response finished")
                self._finish()
                return
            if now >= self._grace_ends:
                self.phase = "closing"
                self.say(f"ingressd: --shutdown-grace over: closing {left} connection(s) still open "
                         "(WebSockets get close code 1001)")
                for group in self.groups:
                    group.close_connections()
                self._close_ends = now + _CLOSE_WAIT
                if self.open_connections() == 0:
                    self._finish()
                    return
        elif self.phase == "closing" and (left == 0 or now >= self._close_ends):
            self._finish()
            return
        self._timer = self.clock.callLater(_POLL, self._watch)

    def _finish(self) -> None:
        self._cancel()
        self.phase = "done"
        self.say("ingressd: drained; exiting")
        done = self.done
        if done is not None and not done.called:
            done.callback(None)

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class ConnectionSet:
    """The client connections of one listener (``interfaces.DrainableGroup``).

    Connections add and discard themselves; ``draining`` tells a connection made after the
    drain began (accepted just before the listener closed) to close after its first answer.
    """

    def __init__(self) -> None:
        self.live: set = set()
        self.draining = False

    def add(self, connection) -> None:
        self.live.add(connection)
        if self.draining:
            connection.drain()

    def discard(self, connection) -> None:
        self.live.discard(connection)

    def open_connections(self) -> int:
        return len(self.live)

    def drain_connections(self) -> None:
        self.draining = True
        for connection in list(self.live):
            connection.drain()

    def close_connections(self) -> None:
        self.draining = True
        for connection in list(self.live):
            connection.shut()
