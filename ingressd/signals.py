"""What the process does on a signal: SIGTERM/SIGINT drain, SIGHUP reload, SIGUSR1 reopen logs.

twistd's reactor installs its own SIGTERM and SIGINT handlers when it starts (``reactor.
sigTerm``: stop the reactor, then re-raise the signal at exit, so the exit status says
"killed"; a second signal raises ``ReactorNotRunning`` inside the handler and does
nothing). ``SignalHandlers.install`` replaces them once the reactor runs:

- the first SIGTERM or SIGINT stops the reactor; the server's ``stopService`` drains
  (``ingressd.drain``) before anything stops, Twisted waits for it, and the exit status is 0;
- a second one calls ``on_force`` (close everything now); should the process still be
  there ``_FORCE_EXIT`` seconds later, it exits with status 1;
- SIGHUP calls ``on_reload``, SIGUSR1 ``on_reopen``. Neither ever ends the process.

A handler only schedules its work on the reactor thread (``callFromThread``), as Twisted's do.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Callable

from twisted.internet.error import ReactorNotRunning
from twisted.python import log

_FORCE_EXIT = 5.0


def _nothing() -> None:
    pass


class SignalHandlers:
    def __init__(self, reactor: Any, on_force: Callable[[], None], on_reload: Callable[[], None] = _nothing,
                 on_reopen: Callable[[], None] = _nothing, exit_now: Callable[[int], None] = os._exit):
        self.reactor = reactor
        self.on_force = on_force
        self.on_reload = on_reload
        self.on_reopen = on_reopen
        self.exit_now = exit_now
        self.stops = 0

    def install(self) -> None:
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(number, self.handle)

    def handle(self, number: int, frame=None) -> None:
        """The handler of every signal taken (runs between two bytecodes of the main thread)."""
        name = signal.Signals(number).name
        if number in (signal.SIGTERM, signal.SIGINT):
            self.stops += 1
            if self.stops == 1:
                self.reactor.callFromThread(self._stop, name)
            else:
                self.reactor.callFromThread(self._force, name)
        elif number == signal.SIGHUP:
            self.reactor.callFromThread(self._call, name, "re-reading the configuration", self.on_reload)
        elif number == signal.SIGUSR1:
            self.reactor.callFromThread(self._call, name, "reopening the access log", self.on_reopen)

    def _stop(self, name: str) -> None:
        log.msg(f"ingressd: {name}: shutting down gracefully (a second SIGTERM or SIGINT exits at once)")
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass

    def _force(self, name: str) -> None:
        log.msg(f"ingressd: {name} again: exiting at once")
        self.reactor.callLater(_FORCE_EXIT, self.exit_now, 1)
        self._call(name, "", self.on_force)

    def _call(self, name: str, what: str, action: Callable[[], None]) -> None:
        if what:
            log.msg(f"ingressd: {name}: {what}")
        try:
            action()
        except Exception:  # noqa: BLE001 - a signal must never end the process by accident
            log.err(None, f"ingressd: handling {name} failed")
