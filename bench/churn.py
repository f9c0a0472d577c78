#!/usr/bin/env python3
"""Configuration churn under load: does ingressd drop requests, connections or WebSockets?

Starts on 127.0.0.1 (random free ports, one temporary directory): two nginx backends
answering ``ok\\n``, the WebSocket echo backend of bench/wsbench.py, and
``twistd -n ingressd --manifests DIR`` pinned to the proxy CPU. Then, for ``--seconds``
(default 60), at the same time:

* load: ``--clients`` threads (default 8) doing keep-alive GETs over HTTP and
  ``--tls-clients`` (default 2) over HTTPS (SNI bench.local), each on one persistent
  connection that is re-opened only when the proxy closed it;
* one WebSocket connection through the proxy (Host ws.local) doing an echo round-trip every
  100 ms, each with a 2 s deadline;
* ``--rate`` (default 10) configuration changes per second, written atomically (temp file +
  rename) into DIR, round-robin over four kinds:
  - route: the served Ingress gains or loses an extra path (/extra-N);
  - endpoints: a second EndpointSlice (the second backend) appears or disappears;
  - certificate: the TLS Secret switches between two certificates;
  - ingress: a second Ingress (host other-N.local) is created or deleted.

ingressd's file provider polls DIR every 0.5 s, so several changes reach it per poll.

Prints: requests, non-2xx responses, failed requests (socket errors), keep-alive connections
the proxy closed, whether the WebSocket survived (and its round-trips), and the changes
applied. Every loop is bounded by the deadline; everything started is stopped at the end.

    python3 bench/churn.py                 # 60 s
    python3 bench/churn.py --seconds 10 --json /tmp/churn.json
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402  (helpers: ports, processes, nginx backends, certificates)
import wsbench  # noqa: E402

LOOPBACK = bench.LOOPBACK
HOST, WS_HOST = "bench.local", "ws.local"


# ------------------------------------------------------------------------------------------
# Manifests
# ------------------------------------------------------------------------------------------


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def base_yaml(ws_port: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.k8s.io/v1
        kind: IngressClass
        metadata: {{name: ingressd}}
        spec: {{controller: ingressd.io/ingress-controller}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: backend, namespace: default}}
        spec:
          ports: [{{name: http, port: 80}}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: ws, namespace: default}}
        spec:
          ports: [{{name: http, port: 80}}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: ws-1
          namespace: default
          labels: {{kubernetes.io/service-name: ws}}
        addressType: IPv4
        ports: [{{name: http, port: {ws_port}}}]
        endpoints: [{{addresses: ["{LOOPBACK}"], conditions: {{ready: true}}}}]
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {{name: ws, namespace: default}}
        spec:
          ingressClassName: ingressd
          rules:
          - host: {WS_HOST}
            http:
              paths:
              - {{path: /, pathType: Prefix, backend: {{service: {{name: ws, port: {{number: 80}}}}}}}}
        """)


def main_ingress_yaml(extra: int | None) -> str:
    paths = ["- {path: /, pathType: Prefix, backend: {service: {name: backend, port: {number: 80}}}}"]
    if extra is not None:
        paths.append(f"- {{path: /extra-{extra}, pathType: Prefix, backend: {{service: "
                     "{name: backend, port: {number: 80}}}}")
    return textwrap.dedent(f"""\
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: bench
          namespace: default
          annotations: {{nginx.ingress.kubernetes.io/ssl-redirect: "false"}}
        spec:
          ingressClassName: ingressd
          tls: [{{hosts: [{HOST}], secretName: bench-tls}}]
          rules:
          - host: {HOST}
            http:
              paths:
        """) + "".join(f"          {p}\n" for p in paths)


def slice_yaml(name: str, port: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: {name}
          namespace: default
          labels: {{kubernetes.io/service-name: backend}}
        addressType: IPv4
        ports: [{{name: http, port: {port}}}]
        endpoints: [{{addresses: ["{LOOPBACK}"], conditions: {{ready: true}}}}]
        """)


def secret_yaml(cert: tuple[Path, Path]) -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Secret
        metadata: {{name: bench-tls, namespace: default}}
        type: kubernetes.io/tls
        data:
          tls.crt: {_b64(cert[0])}
          tls.key: {_b64(cert[1])}
        """)


