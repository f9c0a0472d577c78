"""A real epoll reactor (ingressd's ``DirectDispatchEPollReactor``) that a test drives by hand
on loopback sockets, never installed nor run: ``driven_reactor``, the body of a fixture that
makes one and closes it after the test, ``close``, which closes any epoll reactor so, and ``spin``, which turns it until a condition holds
(bounded)."""

from __future__ import annotations

from typing import Callable, Iterator

from ingressd.reactor import DirectDispatchEPollReactor


def spin(reactor, until: Callable[[], object], rounds: int = 500) -> None:
    """Iterate ``reactor`` (10 ms polls) until ``until()`` is true; fail after ``rounds``."""
    for _ in range(rounds):
        if until():
            return
        reactor.iterate(0.01)
    raise AssertionError("the reactor did not get there")


def driven_reactor() -> Iterator[DirectDispatchEPollReactor]:
    """A reactor for one test (the body of a test module's ``reactor`` fixture: ``yield from``
    it); after the test, its connections dropped and its poller closed."""
    r = DirectDispatchEPollReactor()
    yield r
    close(r)


def close(r) -> None:
    """Drop a driven epoll reactor's connections, run what that scheduled, close its poller."""
    r.removeAll()
    r.disconnectAll()
    r.runUntilCurrent()
    r._poller.close()

