"""Ports for the servers the tests start and for ports nothing listens on: one test process never gets a port
another holds.

Binding port 0, reading the number and closing the socket leaves a gap until the child process binds it, and
under pytest-xdist (several test processes at once, other checkouts' runs too) something else took the port in
that gap ("Address already in use"): an outgoing connection's ephemeral port, or another process's pick. So:

- ports come from below the kernel's ephemeral range (``ip_local_port_range``), where no outgoing
  connection's local port is ever chosen and no ``bind(port 0)`` lands;
- a port is reserved with a POSIX record lock on its byte of one lock file shared by every test process of
  this user; the kernel drops the locks when the process exits (a killed run leaks nothing), and no other test
  process is handed a port while it is reserved;
- a reserved port is handed out only if TCP and UDP can bind it right now (no stranger listens on it).

A reservation lasts as long as the test process, so a port handed out for "nothing listens here" stays dead.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
import threading
from pathlib import Path

_SPAN = 22000  # ports below the ephemeral range to hand out (a whole run uses a few thousand)
_ATTEMPTS = 2000  # ports tried before giving up


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _pool() -> range:
    """Ports outside the ephemeral range: below it if there is room, else above it; else the whole range."""
    low, high = _ephemeral_range()
    if low - 1024 >= 2000:
        return range(max(1025, low - _SPAN), low)
    if 65535 - high >= 2000:
        return range(high + 1, 65536)
    return range(1025, 65536)


class _Reservations:
    """The ports this process holds, and the lock file that holds them against the other test processes."""

    def __init__(self):
        self._lock = threading.Lock()
        self._mine: set[int] = set()
        self._file = None
        self._pool = _pool()
        self._cursor = random.SystemRandom().randrange(len(self._pool))  # not the seeded global random

    def _handle(self) -> int:
        if self._file is None or self._file[0] != os.getpid():  # a forked child holds none of its parent's locks
            path = Path(tempfile.gettempdir()) / f"ingressd-test-ports-{os.getuid()}.lock"
            self._file = (os.getpid(), os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._mine = set()
        return self._file[1]

    def take(self) -> int:
        with self._lock:
            handle = self._handle()
            for _ in range(_ATTEMPTS):
                port = self._pool[self._cursor % len(self._pool)]
                self._cursor += 1
                if port in self._mine:
                    continue
                try:
                    fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
                except OSError:
                    continue  # another test process holds it
                self._mine.add(port)  # held even if a stranger has it: this process never offers it again
                if _bindable(port):
                    return port
            raise RuntimeError(f"no free port after {_ATTEMPTS} tries in {self._pool}")


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


_RESERVATIONS = _Reservations()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on and no other test process is given while this one runs."""
    return _RESERVATIONS.take()