def other_ingress_yaml(n: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {{name: other, namespace: default}}
        spec:
          ingressClassName: ingressd
          rules:
          - host: other-{n}.local
            http:
              paths:
              - {{path: /, pathType: Prefix, backend: {{service: {{name: backend, port: {{number: 80}}}}}}}}
        """)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")  # no .yaml suffix: never read half-written
    tmp.write_text(text)
    os.replace(tmp, path)


class Churner:
    """Applies one configuration change per call, round-robin over four kinds."""

    KINDS = ("route", "endpoints", "certificate", "ingress")

    def __init__(self, mdir: Path, backend2: int, certs: list[tuple[Path, Path]]):
        self.mdir, self.backend2, self.certs = mdir, backend2, certs
        self.n = 0
        self.applied = {k: 0 for k in self.KINDS}

    def change(self) -> None:
        kind = self.KINDS[self.n % len(self.KINDS)]
        step = self.n // len(self.KINDS)
        on = step % 2 == 0
        if kind == "route":
            write_atomic(self.mdir / "ingress-main.yaml", main_ingress_yaml(step if on else None))
        elif kind == "endpoints":
            path = self.mdir / "slice-2.yaml"
            if on:
                write_atomic(path, slice_yaml("backend-2", self.backend2))
            else:
                path.unlink(missing_ok=True)
        elif kind == "certificate":
            write_atomic(self.mdir / "secret.yaml", secret_yaml(self.certs[(step + 1) % 2]))
        else:
            path = self.mdir / "other.yaml"
            if on:
                write_atomic(path, other_ingress_yaml(step))
            else:
                path.unlink(missing_ok=True)
        self.applied[kind] += 1
        self.n += 1

    def check_applied(self, http_port: int) -> dict:
        """After the churn: are the last route and Ingress changes served? (waits up to 5 s)"""
        other = self.mdir / "other.yaml"
        other_host = None
        if other.exists():
            other_host = re.search(r"host: (\S+)", other.read_text()).group(1)
        main = (self.mdir / "ingress-main.yaml").read_text()
        extra = re.search(r"path: (/extra-\d+)", main)
        want = {}
        if other_host:
            want["other ingress " + other_host] = (other_host, "/", 200)
        if extra:
            want["route " + extra.group(1)] = (HOST, extra.group(1), 200)
        out = {}
        deadline = time.monotonic() + 5
        for label, (host, path, status) in want.items():
            got = None
            while time.monotonic() < deadline:
                try:
                    got = bench.http_get(http_port, path, False, host=host)[0]
                except (OSError, http.client.HTTPException):
                    got = None
                if got == status:
                    break
                time.sleep(0.2)
            out[label] = got == status
        return out


# ------------------------------------------------------------------------------------------
# Load: keep-alive clients and a WebSocket
# ------------------------------------------------------------------------------------------


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = self.ok = self.non_2xx = self.errors = self.closed = 0
        self.error_samples: list[str] = []

    def add(self, **kw) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def sample(self, text: str) -> None:
        with self.lock:
            if len(self.error_samples) < 10:
                self.error_samples.append(text)


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with SNI bench.local, so the rotated certificate is the one used."""

    def connect(self):
        sock = socket.create_connection((LOOPBACK, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=HOST)


def keepalive_client(port: int, tls: bool, deadline: float, counters: Counters) -> None:
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

    def connect():
        if tls:
            return _SNIConnection(LOOPBACK, port, timeout=5, context=ctx)
        return http.client.HTTPConnection(LOOPBACK, port, timeout=5)

    conn, used = connect(), 0
    while time.monotonic() < deadline:
        try:
            conn.request("GET", "/", headers={"Host": HOST})
            resp = conn.getresponse()
            body = resp.read()
            used += 1
            if resp.status == 200 and body == b"ok\n":
                counters.add(requests=1, ok=1)
            else:
                counters.add(requests=1, non_2xx=1)
                counters.sample(f"status {resp.status}")
            if resp.will_close:  # the proxy said Connection: close
                counters.add(closed=1)
                conn.close()
                conn, used = connect(), 0
        except (OSError, http.client.HTTPException) as exc:
            # A reused connection that the proxy closed shows up here (RemoteDisconnected,
            # connection reset); counted both as a failed request and as a closed connection.
            counters.add(requests=1, errors=1, closed=1 if used else 0)
            counters.sample(f"{type(exc).__name__}: {exc}")
            conn.close()
            time.sleep(0.01)
            try:
                conn, used = connect(), 0
            except OSError:
                pass
    conn.close()


class WebSocketWatch:
    """One WebSocket through the proxy: an echo round-trip every 100 ms, 2 s deadline each."""

    def __init__(self, port: int):
        self.port = port
        self.round_trips = 0
        self.failure: str | None = None
        self.failed_at: float | None = None

    def run(self, deadline: float, t0: float) -> None:
        try:
            sock = socket.create_connection((LOOPBACK, self.port), timeout=5)
        except OSError as exc:
            self.failure, self.failed_at = f"connect: {exc}", 0.0
            return
        try:
            sock.settimeout(2)
            key = base64.b64encode(os.urandom(16))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: " + WS_HOST.encode() + b"\r\nUpgrade: websocket"
                         b"\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key
                         + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf and len(buf) < 65536:
                data = sock.recv(4096)
                if not data:
                    raise OSError("closed during the upgrade")
                buf += data
            head, _, rest = buf.partition(b"\r\n\r\n")
            if b" 101 " not in head.split(b"\r\n", 1)[0] + b" ":
                raise OSError(f"upgrade refused: {head.splitlines()[0]!r}")
            out = wsbench.frame(1, wsbench.PAYLOAD, os.urandom(4))
            expect = wsbench.frame(1, wsbench.PAYLOAD)
            buf = rest
            while time.monotonic() < deadline:
                sock.sendall(out)
                while len(buf) < len(expect):
                    data = sock.recv(4096)
                    if not data:
                        raise OSError("closed by the proxy")
                    buf += data
                if buf[:len(expect)] != expect:
                    raise OSError(f"unexpected frame {buf[:20]!r}")
                buf = buf[len(expect):]
                self.round_trips += 1
                time.sleep(0.1)
            sock.sendall(wsbench.frame(8, (1000).to_bytes(2, "big"), os.urandom(4)))
        except OSError as exc:
            self.failure, self.failed_at = str(exc) or type(exc).__name__, time.monotonic() - t0
        finally:
            sock.close()


# ------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------


def run(args) -> dict:
    nginx = bench.find_nginx()
    if not nginx:
        raise bench.BenchError(f"nginx is needed: {bench.APT_COMMAND}")
    if not os.access(args.twistd, os.X_OK):
        raise bench.BenchError(f"no twistd at {args.twistd}")
    cpus = os.sched_getaffinity(0)
    proxy_cpu = args.proxy_cpu if args.proxy_cpu in cpus else None
    load_cpu = args.load_cpu if args.load_cpu in cpus else None
    tmp = Path(tempfile.mkdtemp(prefix="ingressd-churn-"))
    procs = bench.Processes(tmp)
    try:
        names = ("backend1", "backend2", "ws", "http", "https", "admin")
        ports = dict(zip(names, bench.free_ports(len(names))))
        sc = bench.SCENARIOS["keepalive"]
        for b in ("backend1", "backend2"):
            prefix = tmp / b
            proc = bench.start_nginx(procs, nginx, b, prefix,
                                     bench.backend_conf(prefix, ports[b], sc), load_cpu)
            bench.wait_until(b, lambda b=b: bench.http_get(ports[b], "/", False)[0] == 200,
                             proc, procs)
        ws = procs.start("ws-echo", [sys.executable, str(Path(__file__).parent / "wsbench.py"),
                                     "echo", "--port", str(ports["ws"])], load_cpu)
        bench.wait_until("ws echo", lambda: bench.http_get(ports["ws"], "/", False)[0] == 200,
                         ws, procs)
        certs = []
        for i in (1, 2):
            (tmp / f"cert{i}").mkdir()
            certs.append(bench.make_cert(tmp / f"cert{i}"))

        mdir = tmp / "manifests"
        mdir.mkdir()
        (mdir / "base.yaml").write_text(base_yaml(ports["ws"]))
        (mdir / "ingress-main.yaml").write_text(main_ingress_yaml(None))
        (mdir / "slice-1.yaml").write_text(slice_yaml("backend-1", ports["backend1"]))
        (mdir / "secret.yaml").write_text(secret_yaml(certs[0]))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(bench.REPO), env.get("PYTHONPATH")]))
        argv = [args.twistd, "-n", "--pidfile=", "ingressd", "--manifests", str(mdir),
                "--http", f"tcp:{ports['http']}:interface={LOOPBACK}",
                "--https", f"tcp:{ports['https']}:interface={LOOPBACK}",
                "--admin", f"tcp:{ports['admin']}:interface={LOOPBACK}", "--access-log", "off",
                *bench.shlex.split(args.ingressd_args)]
        proxy = procs.start("ingressd", argv, proxy_cpu, env=env, cwd=tmp)
        bench.wait_until("ingressd /readyz", lambda: bench.http_get(
            ports["admin"], "/readyz", False, host=LOOPBACK)[0] == 200, proxy, procs)
        bench.wait_until("ingressd route", lambda: bench.http_get(ports["http"], "/", False)
                         == (200, b"ok\n"), proxy, procs)
        bench.wait_until("ingressd websocket route", lambda: bench.http_get(
            ports["http"], "/", False, host=WS_HOST)[0] == 200, proxy, procs)

        if load_cpu is not None:  # the load threads run in this process
            os.sched_setaffinity(0, {load_cpu})
        counters = Counters()
        t0 = time.monotonic()
        deadline = t0 + args.seconds
        threads = [threading.Thread(target=keepalive_client, daemon=True,
                                    args=(ports["http"], False, deadline, counters))
                   for _ in range(args.clients)]
        threads += [threading.Thread(target=keepalive_client, daemon=True,
                                     args=(ports["https"], True, deadline, counters))
                    for _ in range(args.tls_clients)]
        watch = WebSocketWatch(ports["http"])
        threads.append(threading.Thread(target=watch.run, args=(deadline, t0), daemon=True))
        for t in threads:
            t.start()
        churner = Churner(mdir, ports["backend2"], certs)
        cpu0 = bench.cpu_seconds(proxy.pid)
        interval = 1.0 / args.rate
        next_change = time.monotonic() + interval
        while True:  # bounded by the deadline
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_change:
                churner.change()
                next_change += interval
            time.sleep(max(0.0, min(next_change, deadline) - time.monotonic()))
        for t in threads:
            t.join(timeout=15)
        elapsed = time.monotonic() - t0
        cpu = bench.cpu_seconds(proxy.pid) - cpu0
        alive = proxy.poll() is None
        # The last changes must be served as written (the provider polls every 0.5 s).
        applied = churner.check_applied(ports["http"]) if alive else None
        log_tail = procs.log_tail(proxy, 200)
        problems = [line for line in log_tail.splitlines()
                    if re.search(r"Traceback|Unhandled|\berror\b|\bfailed\b", line, re.I)]
        return {
            "seconds": round(elapsed, 2),
            "changes": churner.n, "changes_by_kind": churner.applied,
            "changes_per_s": round(churner.n / elapsed, 2),
            "requests": counters.requests, "requests_per_s": round(counters.requests / elapsed),
            "ok": counters.ok, "non_2xx": counters.non_2xx, "failed_requests": counters.errors,
            "keepalive_connections_closed": counters.closed,
            "error_samples": counters.error_samples,
            "websocket_survived": watch.failure is None,
            "websocket_round_trips": watch.round_trips,
            "websocket_failure": watch.failure, "websocket_failed_after_s": watch.failed_at,
            "proxy_alive": alive, "last_changes_served": applied,
            "proxy_cpu_s": round(cpu, 2),
            "proxy_log_problem_lines": problems[:10],
            "clients": {"http": args.clients, "https": args.tls_clients, "websocket": 1},
        }
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def _raise_exit(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60, help="run length (default 60, at most 600)")
    p.add_argument("--rate", type=float, default=10, help="changes per second (default 10, at most 100)")
    p.add_argument("--clients", type=int, default=8, help="HTTP keep-alive client threads (default 8)")
    p.add_argument("--tls-clients", type=int, default=2, help="HTTPS keep-alive client threads (default 2)")
    p.add_argument("--proxy-cpu", type=int, default=0)
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--ingressd-args", default="", help="extra arguments for 'twistd ingressd'")
    p.add_argument("--twistd", default=str(bench.REPO / ".venv" / "bin" / "twistd"))
    p.add_argument("--json", metavar="FILE", help="also save the result as JSON")
    args = p.parse_args(argv)
    if not (0 < args.seconds <= 600 and 0 < args.rate <= 100 and 0 <= args.clients <= 100
            and 0 <= args.tls_clients <= 100):
        p.error("--seconds in (0, 600], --rate in (0, 100], --clients/--tls-clients in [0, 100]")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _raise_exit)
    try:
        res = run(args)
    except bench.BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(json.dumps(res, indent=2))
    print(f"\n{res['seconds']:.0f} s, {res['changes']} changes ({res['changes_per_s']}/s: "
          + ", ".join(f"{k} {v}" for k, v in res["changes_by_kind"].items()) + ")\n"
          f"requests {res['requests']:,} ({res['requests_per_s']:,}/s), non-2xx {res['non_2xx']}, "
          f"failed (socket errors) {res['failed_requests']}, keep-alive connections closed by "
          f"the proxy {res['keepalive_connections_closed']}\n"
          f"websocket survived: {res['websocket_survived']} ({res['websocket_round_trips']} "
          f"round-trips{'' if res['websocket_survived'] else ', ' + str(res['websocket_failure'])})")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    failed = res["non_2xx"] or res["failed_requests"] or not res["websocket_survived"]
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
