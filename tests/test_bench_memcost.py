"""bench/memcost.py, the in-memory bench scripts' shared parts, and the scripts built on it: every
command line docs/benchmarks.md quotes still runs and prints its figures in its own words. The
scripts run in subprocesses with few requests (the figures are not checked: benchmarks print,
they do not assert about time)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load_memcost():
    """bench/memcost.py by its path (bench/ is not put on sys.path: its scripts' names would
    shadow other modules in this process)."""
    spec = importlib.util.spec_from_file_location("memcost", BENCH / "memcost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


memcost = _load_memcost()

FIGURE = r"\d+\.\d+ µs CPU per {unit} \(median of {rounds} rounds of [\d,]+; all: [\d., ]+\)"


def test_server_args_log_to_a_file_and_lift_the_request_limits(tmp_path):
    assert memcost.server_args("", tmp_path) == [
        "--access-log", str(tmp_path / "access.log"),
        "--keepalive-requests", "0", "--upstream-keepalive-requests", "0"]


def test_server_args_keep_what_args_set(tmp_path):
    assert memcost.server_args("--access-log off --keepalive-requests 7", tmp_path, "--https", "tcp:8443") == [
        "--access-log", "off", "--keepalive-requests", "7", "--https", "tcp:8443",
        "--upstream-keepalive-requests", "0"]
    assert memcost.server_args("--no-metrics", tmp_path, log_to_file=False) == [
        "--no-metrics", "--keepalive-requests", "0", "--upstream-keepalive-requests", "0"]


def test_per_text_is_the_median_and_every_round():
    assert memcost.per_text([3.0, 1.0, 2.0], 20_000) == (
        "2.0 µs CPU per request (median of 3 rounds of 20,000; all: 3.0, 1.0, 2.0)")
    assert memcost.per_text([4.5, 4.25], 500, "connection", 2) == (
        "4.38 µs CPU per connection (median of 2 rounds of 500; all: 4.50, 4.25)")


def test_python_line_names_the_options_and_the_notes():
    line = memcost.python_line("", "", "10 streams per read")
    assert line == f"python {sys.version.split()[0]}; options: (defaults); 10 streams per read"


def test_frame_names_start_at_the_package():
    def code(path: str):
        return compile("pass", path, "exec")

    assert memcost.frame_name(code("/x/.venv/lib/python3.11/site-packages/ingressd/http/http1.py")) == (
        "ingressd/http/http1.py:1(<module>)")
    assert memcost.frame_name(code("/usr/lib/python3.11/ssl.py")) == "lib/python3.11/ssl.py:1(<module>)"
    assert memcost.frame_name(code("/elsewhere/run.py")) == "/elsewhere/run.py:1(<module>)"


def test_sample_counts_what_the_loop_calls_not_the_loop():
    class Subject:
        def run(self, count: int) -> None:
            deadline = __import__("time").process_time() + 0.3  # CPU enough for a few samples
            while __import__("time").process_time() < deadline:
                busy(1000)

    def busy(n: int) -> int:
        return sum(range(n))

    per, own, total, taken = memcost.sample(Subject(), 1, interval=0.001)
    assert taken > 0 and per > 0
    assert not [key for key in total if key.endswith("(run)")]
    assert any(key.endswith("(busy)") for key in total)


def test_a_tick_outside_the_loop_counts_nothing():
    """The timer counts the whole process's CPU: a tick can fall before or after ``subject.run``
    (under pytest-xdist its stack then reaches execnet's ``run``). Only stacks through the loop
    count, and only their frames above it."""
    own, total = Counter(), Counter()

    def loop():
        return inner()

    def inner():
        return memcost.count_stack(sys._getframe(), loop.__code__, own, total)

    assert memcost.count_stack(sys._getframe(), loop.__code__, own, total) is False
    assert not own and not total
    assert loop() is True
    assert [key.rsplit("(", 1)[1] for key in own] == ["inner)"]
    assert sorted(key.rsplit("(", 1)[1] for key in total) == ["inner)"]


def test_print_samples_without_samples(capsys):
    memcost.print_samples(1.0, Counter(), Counter(), 0, 5)
    assert "no samples" in capsys.readouterr().out


def test_the_rounds_reactor_calls_each_round_end_once_in_order():
    reactor = memcost.RoundsReactor()
    called = []
    reactor.call_at_round_end(lambda: called.append(1))
    reactor.call_at_round_end(lambda: (called.append(2), reactor.call_at_round_end(lambda: called.append(3))))
    assert reactor.waiting == 2
    reactor.end_round()
    assert called == [1, 2] and reactor.waiting == 1  # asked during the round's end: the next round's
    reactor.end_round()
    reactor.end_round()
    assert called == [1, 2, 3] and reactor.waiting == 0


REQUEST = b"GET / HTTP/1.1\r\nHost: bench.local\r\n\r\n"


@pytest.mark.parametrize("log, asked", [("", 1), ("--access-log off", 0)])
def test_the_served_access_log_holds_the_rounds_lines_until_the_round_ends(tmp_path, log, asked):
    """What pathcost's figures measure: the server's round path (the finished exchange noted by the
    proxy, handed to the metrics and the log, its line formatted, when the round ends), not the line
    formatted at once. With the log off no round end is asked for: the metrics alone take the
    proxy's notes when read (or at their bound)."""
    service, reactor = memcost.serve(tmp_path, memcost.server_args(log, tmp_path))
    try:
        client, client_transport = memcost.accept(service.http_factory)
        client.dataReceived(REQUEST)
        upstream, _ = memcost.connect(reactor)
        upstream.dataReceived(memcost.RESPONSE)
        assert client_transport.value().startswith(b"HTTP/1.1 200 ")
        assert isinstance(reactor, memcost.RoundsReactor) and reactor.waiting == asked
        access_log = service.access_log
        assert (access_log is None) == (log == "--access-log off")
        assert service.proxy.noted == 1 and service.metrics.waiting == 0  # noted, not handed over yet
        if access_log is not None:
            assert access_log.counts()["pending"] == 0 and access_log.written == 0
        reactor.end_round()
        assert reactor.waiting == 0 and service.proxy.noted == 1 - asked and service.metrics.waiting == asked
        service.metrics.fold()  # a read: the proxy's notes handed over and counted
        assert service.proxy.noted == 0 and service.metrics.waiting == 0
        if access_log is not None:  # the line formatted: queued, and written by the writer thread
            for _ in range(100):  # (bounded: the writer writes every 0.1 s)
                if access_log.written == 1:
                    break
                time.sleep(0.05)
            assert access_log.written == 1 and access_log.counts()["pending"] == 0 and access_log.dropped == 0
    finally:
        service.stopService()


SCRIPTS = [
    (["pathcost.py", "--requests", "300", "--rounds", "2"],
     [r"python \S+; options: \(defaults\)", "request path in memory: " + FIGURE.format(unit="request", rounds=2)]),
    (["pathcost.py", "--requests", "300", "--rounds", "1", "--args", "--access-log off", "--general",
      "--llhttp-heads"],
     [r"options: --access-log off; general steps only; heads through llhttp",
      FIGURE.format(unit="request", rounds=1)]),
    (["pathcost.py", "--requests", "300", "--rounds", "1", "--round", "16", "--args", "--access-log-format nginx"],
     [r"options: --access-log-format nginx; 16 requests a round", FIGURE.format(unit="request", rounds=1)]),
    (["pathcost.py", "--requests", "300", "--rounds", "2", "--halves"],
     [r"request half \d+\.\d\d µs, backend-answer half \d+\.\d\d µs CPU per request \(median of 2 rounds"]),
    (["pathcost.py", "--requests", "300", "--profile", "--lines", "3"],
     [r"function calls (\(\d+ primitive calls\) )?in", r"Ordered by: internal time"]),
    (["pathcost.py", "--requests", "4000", "--rounds", "1", "--sample", "--lines", "3"],
     [r"µs CPU per request while sampled|no samples"]),
    (["h2cost.py", "--requests", "200", "--rounds", "2"],
     [r"options: --access-log off; 10 streams per read",
      "HTTP/2 \\(h2c\\) request path in memory: " + FIGURE.format(unit="request", rounds=2)]),
    (["h2cost.py", "--requests", "200", "--profile", "--sort", "cumulative", "--lines", "3"],
     [r"Ordered by: cumulative time", r"Python calls per request: \d+\.\d"]),
    (["grpccost.py", "--calls", "200", "--rounds", "2", "--streams", "5"],
     [r"options: --access-log off; 5 calls per read",
      r"gRPC unary \(h2c both sides\) in memory: " + FIGURE.format(unit="call", rounds=2)]),
    (["grpccost.py", "--calls", "200", "--profile", "--only", "h2_upstream", "--lines", "3"],
     [r"\d+\.\d Python calls per gRPC call", r"h2_upstream"]),
    (["tlscost.py", "--requests", "200", "--rounds", "1", "--both"],
     ["TLS client: " + FIGURE.format(unit="request", rounds=1), "TLS backend: " + FIGURE.format(unit="request",
                                                                                          rounds=1)]),
    (["tlscost.py", "--requests", "200", "--rounds", "1", "--ingress-tls"], ["TLS client: "]),
    (["tlscost.py", "--requests", "200", "--rounds", "1", "--layer"],
     [r"twisted TLSMemoryBIOProtocol: \d+\.\d\d µs CPU per round trip", r"ingressd LeanTLSProtocol: .* Python calls"]),
    (["conncost.py", "--connections", "50", "--rounds", "2", "--args", "--access-log off"],
     [r"a connection with one request: \d+\.\d µs CPU \(user \d+\.\d, system \d+\.\d; median of 2 rounds of 50"]),
    (["conncost.py", "--connections", "50", "--rounds", "1", "--keepalive", "--open", "2"],
     [r"a request on a kept-alive connection: "]),
    (["conncost.py", "--connections", "50", "--calls"], [r"calls per connection under cProfile: \d+\.\d"]),
    (["conncost.py", "--connections", "50", "--rounds", "2", "--lifecycle"],
     [r"the HTTP/1.1 protocol's life alone: " + FIGURE.format(unit="connection", rounds=2)]),
    (["conncost.py", "--connections", "50", "--rounds", "2", "--life-request", "--open", "3"],
     [r"in memory, 3 more open: " + FIGURE.format(unit="connection", rounds=2)]),
    (["inflightcost.py", "--calls", "200", "--rounds", "2", "--in-flight", "3"],
     [r"HTTP/2 client connection, 3 calls in flight: \d+\.\d\d µs CPU per call"]),
    (["loopcost.py", "--turns", "1000", "--rounds", "2"],
     [r"main loop, CPU µs a turn: Twisted's \d+\.\d{3}, ingressd's \d+\.\d{3}"]),
    (["flatfloor.py", "--requests", "300", "--rounds", "1"],
     [r"general: ", r"lean floor: ", r"checked floor: " + FIGURE.format(unit="request", rounds=1)]),
]


@pytest.mark.slow
@pytest.mark.parametrize("argv, expected", SCRIPTS, ids=[" ".join(argv) for argv, _ in SCRIPTS])
def test_script_runs_and_reports(argv, expected):
    done = subprocess.run([sys.executable, str(BENCH / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for pattern in expected:
        assert re.search(pattern, done.stdout), (pattern, done.stdout[-3000:])
