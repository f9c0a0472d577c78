"""A route's own time limits on the request path (``Route.timeouts``: the Gateway API's
HTTPRoute ``timeouts``).

- ``request``: from the request's arrival (``Exchange.started``) until its response is
  complete. When it passes, the backend is abandoned and the client gets 504; when the
  response has started already, the client's connection is cut (a response cannot be taken
  back), as for a backend failing mid-response.
- ``backend_request``: each try to a backend, from the moment its connection is asked for until
  its response has been received whole. When it passes, the try fails as a timeout: the next
  endpoint if proxy-next-upstream allows it (a timeout, as nginx's), else 504.

0 (the spec's ``0s``) disables one. Only routes that have timeouts pay for them: the exchange
makes a ``RouteTimers`` when the matched route has some. The clock is the server's (injected).
"""

from __future__ import annotations

from typing import Any, Callable

from ingressd.config.model import Timeouts


class RouteTimers:
    """The two timers of one exchange on a route with ``Timeouts``."""

    __slots__ = ("_clock", "_backend_request", "_request_call", "_try_call")

    def __init__(self, clock: Any, timeouts: Timeouts, started: float, on_request_timeout: Callable[[], None]):
        self._clock = clock
        self._backend_request = timeouts.backend_request or 0.0
        self._try_call = None
        self._request_call = None
        if timeouts.request:
            left = max(0.0, timeouts.request - (clock.seconds() - started))
            self._request_call = clock.callLater(left, on_request_timeout)

    def try_started(self, on_try_timeout: Callable[[], None]) -> None:
        """A try to a backend begins (a retry's replaces the previous try's timer)."""
        self.try_ended()
        if self._backend_request:
            self._try_call = self._clock.callLater(self._backend_request, on_try_timeout)

    def try_ended(self) -> None:
        """The try's response was received whole, or the try failed."""
        call, self._try_call = self._try_call, None
        if call is not None and call.active():
            call.cancel()

    def stop(self) -> None:
        """The exchange is over (or became a tunnel): no timer fires any more."""
        self.try_ended()
        call, self._request_call = self._request_call, None
        if call is not None and call.active():
            call.cancel()
