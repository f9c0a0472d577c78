"""The access log's per-request note (``AccessLog.__call__``) and the default backend: a route whose
Ingress names no ``kind`` is an Ingress's (logged), a ``Service`` route and no route are the default
backend's (left out unless ``enable-access-log-for-default-backend``), and an exchange without an
``entry`` attribute is logged as the settings say; on a reactor with rounds and without. (Pins what a
leaner note must keep: docs/benchmarks.md, branch ``alog2``.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ingressd.accesslog import AccessLog
from ingressd.logformat import log_settings_from

from test_accesslog_rounds import RoundReactor
from test_log_format import exchange


def _route(**ingress):
    return SimpleNamespace(ingress=SimpleNamespace(namespace="d", name="i", **ingress),
                           backend=SimpleNamespace(service="s", port=80))


@pytest.mark.parametrize("rounds", [False, True], ids=["at once", "in rounds"])
@pytest.mark.parametrize("default_backend", [False, True])
def test_the_note_s_route_checks(rounds, default_backend):
    reactor = RoundReactor() if rounds else None
    log = AccessLog("-", settings=log_settings_from({
        "log_format_upstream": "$request_uri", "enable_access_log_for_default_backend": default_backend}),
        reactor=reactor)
    try:
        no_kind = exchange(request_uri=b"/no-kind", route=_route())
        no_entry = exchange(request_uri=b"/no-entry", route=_route(kind="Ingress"))
        if hasattr(no_entry, "entry"):
            del no_entry.entry
        log(no_kind)
        log(no_entry)
        log(exchange(request_uri=b"/service", route=_route(kind="Service")))
        log(exchange(request_uri=b"/none", route=None, status=404))
        if reactor is not None:
            reactor.end_round()
        expected = ["/no-kind\n", "/no-entry\n"] + (["/service\n", "/none\n"] if default_backend else [])
        assert log.queued_lines() == expected and log.dropped == 0
    finally:
        log.stopService()
