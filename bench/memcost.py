"""What the in-memory bench scripts share: the server built in memory, its connections, the
timing loop, cProfile and the CPU-time sampler, and the report's lines.

``pathcost.py``, ``conncost.py``, ``tlscost.py``, ``h2cost.py`` and ``grpccost.py`` (and
``flatfloor.py``, which reuses pathcost's rig) each say only what they measure; the pieces
they all need are here:

- ``use_tree_source()``: import ``ingressd`` from this checkout rather than the installed copy
  (call it before the first ``ingressd`` import; ``conncost.py`` does not: it measures the
  installed copy, so that each tree's venv runs its own);
- ``options()``: the command line they share (``--requests`` or its like, ``--rounds``,
  ``--args``, ``--profile``, ``--sample``, ``--sort``, ``--lines``); each script adds its own;
- ``server_args()`` and ``serve()``: the real server (``ingressd.testing.serve_in_memory``:
  the installed plugins, the options ``twistd ingressd`` parses) with one route to
  ``bench.local``, the access log to a file unless ``--args`` says otherwise, nginx's
  per-connection request limits lifted (one connection carries every request), on a
  ``RoundsReactor``: a memory reactor that ends rounds of events as ``ingressd.reactor``'s does
  (``call_at_round_end``), so that the access log holds a round's exchanges and formats their
  lines at the round's end as in ``twistd ingressd``; a script ends a round (``end_round()``)
  where the real reactor's would end (after the backend's answer was read);
- ``accept()`` and ``connect()``/``Upstreams``: a client connection of a listener's factory and
  the backend connections the server asked its memory reactor for, on ``StringTransport``s;
- ``batch_rounds()``: the HTTP/2 scripts' reads, encoded before the rounds that play them;
- ``cpu_per()``, ``per_text()``, ``rounds_text()``, ``python_line()``: the timing loop's round
  (CPU time per request) and the report's wording (median of the rounds, every round);
- ``profiled()``, ``sample()``, ``print_samples()``: cProfile's table, and µs per function by
  sampling the stack on CPU time (``ITIMER_PROF``), which cProfile's tracing inflates.

Nothing here is timed itself: the loops the scripts time are their own.
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import pstats
import shlex
import signal
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

REPO = Path(__file__).resolve().parent.parent
HOST = "bench.local"
CLIENT = IPv4Address("TCP", "127.0.0.1", 40000)
# A backend's answer to every request of the HTTP/1.1 scripts.
RESPONSE = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
# The per-connection request limits (nginx's 1,000 and 10,000) that would close a rig's one connection.
_LIMITS = ("--keepalive-requests", "--upstream-keepalive-requests")
# Where a frame's file name is cut: what follows the last of these (the first found) names it.
_MARKERS = ("/ingressd/", "/ingressd_plugins/", "/plugins/", "/site-packages/", "/lib/python")


def use_tree_source() -> None:
    """Import ``ingressd`` from this checkout (build its C accelerators in place first, or the
    figures are the pure-Python code's)."""
    sys.path.insert(0, str(REPO))


def options(doc: str, *, count: str = "requests", default: int = 20_000, args: str = "",
            lines: int = 30, sample: bool = True, unit: str = "request") -> argparse.ArgumentParser:
    """The shared command line: ``--COUNT`` per round, ``--rounds``, ``--args``, ``--profile``,
    ``--sample`` (unless ``sample`` is false), ``--sort``, ``--lines``."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument(f"--{count}", type=int, default=default, help=f"{count} per round (default {default:,})")
    p.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported (default 5)")
    p.add_argument("--args", default=args, help="extra 'twistd ingressd' options, e.g. '--access-log off'"
                   + (f" (default '{args}')" if args else ""))
    p.add_argument("--profile", action="store_true", help="print cProfile's table for one round")
    if sample:
        p.add_argument("--sample", action="store_true",
                       help=f"sample stacks on CPU time: µs per {unit} by function (self and total)")
    p.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumulative, ncalls)")
    p.add_argument("--lines", type=int, default=lines, help="rows of the table")
    return p


def server_args(text: str, tmp: Path, *more: str, log_to_file: bool = True) -> list[str]:
    """``--args``' options, then ``more``; the access log to a file in ``tmp`` (on, as by default,
    but not on stdout) unless they name it or ``log_to_file`` is false; and one connection
    allowed every request (``--keepalive-requests 0 --upstream-keepalive-requests 0``) unless
    they set those."""
    extra = shlex.split(text) + list(more)
    if log_to_file and "--access-log" not in extra:
        extra += ["--access-log", str(Path(tmp) / "access.log")]
    for option in _LIMITS:
        if option not in extra:
            extra += [option, "0"]
    return extra


class RoundsReactor(MemoryReactorClock):
    """A memory reactor that ends rounds of events as ``ingressd.reactor.DirectDispatchEPollReactor``
    does: ``call_at_round_end(f)`` calls ``f`` once when the script says the round ended
    (``end_round()``). Without it the access log formats each line at once (its other-reactor
    path), which is not what the server runs."""

    def __init__(self) -> None:
        super().__init__()
        self._round_ends: list = []

    def call_at_round_end(self, f) -> None:
        self._round_ends.append(f)

    @property
    def waiting(self) -> int:
        """Round ends asked for since the last ``end_round``."""
        return len(self._round_ends)

    def end_round(self) -> None:
        if self._round_ends:
            ends, self._round_ends = self._round_ends, []
            for end in ends:
                end()


def serve(tmp: Path, extra_args: list[str], objects: list | None = None):
    """(service, reactor): the real server with ``objects`` (default: one Ingress routing
    ``bench.local`` to one endpoint) on a ``RoundsReactor``, its route checked. An installed
    ``ingressd`` whose ``serve_in_memory`` takes no reactor (before 2026-12-07's alog5) serves on
    a plain memory reactor: its ``end_round`` is then a no-op, and the log formats each line at once."""
    from ingressd.testing import one_route_objects, serve_in_memory

    more = {"reactor": RoundsReactor()} if "reactor" in inspect.signature(serve_in_memory).parameters else {}
    service, reactor = serve_in_memory(Path(tmp), objects or one_route_objects(HOST), *extra_args, **more)
    if not hasattr(reactor, "end_round"):
        reactor.end_round = _no_round
    if service.state.table.match(HOST, "/") is None:
        raise SystemExit("the route did not load; is the manifest valid?")
    return service, reactor


def _no_round() -> None:
    """``end_round`` of a reactor without rounds."""


def accept(factory, port: int = 8080):
    """(protocol, transport): a client connection from 127.0.0.1:40000 to ``port``, made."""
    protocol = factory.buildProtocol(CLIENT)
    transport = StringTransport(peerAddress=CLIENT, hostAddress=IPv4Address("TCP", "127.0.0.1", port))
    protocol.makeConnection(transport)
    return protocol, transport


def connect(reactor, index: int = -1):
    """(protocol, transport): the backend connection the server asked ``reactor`` (a memory
    reactor) for, ``tcpClients[index]``, completed on a ``StringTransport``."""
    host, port, factory, _, _ = reactor.tcpClients[index]
    protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
    protocol.makeConnection(transport)
    return protocol, transport


class Upstreams:
    """The backend connections a server opened on a memory reactor, each completed once
    (``seen``: how many; a timed loop compares it with ``len(reactor.tcpClients)``)."""

    def __init__(self, reactor):
        self.reactor = reactor
        self.seen = 0

    def new(self) -> list[tuple]:
        """(protocol, transport) of each connection asked for since the last call."""
        made = []
        while self.seen < len(self.reactor.tcpClients):
            made.append(connect(self.reactor, self.seen))
            self.seen += 1
        return made


def batch_rounds(rig, count: int, streams: int, rounds: int) -> list[list[bytes]]:
    """For the HTTP/2 rigs (``rig.play(reads)``, ``rig.client.batches(count, streams)``): the
    warm-up played (2,000 requests), then ``rounds`` rounds of ``count`` requests' reads,
    ``streams`` to a read, encoded beforehand (their encoding is not timed)."""
    rig.play(rig.client.batches(2000, streams))
    return [rig.client.batches(count, streams) for _ in range(rounds)]


def cpu_per(units: int, run, *args) -> float:
    """CPU µs (this process's) per unit of one call of ``run(*args)`` that does ``units``."""
    started = time.process_time()
    run(*args)
    return (time.process_time() - started) / units * 1e6


def rounds_text(figures: list[float], count: int, digits: int = 1) -> str:
    return (f"median of {len(figures)} rounds of {count:,}; "
            f"all: {', '.join(f'{f:.{digits}f}' for f in figures)}")


def per_text(figures: list[float], count: int, unit: str = "request", digits: int = 1) -> str:
    """'N µs CPU per UNIT (median of R rounds of COUNT; all: ...)'."""
    return f"{statistics.median(figures):.{digits}f} µs CPU per {unit} ({rounds_text(figures, count, digits)})"


def python_line(options_text: str, *notes: str) -> str:
    """The report's first line: Python's version, ``--args`` and what else was set."""
    return f"python {sys.version.split()[0]}; options: {options_text or '(defaults)'}" + "".join(
        f"; {note}" for note in notes if note)


def profiled(run, *args) -> pstats.Stats:
    """cProfile's statistics of one call of ``run(*args)``."""
    profile = cProfile.Profile()
    profile.runcall(run, *args)
    return pstats.Stats(profile)


def frame_name(code) -> str:
    """``file:line(function)``, the file from its package (or the standard library) down."""
    path = code.co_filename
    for marker in _MARKERS:
        at = path.rfind(marker)
        if at >= 0:
            path = path[at + 1:]
            break
    return f"{path}:{code.co_firstlineno}({code.co_name})"


def count_stack(frame, loop, own: Counter, total: Counter) -> bool:
    """One sample of the stack from ``frame`` down to the frame running ``loop`` (a code object):
    the innermost function counted in ``own``, each function once in ``total``, ``loop``'s and
    those under it left out. False, nothing counted, when no frame runs ``loop`` (a tick that
    fell just before or after it)."""
    keys = []
    while frame is not None:
        code = frame.f_code
        if code is loop:
            break
        keys.append(frame_name(code))
        frame = frame.f_back
    else:
        return False
    if keys:
        own[keys[0]] += 1
        total.update(set(keys))
    return True


def sample(subject, count: int, interval: float = 0.0002) -> tuple[float, Counter, Counter, int]:
    """Run ``subject.run(count)`` under a CPU-time stack sampler: (CPU µs per unit, self
    samples, total samples, all samples) by function (``frame_name``). Frames from
    ``subject.run``'s own up (the loop and the harness) are not counted, nor a tick that falls
    outside ``subject.run`` (the timer counts the process's CPU, its other threads' too)."""
    own: Counter = Counter()
    total: Counter = Counter()
    taken = [0]
    loop = getattr(subject.run, "__func__", subject.run).__code__

    def on_tick(signum, frame) -> None:
        if count_stack(frame, loop, own, total):
            taken[0] += 1

    previous = signal.signal(signal.SIGPROF, on_tick)
    signal.setitimer(signal.ITIMER_PROF, interval, interval)
    started = time.process_time()
    try:
        subject.run(count)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, previous)
    return (time.process_time() - started) / count * 1e6, own, total, taken[0]


def print_samples(per_unit: float, own: Counter, total: Counter, taken: int, lines: int,
                  unit: str = "request") -> None:
    if not taken:
        print(f"{per_unit:.1f} µs CPU per {unit}; no samples (too short a run: more requests)")
        return
    print(f"{per_unit:.1f} µs CPU per {unit} while sampled; {taken:,} samples")
    print(f"{'self µs':>8} {'total µs':>9}  function")
    for key, count in own.most_common(lines):
        print(f"{count / taken * per_unit:8.2f} {total[key] / taken * per_unit:9.2f}  {key}")
    print("by total (with callees):")
    for key, count in total.most_common(lines):
        print(f"{own[key] / taken * per_unit:8.2f} {count / taken * per_unit:9.2f}  {key}")
