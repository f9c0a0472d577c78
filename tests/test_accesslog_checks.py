"""The access log's per-request checks (``AccessLog.__call__``): a sequence of ``apply()`` calls
(disable-access-log, skip-access-log-urls, enable-access-log-for-default-backend) and exchanges
(a route's enable-access-log, no route, no ``entry`` at all): each exchange logged exactly when the
settings at its end say, on a reactor with rounds and without."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.accesslog import AccessLog
from ingressd.logformat import log_settings_from

from test_accesslog_rounds import RoundReactor
from test_logformat_compiled import exchanges

SETTINGS = {
    "every": {},
    "off": {"disable_access_log": True},
    "skip": {"skip_access_log_urls": "/skip,/other"},
    "no default backend": {"enable_access_log_for_default_backend": False},
    "skip, no default backend": {"skip_access_log_urls": "/skip", "enable_access_log_for_default_backend": False},
}


def _logged(options: dict, exchange) -> bool:
    """What the checks decide, as the access log decided before they were remembered."""
    settings_ = log_settings_from(options)
    entry = getattr(exchange, "entry", None)
    if entry is not None and not entry.access_log:
        return False
    if not settings_.enabled or exchange.request_uri in settings_.skip_urls:
        return False
    return settings_.default_backend or exchange.route is not None


def _lines(log: AccessLog, reactor) -> int:
    if reactor is not None:
        reactor.end_round()
    return len(log.queued_lines())


@pytest.mark.parametrize("rounds", [False, True], ids=["at once", "in rounds"])
@settings(max_examples=150, deadline=None)
@given(case=exchanges(), steps=st.lists(st.tuples(st.sampled_from(sorted(SETTINGS)),
                                                  st.sampled_from([b"/skip", b"/a", b"/other"]),
                                                  st.booleans(), st.sampled_from([None, True, False])),
                                        min_size=1, max_size=12))
def test_every_exchange_is_logged_as_its_settings_say(rounds, case, steps):
    """A sequence of settings changes and exchanges (skipped URIs, no route, a route that turns
    its log off, no ``entry`` at all): each exchange logged exactly when the settings at its end say."""
    _, template = case
    reactor = RoundReactor() if rounds else None
    log = AccessLog("-", settings=log_settings_from({}), reactor=reactor)
    written = 0
    for name, uri, routed, route_log in steps:
        log.apply(log_settings_from(SETTINGS[name]))
        exchange = copy.copy(template)
        exchange.request_uri = uri
        if not routed:
            exchange.route = None
        elif exchange.route is None:
            exchange.route = SimpleNamespace(ingress=SimpleNamespace(namespace="n", name="i", kind="Ingress"),
                                             backend=SimpleNamespace(service="s", port=80, endpoints=()),
                                             host="", path="/")
        if route_log is None:
            del exchange.entry  # an exchange without a route entry attribute: logged as the settings say
        else:
            exchange.entry = SimpleNamespace(access_log=route_log, alternatives=())
        expected = _logged(SETTINGS[name], exchange)
        log(exchange)
        written += expected
        assert _lines(log, reactor) == written, (name, uri, routed, route_log)
    assert log.dropped == 0

