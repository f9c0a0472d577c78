"""A real ``php-fpm`` for the tests: one pool on a free 127.0.0.1 port, its scripts in a temporary folder.

Debian names it ``php-fpm8.2`` (or another version); ``php-fpm`` where an alternative is set.
Without it the tests that need it fail in CI (``CI=true``; ``.ci/run`` installs it) and are
skipped, saying why, elsewhere.

``ECHO`` is the script the tests ask: it answers, as JSON, the parameters it was given
(``$_SERVER``), the request body's length and SHA-256, and the body itself when short;
``?status=N`` sets ``Status:``, ``?stderr=TEXT`` writes to stderr, ``?big=N`` answers N bytes.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness import free_port

ECHO = r"""<?php
if (isset($_GET['stderr'])) { error_log($_GET['stderr']); file_put_contents('php://stderr', $_GET['stderr']); }
if (isset($_GET['status'])) { http_response_code((int)$_GET['status']); }
if (isset($_GET['location'])) { header('Location: ' . $_GET['location']); }
if (isset($_GET['big'])) {
    header('Content-Type: application/octet-stream');
    $left = (int)$_GET['big'];
    while ($left > 0) { $n = min($left, 65536); echo str_repeat('x', $n); $left -= $n; }
    exit;
}
$body = file_get_contents('php://input');
header('Content-Type: application/json');
header('X-Script: echo');
$params = array();
foreach ($_SERVER as $k => $v) { if (is_string($v)) { $params[$k] = $v; } }
echo json_encode(array(
    'params' => $params,
    'length' => strlen($body),
    'sha256' => hash('sha256', $body),
    'body' => strlen($body) <= 4096 ? $body : null,
    'post' => $_POST,
));
"""

SLOW = r"""<?php
sleep((int)($_GET['seconds'] ?? 5));
echo "late";
"""


def find_php_fpm() -> str | None:
    found = shutil.which("php-fpm")
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin"):
        candidates = sorted(glob.glob(f"{folder}/php-fpm*"))
        if candidates:
            return candidates[-1]
    return None


def require_php_fpm() -> str:
    path = find_php_fpm()
    if path is None:
        message = "php-fpm is not installed (apt-get install php-fpm; .ci/run installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class PhpFpm:
    """One ``php-fpm`` master in the foreground with a static pool; ``root`` holds the scripts."""

    def __init__(self, folder: Path, children: int = 4):
        self.binary = require_php_fpm()
        self.folder = folder
        self.root = folder / "www"
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "echo.php").write_text(ECHO)
        (self.root / "index.php").write_text(ECHO)
        (self.root / "slow.php").write_text(SLOW)
        self.port = free_port()
        self.log_path = folder / "php-fpm.log"
        config = folder / "php-fpm.conf"
        # As root (containers, CI): the pool runs as root too, so it reads the test's private folder.
        user = "" if os.geteuid() != 0 else "user = root\ngroup = root\n"
        config.write_text(
            "[global]\n"
            f"error_log = {self.log_path}\n"
            "daemonize = no\n"
            f"pid = {folder / 'php-fpm.pid'}\n"
            "[www]\n"
            f"{user}"
            f"listen = 127.0.0.1:{self.port}\n"
            "pm = static\n"
            f"pm.max_children = {children}\n"
            "catch_workers_output = yes\n"
            "clear_env = yes\n"
            "php_admin_value[post_max_size] = 64M\n"
            "php_admin_value[upload_max_filesize] = 64M\n"
            "php_admin_value[output_buffering] = 0\n"
        )
        args = [self.binary, "--nodaemonize", "--fpm-config", str(config), "-n"]
        if os.geteuid() == 0:
            args.append("--allow-to-run-as-root")
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"php-fpm exited with {self.process.returncode}: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"php-fpm did not listen in {timeout}s: {self.log()}")

    def script(self, name: str) -> str:
        return str(self.root / name)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
