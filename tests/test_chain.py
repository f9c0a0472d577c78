"""The feature chain runner on its own: order, answers, Deferreds, failures, error pages."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed

from ingressd.proxy.chain import (
    in_phase_order,
    intercepts,
    run_error_features,
    run_request_features,
    run_response_features,
    with_page_headers,
)
from ingressd.features import LocalResponse

ANSWER = LocalResponse(403)


def chain(*results, wanted=None):
    """Run request features returning ``results`` in turn; what was called and the outcome."""
    called, outcome = [], []

    def feature(result, name):
        def request(exchange):
            called.append(name)
            if isinstance(result, Exception):
                raise result
            return result
        request.__name__ = name
        return request

    features = [feature(result, f"f{index}") for index, result in enumerate(results)]
    run_request_features(features, object(), lambda answer, f: outcome.append(("done", answer, f and f.__name__)),
                         lambda f, failure: outcome.append(("error", f.__name__, failure.type)), wanted=wanted)
    return called, outcome


def test_every_feature_lets_the_request_through():
    assert chain(None, None) == (["f0", "f1"], [("done", None, None)])
    assert chain() == ([], [("done", None, None)])


def test_the_first_answer_stops_the_chain_and_names_its_feature():
    assert chain(None, ANSWER, None) == (["f0", "f1"], [("done", ANSWER, "f1")])


def test_a_raising_feature_is_an_error_and_stops_the_chain():
    assert chain(None, ValueError("x"), None) == (["f0", "f1"], [("error", "f1", ValueError)])


def test_deferreds_continue_or_answer_when_they_fire():
    later = Deferred()
    called, outcome = chain(later, None)
    assert (called, outcome) == (["f0"], [])
    later.callback(None)
    assert (called, outcome) == (["f0", "f1"], [("done", None, None)])
    assert chain(succeed(ANSWER), None) == (["f0"], [("done", ANSWER, "f0")])
    called, outcome = chain(fail(KeyError("k")), None)
    assert outcome == [("error", "f0", KeyError)]


def test_a_deferred_firing_after_the_exchange_is_over_does_nothing():
    later, state = Deferred(), {"over": False}
    called, outcome = chain(later, None, wanted=lambda: not state["over"])
    state["over"] = True
    later.callback(None)
    assert (called, outcome) == (["f0"], [])


class _Feature:
    def __init__(self, phase=None, intercept=None):
        if phase is not None:
            self.phase = phase
        if intercept is not None:
            self.intercept_upstream = intercept

    def error(self, exchange, status):
        return LocalResponse(status, [(b"content-type", b"text/html")], b"page %d" % status)


def test_phase_order_is_stable_and_defaults_to_proxy():
    a, b, c, d = _Feature(300), _Feature(), _Feature(100), _Feature(500)
    assert in_phase_order([a, b, c, d]) == [c, a, b, d]


def test_error_pages_ask_the_features_that_list_the_status():
    own, backend_only = _Feature(), _Feature(intercept=False)
    errors = [(frozenset({404}), own.error), (frozenset({503}), backend_only.error), (frozenset({503}), own.error)]
    pages = []
    run_error_features(errors, object(), 503, False, pages.append)
    assert pages[0].body == b"page 503"
    pages = []
    run_error_features(errors, object(), 503, True, pages.append)  # the backend's own 503
    assert pages[0].body == b"page 503" and len(pages) == 1
    pages = []
    run_error_features(errors[1:2], object(), 503, True, pages.append)
    assert pages == [None]
    assert intercepts(errors, 503) and intercepts(errors, 404) and not intercepts(errors[1:2], 503)
    assert not intercepts(errors, 500)


def test_a_failing_error_feature_hands_over_to_the_next():
    def broken(exchange, status):
        raise RuntimeError("boom")

    def late(exchange, status):
        return fail(RuntimeError("late"))

    pages = []
    run_error_features([(frozenset({500}), broken), (frozenset({500}), late), (frozenset({500}), _Feature().error)],
                       object(), 500, False, pages.append)
    assert [page.body for page in pages] == [b"page 500"]


def test_response_features_and_page_headers():
    seen = []
    headers = run_response_features([lambda ex, status, h: h.append((b"x-a", b"%d" % status)),
                                     lambda ex, status, h: seen.append(list(h))], object(), 201, [])
    assert headers == [(b"x-a", b"201")] and seen == [[(b"x-a", b"201")]]
    page = LocalResponse(401, [(b"content-type", b"text/html")], b"")
    assert with_page_headers([(b"www-authenticate", b"Basic"), (b"content-type", b"text/plain")], page) == [
        (b"www-authenticate", b"Basic"), (b"content-type", b"text/html")]
