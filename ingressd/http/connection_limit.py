"""``max-worker-connections`` (nginx's ``worker_connections``, ingress-nginx's default 16384): a
bound on the client connections one process serves at once, over all its client listeners.

A connection beyond it is closed as it is accepted (nothing read, nothing answered), counted in
``refused`` (the metric ``ingressd_client_connections_refused``) and logged as nginx logs it
("worker_connections are not enough"), once until the count falls below the bound again. The
bound is read at each accept: changing ``limit`` applies to the next connection and closes none.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.protocol import Factory
from twisted.python import log

DEFAULT = 16384


def parse_limit(value: Any) -> int:
    """A whole number of connections, 0 for no bound of ingressd's own (the open-file limit
    then bounds them, as nginx's 0 means max-worker-open-files)."""
    number = int(str(value).strip())
    if number < 0:
        raise ValueError(f"{value!r}: expected a number of connections (0: no limit)")
    return number


class ConnectionLimit:
    """The count of open client connections of this process, and the bound on it."""

    def __init__(self, limit: int = DEFAULT, report: Callable[[str], None] = log.msg):
        self.limit = limit
        self.open = 0
        self.refused = 0
        self._report = report
        self._reported = False

    def admit(self) -> bool:
        """A connection is being accepted: whether it may be served (then it is counted)."""
        if self.limit and self.open >= self.limit:
            self.refused += 1
            if not self._reported:
                self._reported = True
                self._report(f"ingressd: {self.limit} worker_connections are not enough: new client connections "
                             "are closed as they are accepted (max-worker-connections)")
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1
        if self._reported and self.open < self.limit:
            self._reported = False

    def wrap(self, factory: Any) -> "LimitedFactory":
        return LimitedFactory(factory, self)


class LimitedFactory(Factory):
    """A listener's factory whose connections count against ``limit``."""

    noisy = False

    def __init__(self, wrapped: Any, limit: ConnectionLimit):
        self.wrapped = wrapped
        self.limit = limit

    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()

    def buildProtocol(self, addr):
        limit = self.limit
        if not limit.admit():
            return None  # Twisted closes the accepted socket
        protocol = self.wrapped.buildProtocol(addr)
        if protocol is None:
            limit.release()
            return None
        # The connection's end is seen through its protocol's connectionLost, which the
        # transport calls on this very object (no wrapper in the byte path: a ProtocolWrapper
        # would add a call to every read and stand between the protocol and its transport).
        lost = protocol.connectionLost

        def connection_lost(reason=None):
            limit.release()
            del protocol.connectionLost  # the class's method again; the closure is let go
            lost(reason)

        protocol.connectionLost = connection_lost
        return protocol
