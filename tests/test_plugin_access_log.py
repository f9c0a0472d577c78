"""enable-access-log: "false" keeps a route's requests out of the access log (not out of /metrics)."""

from __future__ import annotations

import json

import pytest

from ingressd.testing import PluginHarness
from ingressd_plugins import access_log

N = "nginx.ingress.kubernetes.io/"


@pytest.mark.parametrize("value, logged", [("false", False), ("False", False), ("0", False),
                                           ("true", True), (None, True)])
def test_the_route_entry_says_whether_to_log(value, logged):
    annotations = {} if value is None else {N + "enable-access-log": value}
    with PluginHarness([access_log], annotations) as harness:
        assert harness.rejection is None
        assert harness.entry.access_log is logged


def test_a_value_go_cannot_read_rejects_the_ingress():
    with PluginHarness([access_log], {N + "enable-access-log": "nope"}) as harness:
        assert harness.rejection is not None and "enable-access-log" in harness.rejection


@pytest.mark.slow
def test_end_to_end_the_quiet_route_leaves_no_line_and_is_still_counted(tmp_path):
    from backends import Backend
    from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
        ingress("loud", [("loud.test", [("/", "Prefix", "web", 80)])]),
        ingress("quiet", [("quiet.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "enable-access-log": "false"}),
    ])
    log = tmp_path / "access.log"
    proc = Ingressd(manifests, ["--access-log", str(log)])
    try:
        assert proc.get("/q", host="quiet.test").status == 200
        assert proc.get("/l", host="loud.test").status == 200
        proc.stop()  # flushes the access log
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        hosts = {line.get("host") for line in lines}
        assert "loud.test" in hosts and "quiet.test" not in hosts, lines
    finally:
        proc.stop()
        web.stop()
