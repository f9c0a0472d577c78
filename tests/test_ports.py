"""The test harness's ports (tests/ports.py): no two test processes are handed the same port, none comes from
the range outgoing connections use, and a ``twistd ingressd`` that lost one of the harness's ports before it
bound it is started again on new ones (the tests run in parallel under pytest-xdist)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import harness
import ports
from harness import INGRESS_CLASS, Ingressd, write_manifests

TESTS = Path(__file__).resolve().parent


def test_ports_are_distinct_bindable_and_outside_the_ephemeral_range():
    low, high = ports._ephemeral_range()
    taken = [ports.free_port() for _ in range(50)]
    assert len(set(taken)) == 50
    for port in taken:
        assert not low <= port <= high
        assert ports._bindable(port)


def test_a_port_held_by_a_stranger_is_skipped(monkeypatch):
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        busy = stranger.getsockname()[1]
        reservations = ports._Reservations()
        monkeypatch.setattr(reservations, "_pool", range(busy, busy + 2))
        monkeypatch.setattr(reservations, "_cursor", 0)
        if not ports._bindable(busy + 1):
            pytest.skip(f"port {busy + 1} is in use by something else")
        assert reservations.take() == busy + 1


def test_another_test_process_never_gets_a_port_this_one_holds():
    mine = [ports.free_port() for _ in range(100)]
    other = textwrap.dedent(f"""
        import fcntl, json, os, sys, tempfile
        from pathlib import Path
        sys.path.insert(0, {str(TESTS)!r})
        import ports
        path = Path(tempfile.gettempdir()) / f"ingressd-test-ports-{{os.getuid()}}.lock"
        handle = os.open(path, os.O_RDWR)
        lockable = []
        for port in {mine!r}:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
                lockable.append(port)
            except OSError:
                pass
        print(json.dumps({{"lockable": lockable, "given": [ports.free_port() for _ in range(300)]}}))
    """)
    result = subprocess.run([sys.executable, "-c", other], capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(result.stdout)
    assert seen["lockable"] == []
    assert not set(seen["given"]) & set(mine)


@pytest.mark.slow
def test_ingressd_starts_again_on_new_ports_when_one_of_its_own_was_taken(tmp_path, monkeypatch):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", [INGRESS_CLASS])
    with socket.socket() as stranger:  # takes the harness's first pick before twistd binds it
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        busy = stranger.getsockname()[1]
        picks = iter([busy])
        monkeypatch.setattr(harness, "free_port", lambda: next(picks, None) or ports.free_port())
        proc = Ingressd(manifests)
        try:
            assert busy not in (proc.http_port, proc.https_port, proc.admin_port)
            assert proc.admin("/readyz")[0] == 200
        finally:
            proc.stop()
