"""bench/logpair.py, the access log's paired socket benchmark: its sign-test interval, and one tiny
run of both servers (one pair of 1 s slices: wrk's -d takes whole seconds) whose report must have
its shape, its differences taken from its own slices, no errors, and an ingressd log file with
exactly as many lines as the requests ingressd answered. The figures are not checked (benchmarks
print, they do not assert about time). Needs nginx, wrk and taskset: skipped without them,
failed under ``CI=true``."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load_logpair():
    """bench/logpair.py by its path (bench/ is not put on sys.path for the other tests: its
    scripts' names would shadow other modules; logpair puts its own directory there to import
    bench.py)."""
    spec = importlib.util.spec_from_file_location("logpair", BENCH / "logpair.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


logpair = _load_logpair()


def test_sign_test_interval_needs_six_values_at_95_percent():
    assert logpair.sign_test_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None
    got = logpair.sign_test_interval([6.0, 1.0, 5.0, 2.0, 4.0, 3.0])
    assert (got["low"], got["high"]) == (1.0, 6.0)
    assert got["coverage"] == pytest.approx(1 - 2 / 64)


def test_sign_test_interval_of_ten_drops_one_value_each_side():
    values = [10.0, -3.0, 4.0, 7.0, 1.0, 2.0, 9.0, 0.5, 8.0, 6.0]
    got = logpair.sign_test_interval(values)
    assert (got["low"], got["high"]) == (0.5, 9.0)  # the 2nd and the 9th of ten sorted
    assert got["coverage"] == pytest.approx(1 - 2 * 11 / 1024)
    assert got["coverage"] >= 0.95


def test_summary_counts_the_pairs_above_zero():
    assert logpair.summary([1.0, -2.0, 3.0]) == {"median": 1.0, "interval": None, "positive": 2, "pairs": 3,
                                                 "target": "not resolved"}
    assert logpair.summary([])["median"] is None


def test_the_target_is_shown_only_by_the_whole_interval():
    assert logpair.verdict({"low": 1.0, "high": 3.0}) == "shown"
    assert logpair.verdict({"low": 1.0, "high": 3.1}) == "not resolved"
    assert logpair.verdict({"low": 3.1, "high": 5.0}) == "exceeded"
    assert logpair.verdict({"low": 3.0, "high": 5.0}) == "not resolved"
    assert logpair.verdict(None) == "not resolved"
    assert logpair.summary([2.0, 2.5, 1.0, 2.9, 0.5, 1.5])["target"] == "shown"


def _tools() -> None:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    missing = [n for n, p in (("nginx", nginx), ("wrk", shutil.which("wrk")), ("taskset", shutil.which("taskset")))
               if not p]
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{', '.join(missing)} missing: .ci/run installs nginx-light and wrk")
        pytest.skip(f"{', '.join(missing)} not installed")


def _run(tmp_path, *argv) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "logpair.json"
    twistd = Path(sys.executable).parent / "twistd"
    done = subprocess.run([sys.executable, str(BENCH / "logpair.py"), "--twistd", str(twistd),
                           "--json", str(out), *argv], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(out.read_text())


def test_one_pair_of_both_servers_and_formats(tmp_path):
    _tools()
    done, report = _run(tmp_path, "--pairs", "1", "--seconds", "1", "--warmup", "0")
    assert report["settings"]["formats"] == ["nginx", "json"]
    assert set(report["results"]) == {"nginx", "ingressd"}
    for server, result in report["results"].items():
        assert result["pairs_done"] == 1 and not result["stopped_by_budget"]
        variants = result["variants"]
        assert set(variants) == {"off", "nginx", "json"}
        assert variants["off"]["slices"] == 2 and variants["nginx"]["slices"] == variants["json"]["slices"] == 1
        for v in variants.values():
            assert v["requests"] > 0 and v["non_2xx"] == 0 and v["socket_errors"] == 0
            assert v["requests"] == sum(s["requests"] for s in v["each"])
        for i, fmt in enumerate(("nginx", "json")):  # round 0: off then the format, nginx's pair first
            f = result["formats"][fmt]
            on, off = variants[fmt]["each"][0], variants["off"]["each"][i]
            assert f["differences"] == [round(on["us_per_request"] - off["us_per_request"], 3)]
            assert f["log_us_per_request"]["pairs"] == 1 and f["log_us_per_request"]["interval"] is None
            log = f["log"]
            assert log["wrk_requests"] == on["requests"]
            if server == "ingressd":
                # every request it answered is a line: wrk's, plus its readiness check and what
                # wrk left in flight at its end (at most one a connection)
                assert log["settled"] and log["nothing_lost"] and log["dropped"] == 0
                assert log["log_lines"] == log["served"] == log["written"]
                assert log["wrk_requests"] < log["served"] <= log["wrk_requests"] + 50 + 5
            else:  # nginx's buffer is flushed when it stops
                assert log["wrk_requests"] < log["log_lines"] <= log["wrk_requests"] + 50 + 5
    assert "nothing lost" in done.stdout and "LOST" not in done.stdout
    assert done.stdout.count("the log ≤ 3 µs/req: not resolved") == 2  # ingressd's, one pair: no interval
    assert "µs/req" in done.stdout


def test_the_budget_bounds_the_pairs(tmp_path):
    _tools()
    done, report = _run(tmp_path, "--only", "nginx", "--format", "nginx", "--budget", "1", "--warmup", "0")
    result = report["results"]["nginx"]
    assert result["pairs_done"] == 0 and result["stopped_by_budget"]
    assert result["formats"]["nginx"]["differences"] == []
    assert "stopped by --budget" in done.stdout
