"""The feature chain runner: a route's prepared features, run in phase order on one exchange.

The one way features are run: by the proxy's ``Exchange``, by ``testing.PluginHarness`` and by
the testing helpers, so a plugin's tests exercise exactly what the server does.

- ``run_request_features``: each ``request`` in order until one answers (a ``LocalResponse``,
  directly or from a Deferred); ``on_done(answer, feature)`` — ``(None, None)`` when every one
  let the request through — or ``on_error(feature, failure)`` when one raised or failed.
- ``run_error_features``: the first error feature listing the status that returns a page;
  ``on_done(page or None)``. A failing error feature is logged and the next one is asked.
- ``run_response_features``: each ``response`` mutates the response's header list.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from twisted.internet.defer import Deferred
from twisted.python import log
from twisted.python.failure import Failure

from ingressd.features import LocalResponse

DEFAULT_PHASE = 500  # a feature without ``phase`` runs with the PROXY phase


def in_phase_order(features: Iterable[Any]) -> list:
    """``features`` sorted by their ``phase`` (stable: a plugin's order is kept within a phase)."""
    return sorted(features, key=lambda feature: getattr(feature, "phase", DEFAULT_PHASE))


def request_methods(ordered: Sequence[Any]) -> tuple:
    """The ``request`` methods of features in phase order, as the chain runs them: when one says
    ``satisfy_any``, the access checks (``access_check``) become one ``AnyOf`` where the first was."""
    methods = []
    combine = any(getattr(feature, "satisfy_any", False) for feature in ordered)
    checks = [feature.request for feature in ordered
              if combine and hasattr(feature, "request") and getattr(feature, "access_check", False)]
    for feature in ordered:
        if not hasattr(feature, "request"):
            continue
        if len(checks) > 1 and getattr(feature, "access_check", False):
            if feature.request == checks[0]:
                methods.append(AnyOf(checks).request)
            continue
        methods.append(feature.request)
    return tuple(methods)


class AnyOf:
    """nginx's ``satisfy any`` over a route's access checks: they run in order until one lets the
    request through (the others are not asked); a refusal (401 or 403, or an answer whose
    ``denial`` says so) goes on to the next; any other answer (a 500 of a failed auth service, a
    503 of a missing Secret) is final, as nginx finalizes the request on an error. When every one
    refuses, the answer is the first 401 (nginx's access code keeps a 401 once set; a sign-in
    redirect standing for a 401 wins, as nginx's ``error_page 401``), else the last 403."""

    __slots__ = ("checks",)
    plugin_name = "satisfy"

    def __init__(self, checks: Sequence[Callable]):
        self.checks = tuple(checks)

    def request(self, exchange: Any):
        return self._from(exchange, 0, None)

    def _from(self, exchange: Any, index: int, refusal: LocalResponse | None):
        checks = self.checks
        while index < len(checks):
            result = checks[index](exchange)
            index += 1
            if isinstance(result, Deferred):
                return result.addCallback(self._then, exchange, index, refusal)
            if result is None or _refused(result) is None:
                return result
            refusal = _kept(refusal, result)
        return refusal

    def _then(self, result, exchange: Any, index: int, refusal: LocalResponse | None):
        if result is None or _refused(result) is None:
            return result
        return self._from(exchange, index, _kept(refusal, result))


def _refused(answer: LocalResponse) -> int | None:
    status = getattr(answer, "denial", 0) or answer.status
    return status if status in (401, 403) else None


def _kept(refusal: LocalResponse | None, answer: LocalResponse) -> LocalResponse:
    """nginx keeps a 401 once set; its ``error_page 401`` (external auth's sign-in) then turns
    the final 401 into the redirect, whichever check refused first."""
    if refusal is None or _refused(refusal) != 401:
        return answer
    return answer if _refused(answer) == 401 and answer.status != 401 else refusal


def run_request_features(requests: Sequence[Callable], exchange: Any,
                         on_done: Callable[[LocalResponse | None, Callable | None], None],
                         on_error: Callable[[Callable, Failure], None],
                         start: int = 0, wanted: Callable[[], bool] | None = None) -> None:
    """Call ``requests[start:]`` (bound ``request`` methods, in phase order) until one answers.

    After a Deferred, the chain goes on only while ``wanted()`` (the exchange is not over)."""
    index = start
    count = len(requests)
    while index < count:
        feature = requests[index]
        index += 1
        try:
            result = feature(exchange)
        except Exception:
            on_error(feature, Failure())
            return
        if result is None:
            continue
        if isinstance(result, Deferred):
            def fired(value, feature=feature, index=index) -> None:
                if wanted is not None and not wanted():
                    return
                if value is None:
                    run_request_features(requests, exchange, on_done, on_error, index, wanted)
                else:
                    on_done(value, feature)

            def failed(failure, feature=feature) -> None:
                if wanted is None or wanted():
                    on_error(feature, failure)

            result.addCallbacks(fired, failed)
            return
        on_done(result, feature)
        return
    on_done(None, None)


def intercepts_backend_errors(error: Callable) -> bool:
    """Whether an error feature replaces the backend's own error responses too, or only
    ingressd's (its feature's ``intercept_upstream``; ingress-nginx's disable-proxy-intercept-errors)."""
    return getattr(getattr(error, "__self__", None), "intercept_upstream", True)


def intercepts(error_features: Sequence[tuple[frozenset, Callable]], status: int) -> bool:
    """Whether a backend response with ``status`` is replaced by an error page."""
    return any(status in codes and intercepts_backend_errors(error) for codes, error in error_features)


def run_error_features(errors: Sequence[tuple[frozenset, Callable]], exchange: Any, status: int,
                       backend_error: bool, on_done: Callable[[LocalResponse | None], None],
                       start: int = 0) -> None:
    """Ask the error features listing ``status`` for a page, in order; ``backend_error``: the
    status is the backend's own answer (only features that intercept those are asked)."""
    index = start
    while index < len(errors):
        codes, feature = errors[index]
        index += 1
        if status not in codes or (backend_error and not intercepts_backend_errors(feature)):
            continue
        try:
            result = feature(exchange, status)
        except Exception:
            log.err(None, "ingressd: an error-page feature failed")
            continue
        if isinstance(result, Deferred):
            def fired(page, index=index) -> None:
                if page is None:
                    run_error_features(errors, exchange, status, backend_error, on_done, index)
                else:
                    on_done(page)

            def failed(failure, index=index) -> None:
                log.err(failure, "ingressd: an error page could not be fetched")
                run_error_features(errors, exchange, status, backend_error, on_done, index)

            result.addCallbacks(fired, failed)
            return
        if result is not None:
            on_done(result)
            return
    on_done(None)


def run_response_features(responses: Sequence[Callable], exchange: Any, status: int,
                          headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Let each ``response`` (in phase order) change the response's headers; returns them."""
    for response in responses:
        response(exchange, status, headers)
    return headers


def with_page_headers(original: Iterable[tuple[bytes, bytes]], page: LocalResponse) -> list:
    """An error page keeps the original answer's headers (WWW-Authenticate, Retry-After…), its
    own Content-Type and headers replacing the original's Content-Type."""
    kept = [(name, value) for name, value in original if name != b"content-type"]
    return kept + list(page.headers)
