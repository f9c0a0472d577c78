"""SIGHUP and SIGUSR1 on the real ``twistd ingressd``: reload, reopen, and never an exit."""

from __future__ import annotations

import os
import signal
import time

import pytest
import yaml

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = pytest.mark.slow

WAIT = 30.0


def wait_for(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def web():
    backend = Backend("web")
    yield backend
    backend.stop()


def test_sighup_applies_a_changed_manifest_list_and_names_what_needs_a_restart(tmp_path, web):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write_manifests(first / "a.yaml", [INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
                                       ingress("a", [("a.test", [("/", "Prefix", "web", 80)])])])
    write_manifests(second / "b.yaml", [ingress("b", [("b.test", [("/", "Prefix", "web", 80)])])])
    config = tmp_path / "ingressd.yaml"
    config.write_text(yaml.safe_dump({"access-log": "off"}))
    proc = Ingressd(first, ["--config", str(config)])
    try:
        wait_for(lambda: proc.get("/", host="a.test").status == 200, "a.test")
        assert proc.get("/", host="b.test").status == 404

        config.write_text(yaml.safe_dump({"access-log": "off", "manifests": [str(second)],
                                          "proxy-read-timeout": 30}))
        proc.process.send_signal(signal.SIGHUP)
        wait_for(lambda: proc.get("/", host="b.test").status == 200, "b.test after SIGHUP")
        assert proc.get("/", host="a.test").status == 200
        wait_for(lambda: "SIGHUP: re-read 2 manifest path(s)" in proc.log(), "the reload's log line")
        line = next(line for line in proc.log().splitlines() if "SIGHUP: re-read 2 " in line)
        assert "applied: --manifests" in line
        assert "changed but only applied by a restart: --proxy-read-timeout" in line

        # A broken edit changes nothing, and the process stays up.
        config.write_text(yaml.safe_dump({"access-log": "off", "no-such-option": 1}))
        proc.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "the options are not valid now, nothing changed" in proc.log(), "the refusal")
        assert proc.process.poll() is None
        assert proc.get("/", host="b.test").status == 200
        assert proc.admin("/readyz")[0] == 200
    finally:
        proc.stop()


def test_sigusr1_reopens_a_rotated_access_log(tmp_path, web):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "a.yaml", [INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
                                           ingress("a", [("a.test", [("/", "Prefix", "web", 80)])])])
    access = tmp_path / "access.log"
    rotated = tmp_path / "access.log.1"
    proc = Ingressd(manifests, ["--access-log", str(access)])
    try:
        wait_for(lambda: proc.get("/before", host="a.test").status == 200, "a.test")
        wait_for(lambda: access.exists() and "/before" in access.read_text(), "the first line")
        os.rename(access, rotated)  # what logrotate does
        proc.process.send_signal(signal.SIGUSR1)
        wait_for(lambda: f"access log {access} reopened" in proc.log(), "the reopen")
        assert proc.get("/after", host="a.test").status == 200
        wait_for(lambda: access.exists() and "/after" in access.read_text(), "a line in the new file")
        assert "/after" not in rotated.read_text() and "/before" in rotated.read_text()
        assert proc.process.poll() is None
    finally:
        proc.stop()
