"""End-to-end harness: manifests on disk and the real ``twistd ingressd`` process on loopback."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from ports import free_port

__all__ = ["free_port"]  # re-exported: the tests import it from here

ROOT = Path(__file__).resolve().parent.parent
TWISTD = str(Path(sys.executable).with_name("twistd"))
_START_ATTEMPTS = 3  # starts of twistd when one of the harness's own ports was taken before twistd bound it


def service(name: str, ports, namespace: str = "default", endpoints=("127.0.0.1",), ready=True) -> list[dict]:
    """A Service and its EndpointSlice; ``ports`` is [(name, service port, endpoint port)]."""
    objects = [
        {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": n, "port": p, "targetPort": t} for n, p, t in ports]},
        }
    ]
    if endpoints is not None:
        objects.append(
            {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{name}-slice", "namespace": namespace,
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "ports": [{"name": n, "port": t} for n, _, t in ports],
                "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a in endpoints],
            }
        )
    return objects


def ingress(name: str, rules, namespace: str = "default", annotations=None, tls=None, default=None,
            created: str | None = None, class_name: str | None = "ingressd") -> dict:
    """``rules`` is [(host, [(path, pathType, service, port)])]."""
    spec: dict = {"rules": [
        {**({"host": host} if host else {}), "http": {"paths": [
            {"path": path, "pathType": kind,
             "backend": {"service": {"name": svc, "port": {"number": port} if isinstance(port, int) else {"name": port}}}}
            for path, kind, svc, port in paths]}}
        for host, paths in rules]}
    if class_name:
        spec["ingressClassName"] = class_name
    if tls:
        spec["tls"] = tls
    if default:
        spec["defaultBackend"] = {"service": {"name": default[0], "port": {"number": default[1]}}}
    meta = {"name": name, "namespace": namespace, "annotations": annotations or {}}
    if created:
        meta["creationTimestamp"] = created
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


INGRESS_CLASS = {
    "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
    "metadata": {"name": "ingressd"}, "spec": {"controller": "ingressd.io/ingress-controller"},
}


def write_manifests(path: Path, objects) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump_all(list(objects)))
    os.replace(tmp, path)  # atomic: the provider never reads half a file


class Ingressd:
    """A running ``twistd ingressd``; ``extra_args`` are appended to the command line."""

    def __init__(self, manifest_dir: Path, extra_args=(), log_path: Path | None = None, env=None,
                 wait: bool = True):
        self._manifest_dir = manifest_dir
        self._extra_args = tuple(extra_args)
        self._given_log_path = log_path
        # The installed ingressd runs (conftest.py refuses a stale install), with its C
        # accelerators: the checkout's source tree has none built.
        self._environment = dict(os.environ)
        self._environment.update(env or {})
        self._start()
        if wait:
            self._wait_ready_restarting()

    def _start(self) -> None:
        self.http_port = free_port()
        self.https_port = free_port()
        self.admin_port = free_port()
        self.log_path = self._given_log_path or self._manifest_dir.parent / f"ingressd-{self.http_port}.log"
        args = [
            TWISTD, "-n", "--pidfile=", "ingressd",
            "--manifests", str(self._manifest_dir),
            "--http", f"tcp:{self.http_port}:interface=127.0.0.1",
            "--https", f"tcp:{self.https_port}:interface=127.0.0.1",
            "--admin", f"tcp:{self.admin_port}:interface=127.0.0.1",
            # Stop promptly (no load balancer to wait for); a test of the drain gives its own.
            "--shutdown-delay", "0", "--shutdown-grace", "5",
            *self._extra_args,
        ]
        self.log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT, env=self._environment,
                                        cwd=str(self._manifest_dir.parent))

    def _wait_ready_restarting(self) -> None:
        """wait_ready; if twistd exited because one of the three ports this harness picked was taken before
        it bound it, start it again on new ports (bounded). A port the test chose is never retried: a test of
        "address in use" still sees its failure."""
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self.wait_ready()
                return
            except RuntimeError:
                if attempt == _START_ATTEMPTS or not self._lost_own_port():
                    raise
            self.log_file.close()
            self._start()

    def _lost_own_port(self) -> bool:
        if self.process.poll() is None:
            return False
        log = self.log()
        return any(f"cannot listen on 127.0.0.1:{port}: Address already in use" in log
                   for port in (self.http_port, self.https_port, self.admin_port))

    def _ready(self) -> bool:
        try:
            status, _, _ = self.admin("/readyz")
        except OSError:
            return False
        return status == 200

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ingressd exited: {self.log()}")
            if self._ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"ingressd not ready in {timeout}s: {self.log()}")

    def log(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def admin(self, path: str):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)

    def get(self, path: str, host: str = "example.com", method: str = "GET", headers=None, body=None,
            timeout: float = 10):
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
            response = conn.getresponse()
            return Response(response.status, response.getheaders(), response.read())
        finally:
            conn.close()

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send raw bytes; return everything received until the server closes or goes quiet."""
        with socket.create_connection(("127.0.0.1", self.http_port), timeout=timeout) as sock:
            sock.sendall(data)
            chunks = []
            try:
                while True:
                    piece = sock.recv(65536)
                    if not piece:
                        break
                    chunks.append(piece)
            except socket.timeout:
                pass
            return b"".join(chunks)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log_file.close()


class Response:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.header_list = [(k.lower(), v) for k, v in headers]
        self.headers = {k: v for k, v in self.header_list}
        self.body = body

    def json(self):
        return json.loads(self.body)

    def all(self, name: str):
        return [v for k, v in self.header_list if k == name.lower()]

    def __repr__(self):
        return f"Response({self.status}, {self.header_list}, {self.body[:200]!r})"


def wait_for(condition, what: str = "a condition", timeout: float = 15.0, interval: float = 0.05):
    """Poll ``condition`` until it gives something true, and return that; at most ``timeout``
    seconds (bounded, for end-to-end tests that wait on another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
