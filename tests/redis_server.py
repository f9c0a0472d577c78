"""A real ``redis-server`` for the tests: on a free 127.0.0.1 port, no persistence, killed at teardown.

Without ``redis-server`` the tests that need it fail in CI (``CI=true``; ``.ci/run`` installs it)
and are skipped, saying why, elsewhere.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from harness import free_port


def require_redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        message = "redis-server is not installed (apt-get install redis-server; .ci/run installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class RedisServer:
    """One ``redis-server`` process; ``stop``/``start`` again on the same port (a restart),
    ``pause``/``resume`` (SIGSTOP/SIGCONT: a Redis that answers nothing)."""

    def __init__(self, port: int | None = None, password: str | None = None):
        self.binary = require_redis_server()
        self.port = port or free_port()
        self.password = password
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    reply = sock.recv(64)
                    if reply.startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server not answering on {self.port} after {timeout}s")

    def command(self, *args: str) -> bytes:
        """One command over a plain socket (for checks from the test's side)."""
        from ingressd.redis.resp import encode

        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            if self.password:
                sock.sendall(encode("AUTH", self.password))
                sock.recv(64)
            sock.sendall(encode(*args))
            return sock.recv(65536)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def redis_server():
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()
