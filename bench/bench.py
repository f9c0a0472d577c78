#!/usr/bin/env python3
"""Benchmark ingressd against nginx as a reverse proxy, side by side.

Starts, all on 127.0.0.1 random free ports inside one temporary directory:

* a backend: an nginx instance answering ``ok\\n`` (3 bytes) with keep-alive, pinned to the
  load CPU (default CPU 1), so it is never the bottleneck;
* each proxy under test, pinned to the proxy CPU (default CPU 0):
  - ``nginx``: nginx configured like ingress-nginx / ingressd (1 worker, HTTP/1.1 upstream with
    keepalive 64, the same forwarded headers, access_log off);
  - ``ingressd``: ``twistd -n ingressd`` serving a generated manifest directory (IngressClass,
    Ingress, Service, EndpointSlice in one YAML file);
  - ``custom`` (only with ``--proxy-cmd``): any command, for debugging;
* the load client pinned to the load CPU, first for a warm-up, then for the measured run:
  ``wrk -t1 -cN -dS --latency -H 'Host: bench.local'`` for HTTP/1.1 scenarios, ``h2load``
  (nghttp2-client) for ``http2``, ``bench/wsbench.py client`` for ``websocket`` (whose backend
  is ``bench/wsbench.py echo`` instead of nginx, for both proxies), ``bench/grpcbench.py
  client`` for ``grpc-unary`` and ``grpc-stream`` (whose backend is ``bench/grpcbench.py
  server``, a grpcio server; nginx proxies with ``grpc_pass grpc://``, ingressd with
  ``backend-protocol: GRPC``; these need grpcio in the Python that runs this script).

For each proxy it reports requests/s, p50/p99 latency (wrk's --latency table) and the proxy's CPU
time per request (utime+stime delta of the proxy's whole process tree from /proc/PID/stat, divided
by the requests wrk completed), and prints a table with the ratio to nginx for each figure.

Scenarios are rows of the ``SCENARIOS`` table below: a scenario says how nginx is configured, which
annotations / extra manifests ingressd gets, how the backend answers and what wrk is run with.

Only the Python standard library is used (runs with any python3 >= 3.9); it needs nginx, wrk and
taskset (util-linux) on the machine, and h2load (nghttp2-client) and openssl for some scenarios.

Examples::

    python3 bench/bench.py                       # keepalive, nginx and ingressd, 10 s each
    python3 bench/bench.py --only nginx --seconds 5
    python3 bench/bench.py --scenario all --json /tmp/bench.json
    python3 bench/bench.py --only custom --proxy-cmd 'myproxy --port {http_port} --to {backend_port}'
"""

from __future__ import annotations

import argparse
import base64
import datetime
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
HOST = "bench.local"
TLS_FULL_CLIENTS = 8  # bench/tlsbench.py processes in the https-full-handshake scenario
LOOPBACK = "127.0.0.1"
APT_COMMAND = "apt-get install -y nginx-light wrk"

READY_TIMEOUT = 30.0  # seconds a proxy or the backend gets to start answering
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
WRK_SLACK = 30.0  # seconds wrk may overrun its -d before it is killed

# Keep-alive limits used on the nginx side (client side and upstream side). Large on purpose: the
# keepalive scenario measures persistent connections, not periodic reconnects. (ingress-nginx's
# defaults are keep-alive-requests 1000 and upstream-keepalive-requests 10000.)
NGINX_KEEPALIVE_REQUESTS = 1_000_000
UPSTREAM_KEEPALIVE = 64


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------

# auth-ratelimit: user "bench", password "benchpass", Apache MD5 ($apr1$, 1000 MD5 rounds), made
# with `openssl passwd -apr1 -salt benchslt benchpass`. nginx checks it on every request;
# ingressd caches verified credentials.
HTPASSWD = b"bench:$apr1$benchslt$7ijiW2RJXJqAHTbqeF/mp/\n"
AUTH_HEADER = "YmVuY2g6YmVuY2hwYXNz"  # base64("bench:benchpass")
AUTH_LIMIT_RPS = 100_000  # well above what either proxy serves here: nothing is rejected
H2_STREAMS = 10  # h2load -m: concurrent streams per HTTP/2 connection


# The access-log scenarios: ingress-nginx's upstreaminfo line (its log-format-upstream default),
# and the fields of ingressd's JSON line as an nginx escape=json log_format. The variables
# ingress-nginx's Lua sets per location are set to what it would set for the bench route.
UPSTREAMINFO = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
    '"$http_user_agent" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] '
    '$upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id'
)
JSON_FIELDS = (
    '{"time":"$time_iso8601","request_id":"$req_id","client":"$remote_addr","method":"$request_method",'
    '"host":"$host","uri":"$request_uri","protocol":"$server_protocol","scheme":"$scheme","status":$status,'
    '"bytes_sent":$body_bytes_sent,"request_bytes":$request_length,"duration":$request_time,'
    '"namespace":"default","ingress":"bench","service":"backend","service_port":80,'
    '"upstream_address":"$upstream_addr","upstream_status":"$upstream_status",'
    '"upstream_duration":"$upstream_response_time","tls_version":"$ssl_protocol","sni":"$ssl_server_name",'
    '"referer":"$http_referer","user_agent":"$http_user_agent"}'
)
NGINX_LOG_VARIABLES = 'set $proxy_upstream_name "default-backend-80";\nset $proxy_alternative_upstream_name "";'


@dataclass(frozen=True)
class Scenario:
    """One benchmark shape. Every field has a default matching plain keep-alive HTTP."""

    name: str
    description: str
    # Which proxy listener wrk drives: "http" or "https" (https also makes a cert, a TLS Secret
    # and the Ingress spec.tls section, and an ssl listener on the nginx proxy).
    scheme: str = "http"
    path: str = "/"
    # Extra wrk arguments (headers, "-s script.lua" relative to the temp dir, ...).
    wrk_args: tuple[str, ...] = ()
    # Lua scripts for wrk, written into the temp dir: {file name: text}; refer to them in wrk_args.
    wrk_scripts: dict[str, str] = field(default_factory=dict)
    # The backend's "location /" body, and files placed in its document root ({name: bytes}).
    backend_location: str = 'default_type text/plain;\nreturn 200 "ok\\n";'
    backend_files: dict[str, bytes] = field(default_factory=dict)
    # Extra nginx proxy directives: in http{}, in server{}, in "location /".
    nginx_http: str = ""
    nginx_server: str = ""
    nginx_location: str = ""
    # ingressd: annotations on the Ingress, and extra YAML documents (str.format'ed with the
    # same placeholders as --proxy-cmd) appended to the manifest file.
    annotations: dict[str, str] = field(default_factory=dict)
    extra_manifests: str = ""
    # What a GET of `path` through the proxy must answer before the run (None: status 200 only).
    expect_body: bytes | None = b"ok\n"
    # The load client: "wrk" (HTTP/1.1), "h2load" (HTTP/2 over TLS, ALPN h2), "websocket"
    # (bench/wsbench.py: echo round-trips; the backend is then wsbench.py's echo server) or
    # "tls-full" (bench/tlsbench.py: a full, never resumed TLS handshake per request).
    client: str = "wrk"
    # Files written into the temp dir before the proxies start ({name: bytes}); "{tmp}" in the
    # nginx snippets above is replaced by the temp dir.
    proxy_files: dict[str, bytes] = field(default_factory=dict)
    # Proxy processes: nginx worker_processes N / ingressd --workers N. With N > 1 the proxy is
    # not pinned (it may use every CPU) and its CPU time is summed over all its processes.
    proxy_workers: int = 1
    pinned: bool = True  # one proxy process pinned to --proxy-cpu (several processes never are)
    # Extra ingressd command-line arguments for this scenario (after --ingressd-args).
    ingressd_args: tuple[str, ...] = ()
    # The backend speaks HTTPS (self-signed; neither proxy verifies it, their defaults): nginx
    # proxies with proxy_pass https://, ingressd with backend-protocol HTTPS.
    backend_tls: bool = False
    # The Ingress's path and pathType (a regular expression needs ImplementationSpecific).
    ingress_path: str = "/"
    ingress_path_type: str = "Prefix"
    # The backend is bench/grpcbench.py's gRPC server: nginx grpc_pass grpc://, ingressd
    # backend-protocol GRPC; readiness is a gRPC call (grpcbench.py probe).
    backend_grpc: bool = False


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "keepalive",
            "HTTP/1.1 keep-alive, 3-byte response, persistent upstream connections",
        ),
        Scenario(
            "new-connection",
            "one TCP connection per request (client sends Connection: close)",
            wrk_args=("-H", "Connection: close"),
        ),
        Scenario(
            "https-keepalive",
            "HTTPS keep-alive (self-signed RSA-2048 cert, TLS Secret), plain HTTP upstream",
            scheme="https",
        ),
        Scenario(
            "https-handshake",
            "a new TCP+TLS connection per request (Connection: close); wrk resumes the TLS "
            "session where the proxy allows it (see docs/benchmarks.md)",
            scheme="https",
            wrk_args=("-H", "Connection: close"),
        ),
        Scenario(
            "https-full-handshake",
            "a new TCP+TLS connection per request with a full handshake (never resumed: "
            "bench/tlsbench.py, 8 client processes, one connection each at a time)",
            scheme="https",
            client="tls-full",
        ),
        Scenario(
            "http2",
            "HTTP/2 over TLS (ALPN h2), h2load: connections/10 connections x 10 streams",
            scheme="https",
            client="h2load",
            # nginx's keepalive_requests here: h2load does not reconnect after a GOAWAY, so
            # ingressd's default (1,000 streams a connection) ended the run after 5,000 requests
            ingressd_args=("--keepalive-requests", str(NGINX_KEEPALIVE_REQUESTS)),
        ),
        Scenario(
            "large-body",
            "1 MiB response streamed from the backend (proxy_buffering off), keep-alive",
            path="/big",
            backend_location="root {docroot};",
            backend_files={"big": b"x" * 1048576},
            expect_body=None,
        ),
        Scenario(
            "websocket",
            "WebSocket echo round-trips (16-byte text frame) through the proxy, one "
            "upgraded connection per client; backend: bench/wsbench.py echo",
            client="websocket",
        ),
        Scenario(
            "auth-ratelimit",
            "keep-alive with basic auth (htpasswd, apr1 hash) and a per-client rate limit "
            f"({AUTH_LIMIT_RPS} r/s, burst x5) that never rejects",
            wrk_args=("-H", f"Authorization: Basic {AUTH_HEADER}"),
            annotations={
                "nginx.ingress.kubernetes.io/auth-type": "basic",
                "nginx.ingress.kubernetes.io/auth-secret": "bench-auth",
                "nginx.ingress.kubernetes.io/auth-realm": "bench",
                "nginx.ingress.kubernetes.io/limit-rps": str(AUTH_LIMIT_RPS),
            },
            extra_manifests=textwrap.dedent(f"""\
                apiVersion: v1
                kind: Secret
                metadata:
                  name: bench-auth
                  namespace: default
                type: Opaque
                data:
                  auth: {base64.b64encode(HTPASSWD).decode()}
                """),
            proxy_files={"htpasswd": HTPASSWD},
            # As ingress-nginx generates it: limit_req_zone on the client address, burst =
            # limit-rps x limit-burst-multiplier (5), nodelay.
            nginx_http=f"limit_req_zone $binary_remote_addr zone=bench_rps:5m "
                       f"rate={AUTH_LIMIT_RPS}r/s;",
            nginx_location=f"""\
                auth_basic "bench";
                auth_basic_user_file {{tmp}}/htpasswd;
                limit_req zone=bench_rps burst={AUTH_LIMIT_RPS * 5} nodelay;
                proxy_set_header Authorization "";
                """,
        ),
        Scenario(
            "ext-auth",
            "keep-alive, every request checked by an external auth service first (the backend "
            "server itself answers the check: 200 at /auth) and the answer's X-Auth-Request-User "
            "copied to the request; nginx: auth_request as ingress-nginx renders auth-url (a fresh "
            "connection per check), ingressd: auth-url (pooled connections)",
            annotations={
                "nginx.ingress.kubernetes.io/auth-url": "http://127.0.0.1:{backend_port}/auth",
                "nginx.ingress.kubernetes.io/auth-response-headers": "X-Auth-Request-User",
            },
            # ingress-nginx's location = /_external-auth-… and auth_request in the location (nginx.tmpl).
            nginx_server="""\
                location = /_external-auth-Lw-Prefix {
                    internal;
                    proxy_pass_request_body off;
                    proxy_set_header Content-Length "";
                    proxy_set_header X-Forwarded-Proto "";
                    proxy_set_header X-Request-ID $req_id;
                    proxy_set_header Host 127.0.0.1;
                    proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
                    proxy_set_header X-Original-Method $request_method;
                    proxy_set_header X-Sent-From "nginx-ingress-controller";
                    proxy_set_header X-Real-IP $remote_addr;
                    proxy_set_header X-Forwarded-For $remote_addr;
                    proxy_set_header X-Auth-Request-Redirect $request_uri;
                    proxy_buffering off;
                    proxy_ssl_server_name on;
                    proxy_pass_request_headers on;
                    proxy_http_version 1.1;
                    set $target "http://127.0.0.1:{backend_port}/auth";
                    proxy_pass $target;
                }
                """,
            nginx_location="""\
                auth_request /_external-auth-Lw-Prefix;
                auth_request_set $auth_cookie $upstream_http_set_cookie;
                add_header Set-Cookie $auth_cookie;
                auth_request_set $authHeader0 $upstream_http_x_auth_request_user;
                proxy_set_header 'X-Auth-Request-User' $authHeader0;
                """,
        ),
        Scenario(
            "regex-rewrite",
            "keep-alive to a regular-expression route with a rewrite (use-regex, rewrite-target "
            "/$2 on /api(/|$)(.*)); nginx: the same rewrite in its location (ingress-nginx renders "
            "a ~* location and this rewrite)",
            path="/api/items/42",
            ingress_path="/api(/|$)(.*)",
            ingress_path_type="ImplementationSpecific",
            annotations={
                "nginx.ingress.kubernetes.io/use-regex": "true",
                "nginx.ingress.kubernetes.io/rewrite-target": "/$2",
            },
            nginx_location='rewrite "(?i)/api(/|$)(.*)" /$2 break;',
        ),
        Scenario(
            "https-backend",
            "keep-alive HTTP from the client, HTTPS to the backend (self-signed, not verified, sessions "
            "reused): nginx proxy_pass https://, ingressd backend-protocol HTTPS",
            backend_tls=True,
            annotations={"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"},
        ),
        Scenario(
            "grpc-unary",
            "gRPC unary calls (16-byte message) over TLS (ALPN h2), connections/10 channels x 10 "
            "calls in flight; backend: bench/grpcbench.py server (nginx grpc_pass grpc://, "
            "ingressd backend-protocol GRPC); load: bench/grpcbench.py client (grpc.aio)",
            scheme="https",
            client="grpc-unary",
            backend_grpc=True,
            annotations={"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"},
            path="/bench.Echo/Unary",
        ),
        Scenario(
            "grpc-stream",
            "gRPC bidirectional streams over TLS (ALPN h2): one stream per client, back-to-back "
            "16-byte round trips (a round trip counts as a request); as grpc-unary otherwise",
            scheme="https",
            client="grpc-stream",
            backend_grpc=True,
            annotations={"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"},
            path="/bench.Echo/Bidi",
        ),
        Scenario(
            "keepalive-log",
            "as keepalive with the access log on in ingress-nginx's upstreaminfo format, both to a "
            "file: nginx access_log buffer=64k flush=1s, ingressd --access-log-format nginx",
            nginx_http=f"log_format upstreaminfo '{UPSTREAMINFO}';",
            nginx_server="access_log {tmp}/nginx-access.log upstreaminfo buffer=64k flush=1s;",
            nginx_location=NGINX_LOG_VARIABLES,
            ingressd_args=("--access-log", "{tmp}/ingressd-access.log", "--access-log-format", "nginx"),
        ),
        Scenario(
            "keepalive-log-json",
            "as keepalive with the access log on as JSON lines, both to a file: nginx a log_format "
            "escape=json of ingressd's JSON fields, access_log buffer=64k flush=1s; ingressd "
            "--access-log-format json",
            nginx_http=f"log_format ingressdjson escape=json '{JSON_FIELDS}';",
            nginx_server="access_log {tmp}/nginx-access.log ingressdjson buffer=64k flush=1s;",
            nginx_location=NGINX_LOG_VARIABLES,
            ingressd_args=("--access-log", "{tmp}/ingressd-access.log", "--access-log-format", "json"),
        ),
        Scenario(
            "workers",
            "as keepalive with 2 proxy processes (nginx worker_processes 2, ingressd "
            "--workers 2), proxy not pinned; CPU summed over all its processes",
            proxy_workers=2,
            ingressd_args=("--workers", "2"),
        ),
        Scenario(
            "workers-1",
            "as workers with one proxy process (nginx worker_processes 1, ingressd --workers 1), "
            "not pinned either: what --workers auto (2 here) is judged against",
            ingressd_args=("--workers", "1"),
            pinned=False,
        ),
    ]
}


# --------------------------------------------------------------------------------------------
# Helpers: ports, processes, CPU accounting
# --------------------------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (held open together so they are distinct)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    out.extend(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    """pid and all its live descendants (bounded: at most 10000 processes)."""
    seen, todo = [], [pid]
    while todo and len(seen) < 10000:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(_children(p))
    return seen


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    return data[data.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime+stime (+cutime+cstime: reaped children) of pid's process tree, in seconds."""
    ticks = 0
    for p in process_tree(pid):
        f = _stat_fields(p)
        if f:  # after "pid (comm)": f[0] is state (field 3); utime is field 14 -> f[11]
            ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def cpu_core_ticks(cpu: int | None) -> tuple[int, int]:
    """(busy, total) jiffies of one CPU from /proc/stat; (0, 0) if unknown."""
    if cpu is None:
        return 0, 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{cpu} "):
                    v = [int(x) for x in line.split()[1:]]
                    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
                    total = sum(v[:8])  # guest time is already in user
                    return total - idle, total
    except OSError:
        pass
    return 0, 0


class Processes:
    """Everything the benchmark starts; stop_all() ends them, newest first."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, name: str, argv: list[str], cpu: int | None, env: dict | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv  # taskset execs: the pid is the command's
        log = self.tmp / f"{name}.log"
        for i in range(2, 1000):  # one log per process: a repeated name gets a suffix
            if not log.exists():
                break
            log = self.tmp / f"{name}-{i}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                    start_new_session=True)
        self.procs.append((name, proc, log))
        proc.log_path = log  # type: ignore[attr-defined]
        return proc

    @staticmethod
    def log_tail(proc: subprocess.Popen, lines: int = 30) -> str:
        try:
            text = proc.log_path.read_text(errors="replace")  # type: ignore[attr-defined]
        except (OSError, AttributeError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen) -> None:
        tree = process_tree(proc.pid) if proc.poll() is None else []
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        # Whatever of its tree is left (still in the session we created for it) gets SIGKILL.
        for pid in tree:
            f = _stat_fields(pid)
            if f and int(f[2]) == proc.pid:  # f[2] = pgrp; ours is the leader's pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"warning: pid {proc.pid} did not exit", file=sys.stderr)

    def stop_all(self, keep: int = 0) -> None:
        """Stop every process started after the first `keep` ones, newest first."""
        while len(self.procs) > keep:
            name, proc, _ = self.procs.pop()
            self.stop(proc)


def http_get(port: int, path: str, tls: bool, timeout: float = 2.0,
             host: str = HOST, headers: dict | None = None) -> tuple[int, bytes]:
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(LOOPBACK, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_until(what: str, check: Callable[[], bool], proc: subprocess.Popen, procs: Processes,
               timeout: float = READY_TIMEOUT) -> None:
    """Poll check() every 0.1 s until it is true; fail if proc exits or timeout passes."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what}: process exited with {proc.returncode}\n"
                             f"{procs.log_tail(proc)}")
        try:
            if check():
                return
        except (OSError, http.client.HTTPException) as e:
            last_error = e
        time.sleep(0.1)
    raise BenchError(f"{what}: not ready after {timeout:.0f} s (last error: {last_error})\n"
                     f"{procs.log_tail(proc)}")


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# nginx configuration (backend and proxy)
# --------------------------------------------------------------------------------------------


def _block(text: str, indent: int) -> str:
    """Re-indent a (possibly multi-line, possibly empty) snippet to `indent` spaces."""
    text = textwrap.dedent(text).strip("\n")
    return textwrap.indent(text, " " * indent) + "\n" if text.strip() else ""


def _nginx_main(prefix: Path, workers: int = 1) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read our 0700 temp dir
    return (f"{user}worker_processes {workers};\n"
            "daemon off;\n"
            "master_process on;\n"
            f"pid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log warn;\n"
            "worker_rlimit_nofile 65536;\n"
            "events { worker_connections 8192; }\n")


def _nginx_http_common(prefix: Path) -> str:
    temps = "".join(f"    {kind}_temp_path {prefix}/{kind}_temp;\n"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"    access_log off;\n{temps}"
            "    keepalive_timeout 75s;\n"
            f"    keepalive_requests {NGINX_KEEPALIVE_REQUESTS};\n")


def backend_conf(prefix: Path, port: int, sc: Scenario, cert: tuple[Path, Path] | None = None) -> str:
    location = sc.backend_location.replace("{docroot}", str(prefix / "docroot"))
    tls = (f"        ssl_certificate {cert[0]};\n        ssl_certificate_key {cert[1]};\n"
           if sc.backend_tls and cert else "")
    return (_nginx_main(prefix) + "http {\n" + _nginx_http_common(prefix)
            + "    server {\n"
            f"        listen {LOOPBACK}:{port}{' ssl' if tls else ''} default_server;\n"
            + tls
            + "        location / {\n"
            + _block(location, 12)
            + "        }\n    }\n}\n")


def proxy_conf(prefix: Path, ports: dict, sc: Scenario, cert: tuple[Path, Path] | None) -> str:
    tls = ""
    if cert:
        h2 = " http2" if sc.client == "h2load" or sc.backend_grpc else ""  # nginx 1.22: "listen ... ssl http2"
        tls = (f"listen {LOOPBACK}:{ports['https']} ssl{h2} default_server;\n"
               f"ssl_certificate {cert[0]};\n"
               f"ssl_certificate_key {cert[1]};\n"
               "ssl_protocols TLSv1.2 TLSv1.3;\n"
               "ssl_session_cache shared:SSL:10m;\n")
    # Mirrors ingress-nginx's generated config for one Ingress rule with default settings
    # (proxy-buffering off, HTTP/1.1 upstream keep-alive, forwarded headers, request id).
    def snippet(text: str) -> str:
        return text.replace("{tmp}", str(prefix.parent)).replace("{backend_port}", str(ports["backend"]))

    return (_nginx_main(prefix, sc.proxy_workers) + "http {\n" + _nginx_http_common(prefix)
            + "    map $http_upgrade $connection_upgrade { default upgrade; '' ''; }\n"
            "    map $http_x_request_id $req_id { default $http_x_request_id; '' $request_id; }\n"
            "    upstream backend {\n"
            f"        server {LOOPBACK}:{ports['backend']};\n"
            f"        keepalive {UPSTREAM_KEEPALIVE};\n"
            f"        keepalive_requests {NGINX_KEEPALIVE_REQUESTS};\n"
            "        keepalive_timeout 60s;\n"
            "    }\n"
            + _block(snippet(sc.nginx_http), 4)
            + "    server {\n"
            f"        listen {LOOPBACK}:{ports['http']} default_server;\n"
            + _block(tls, 8)
            + f"        server_name {HOST};\n"
            + _block(snippet(sc.nginx_server), 8)
            + "        location / {\n"
            + (_grpc_location() if sc.backend_grpc else _block("""\
                proxy_http_version 1.1;
                proxy_buffering off;
                proxy_connect_timeout 5s;
                proxy_read_timeout 60s;
                proxy_send_timeout 60s;
                proxy_set_header Host $host;
                proxy_set_header Upgrade $http_upgrade;
                proxy_set_header Connection $connection_upgrade;
                proxy_set_header X-Request-ID $req_id;
                proxy_set_header X-Real-IP $remote_addr;
                proxy_set_header X-Forwarded-For $remote_addr;
                proxy_set_header X-Forwarded-Host $host;
                proxy_set_header X-Forwarded-Port $server_port;
                proxy_set_header X-Forwarded-Proto $scheme;
                """, 12)
            + _block(snippet(sc.nginx_location), 12)
            + f"            proxy_pass {'https' if sc.backend_tls else 'http'}://backend;\n")
            + "        }\n    }\n}\n")


def _grpc_location() -> str:
    """ingress-nginx's location for backend-protocol GRPC (nginx.tmpl: grpc_* timeouts,
    grpc_set_header for the forwarded headers, grpc_pass grpc://upstream_balancer)."""
    return _block("""\
        grpc_connect_timeout 5s;
        grpc_send_timeout 60s;
        grpc_read_timeout 60s;
        grpc_set_header Host $host;
        grpc_set_header X-Request-ID $req_id;
        grpc_set_header X-Real-IP $remote_addr;
        grpc_set_header X-Forwarded-For $remote_addr;
        grpc_set_header X-Forwarded-Host $host;
        grpc_set_header X-Forwarded-Port $server_port;
        grpc_set_header X-Forwarded-Proto $scheme;
        grpc_pass grpc://backend;
        """, 12)


def nginx_argv(nginx: str, prefix: Path) -> list[str]:
    # -e: error log before the config is read (otherwise /var/log/nginx/error.log, not writable
    # by non-root users); -p: prefix for relative paths.
    return [nginx, "-p", f"{prefix}/", "-e", f"{prefix}/error.log", "-c", f"{prefix}/nginx.conf"]


def start_nginx(procs: Processes, nginx: str, name: str, prefix: Path, conf: str,
                cpu: int | None) -> subprocess.Popen:
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "nginx.conf").write_text(conf)
    check = subprocess.run(nginx_argv(nginx, prefix) + ["-t", "-q"], capture_output=True,
                           text=True, timeout=30)
    if check.returncode:
        raise BenchError(f"{name}: nginx -t failed:\n{check.stderr}\n--- config ---\n{conf}")
    return procs.start(name, nginx_argv(nginx, prefix), cpu)


# --------------------------------------------------------------------------------------------
# ingressd manifests
# --------------------------------------------------------------------------------------------


def _yaml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid YAML scalar


def manifests_yaml(ports: dict, sc: Scenario, cert: tuple[Path, Path] | None,
                   placeholders: dict) -> str:
    annotations = "".join(f"\n    {_yaml_str(k)}: {_yaml_str(v.replace('{backend_port}', str(ports['backend'])))}"
                          for k, v in sorted(sc.annotations.items()))
    docs = [
        textwrap.dedent("""\
            apiVersion: networking.k8s.io/v1
            kind: IngressClass
            metadata:
              name: ingressd
            spec:
              controller: ingressd.io/ingress-controller
            """),
        textwrap.dedent(f"""\
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata:
              name: bench
              namespace: default
              annotations: {{}}
            spec:
              ingressClassName: ingressd
            __TLS__  rules:
              - host: {HOST}
                http:
                  paths:
                  - path: {_yaml_str(sc.ingress_path)}
                    pathType: {sc.ingress_path_type}
                    backend:
                      service:
                        name: backend
                        port:
                          number: 80
            """).replace("annotations: {}", "annotations:" + annotations if annotations
                         else "annotations: {}"),
        textwrap.dedent(f"""\
            apiVersion: v1
            kind: Service
            metadata:
              name: backend
              namespace: default
            spec:
              type: ClusterIP
              selector:
                app: backend
              ports:
              - name: http
                port: 80
                protocol: TCP
                targetPort: {ports['backend']}
            """),
        textwrap.dedent(f"""\
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: backend-bench
              namespace: default
              labels:
                kubernetes.io/service-name: backend
            addressType: IPv4
            ports:
            - name: http
              port: {ports['backend']}
              protocol: TCP
            endpoints:
            - addresses:
              - {LOOPBACK}
              conditions:
                ready: true
            """),
    ]
    tls = ""
    if cert:
        crt = base64.b64encode(cert[0].read_bytes()).decode()
        key = base64.b64encode(cert[1].read_bytes()).decode()
        tls = f"  tls:\n  - hosts:\n    - {HOST}\n    secretName: bench-tls\n"
        docs.append(textwrap.dedent(f"""\
            apiVersion: v1
            kind: Secret
            metadata:
              name: bench-tls
              namespace: default
            type: kubernetes.io/tls
            data:
              tls.crt: {crt}
              tls.key: {key}
            """))
    docs[1] = docs[1].replace("__TLS__", tls)
    if sc.extra_manifests:
        docs.append(sc.extra_manifests.format(**placeholders))
    return "---\n".join(docs)


def make_cert(tmp: Path) -> tuple[Path, Path]:
    crt, key = tmp / "tls.crt", tmp / "tls.key"
    if not crt.exists():
        openssl = shutil.which("openssl")
        if not openssl:
            raise BenchError("openssl is needed for HTTPS scenarios: apt-get install -y openssl")
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}",
                        "-keyout", str(key), "-out", str(crt)],
                       check=True, capture_output=True, timeout=60)
    return crt, key


# --------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}  # -> milliseconds


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    res: dict = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out)
    if not m:
        raise BenchError(f"cannot parse wrk output:\n{out}")
    res["requests"] = int(m.group(1))
    res["duration_s"] = _ms(m.group(2) + m.group(3)) / 1e3
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    res["requests_per_s"] = float(m.group(1)) if m else res["requests"] / res["duration_s"]
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s*{pct}(?:\.0+)?%\s+(\S+)\s*$", out, re.M)
        res[f"p{pct}_ms"] = _ms(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    return res


def run_wrk(procs: Processes, wrk: str, args, url: str, seconds: float, sc: Scenario,
            cpu: int | None, name: str) -> str:
    argv = [wrk, "-t1", f"-c{args.connections}", f"-d{seconds:g}s", "--latency",
            "-H", f"Host: {HOST}", *sc.wrk_args, url]
    return _run_client(procs, argv, seconds, name, cpu)


def run_load(procs: Processes, wrk: str, args, url: str, seconds: float, sc: Scenario,
             name: str) -> tuple[str, dict]:
    """Run the scenario's load client once; its raw output and the parsed figures."""
    if sc.client == "wrk":
        out = run_wrk(procs, wrk, args, url, seconds, sc, args.load_cpu, name)
        return out, parse_wrk(out)
    if sc.client == "h2load":
        return run_h2load(procs, args, url, seconds, name)
    if sc.client == "websocket":
        return run_websocket(procs, args, url, seconds, name)
    if sc.client == "tls-full":
        return run_tls_full(procs, args, url, seconds, name)
    if sc.client in ("grpc-unary", "grpc-stream"):
        return run_grpc(procs, args, url, seconds, name, sc.client.split("-")[1])
    raise BenchError(f"unknown client {sc.client}")


def _run_client(procs: Processes, argv: list[str], seconds: float, name: str,
                cpu: int | None) -> str:
    proc = procs.start(name, argv, cpu, cwd=procs.tmp)
    try:
        proc.wait(timeout=seconds + WRK_SLACK)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{name}: did not finish in {seconds + WRK_SLACK:.0f} s")
    finally:
        procs.stop(proc)
        procs.procs = [p for p in procs.procs if p[1] is not proc]
    out = proc.log_path.read_text(errors="replace")
    if proc.returncode:
        raise BenchError(f"{name}: exited with {proc.returncode}:\n{out[-3000:]}")
    return out


def run_h2load(procs: Processes, args, url: str, seconds: float, name: str) -> tuple[str, dict]:
    """h2load: connections/H2_STREAMS HTTP/2 connections x H2_STREAMS concurrent streams, so
    the number of requests in flight equals wrk's -c. Latency percentiles come from h2load's
    per-request --log-file (h2load itself prints only min/max/mean)."""
    h2load = shutil.which("h2load")
    if not h2load:
        raise BenchError("h2load is needed for the http2 scenario: apt-get install -y nghttp2-client")
    log = procs.tmp / f"{name}.h2log"
    duration = max(1, round(seconds))
    argv = [h2load, "-t1", f"-c{max(1, args.connections // H2_STREAMS)}", f"-m{H2_STREAMS}",
            "-D", str(duration), "-H", f":authority: {HOST}", f"--log-file={log}", url]
    out = _run_client(procs, argv, duration, name, args.load_cpu)
    res: dict = {}
    m = re.search(r"finished in ([\d.]+)(us|ms|s|m|h), ([\d.]+) req/s", out)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    c = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (m and r and c):
        raise BenchError(f"cannot parse h2load output:\n{out}")
    res["duration_s"] = _ms(m.group(1) + m.group(2)) / 1e3
    res["requests_per_s"] = float(m.group(3))
    res["requests"] = int(r.group(3))
    res["socket_errors"] = int(r.group(6)) + int(r.group(7))
    res["non_2xx"] = sum(int(x) for x in c.groups()[1:])
    lat = []
    try:
        with open(log) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3:
                    lat.append(int(parts[2]) / 1e3)  # microseconds -> ms
        log.unlink()
    except (OSError, ValueError):
        pass
    lat.sort()
    for pct in (50, 75, 90, 99):
        res[f"p{pct}_ms"] = lat[min(len(lat) - 1, len(lat) * pct // 100)] if lat else None
    return out, res


def run_websocket(procs: Processes, args, url: str, seconds: float,
                  name: str) -> tuple[str, dict]:
    """bench/wsbench.py client: --connections upgraded connections, each doing echo
    round-trips of a 16-byte frame back to back; a round-trip counts as a request."""
    port = urlsplit(url).port
    argv = [sys.executable, str(REPO / "bench" / "wsbench.py"), "client", "--port", str(port),
            "--host", HOST, "-c", str(args.connections), "--seconds", f"{seconds:g}"]
    out = _run_client(procs, argv, seconds, name, args.load_cpu)
    try:
        data = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"cannot parse wsbench output:\n{out}")
    res = {"requests": data["round_trips"], "duration_s": data["seconds"],
           "requests_per_s": data["round_trips_per_s"], "p50_ms": data["p50_ms"],
           "p90_ms": data["p90_ms"], "p99_ms": data["p99_ms"],
           "socket_errors": data["errors"], "non_2xx": 0}
    return out, res


def _grpcbench(*argv) -> list[str]:
    return [sys.executable, str(REPO / "bench" / "grpcbench.py"), *argv]


def grpc_probe(port: int, cert: Path | None) -> bool:
    """One gRPC call through ``port`` (TLS when ``cert``, trusted as the root) answered."""
    argv = _grpcbench("probe", "--port", str(port), "--host", HOST, *(("--tls", str(cert)) if cert else ()))
    return subprocess.run(argv, capture_output=True, timeout=20).returncode == 0


def run_grpc(procs: Processes, args, url: str, seconds: float, name: str, mode: str) -> tuple[str, dict]:
    """bench/grpcbench.py client: --connections calls (unary) or bidi streams in flight over
    connections/10 channels; a unary call or a stream's round trip counts as a request."""
    port = urlsplit(url).port
    argv = _grpcbench("client", "--port", str(port), "--host", HOST, "--tls", str(procs.tmp / "tls.crt"),
                      "-c", str(args.connections), "--seconds", f"{seconds:g}", "--mode", mode)
    out = _run_client(procs, argv, seconds, name, args.load_cpu)
    try:
        data = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"cannot parse grpcbench output:\n{out}")
    res = {"requests": data["requests"], "duration_s": data["seconds"],
           "requests_per_s": data["requests_per_s"], "p50_ms": data["p50_ms"],
           "p90_ms": data["p90_ms"], "p99_ms": data["p99_ms"],
           "socket_errors": data["errors"], "non_2xx": 0}
    return out, res


def run_tls_full(procs: Processes, args, url: str, seconds: float, name: str) -> tuple[str, dict]:
    """bench/tlsbench.py: TLS_FULL_CLIENTS processes, each one connection at a time with a
    full handshake (no session offered), one request per connection."""
    port = urlsplit(url).port
    argv = [sys.executable, str(REPO / "bench" / "tlsbench.py"), "--port", str(port),
            "--host", HOST, "-c", str(TLS_FULL_CLIENTS), "--seconds", f"{seconds:g}"]
    out = _run_client(procs, argv, seconds, name, args.load_cpu)
    try:
        data = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"cannot parse tlsbench output:\n{out}")
    if data["resumed"]:
        raise BenchError(f"{name}: {data['resumed']} handshakes were resumed")
    res = {"requests": data["requests"], "duration_s": data["seconds"],
           "requests_per_s": data["requests_per_s"], "p50_ms": data["p50_ms"],
           "p90_ms": data["p90_ms"], "p99_ms": data["p99_ms"],
           "socket_errors": data["errors"], "non_2xx": data["non_2xx"]}
    return out, res


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return None

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "nginx": version([find_nginx() or "nginx", "-v"]),
        "wrk": version([shutil.which("wrk") or "wrk", "--version"]),
    }


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def proxy_cpu(args, sc: Scenario) -> int | None:
    """The CPU the proxy is pinned to; None (every CPU) for multi-process scenarios."""
    return None if sc.proxy_workers > 1 or not sc.pinned else args.proxy_cpu


def check_headers(sc: Scenario) -> dict:
    """The scenario's wrk -H headers (e.g. Authorization), for the readiness check."""
    out, it = {}, iter(sc.wrk_args)
    for a in it:
        if a == "-H":
            name, _, value = next(it, "").partition(":")
            if name.strip().lower() not in ("connection", "host"):
                out[name.strip()] = value.strip()
    return out


def start_proxy(kind: str, procs: Processes, args, sc: Scenario, tmp: Path, ports: dict,
                cert, nginx: str) -> subprocess.Popen:
    """Start one proxy and wait until it serves the route; returns its (root) process."""
    tls = sc.scheme == "https"
    cert = cert if tls else None  # a certificate made for an HTTPS backend is not the proxy's
    placeholders = {**{f"{k}_port": v for k, v in ports.items()}, "tmp": tmp,
                    "manifests": tmp / "manifests", "host": HOST}
    cpu = proxy_cpu(args, sc)
    if kind == "nginx":
        proc = start_nginx(procs, nginx, "proxy-nginx", tmp / "proxy-nginx",
                           proxy_conf(tmp / "proxy-nginx", ports, sc, cert), cpu)
    elif kind == "ingressd":
        mdir = tmp / "manifests"
        mdir.mkdir(exist_ok=True)
        for old in mdir.iterdir():
            old.unlink()
        (mdir / "bench.yaml").write_text(manifests_yaml(ports, sc, cert, placeholders))
        # The ingressd installed beside --twistd runs (with its C accelerators), never this
        # checkout's source tree: an A/B of two installs measures the two installs.
        # (The caller's PYTHONPATH stays: bench/sampler's sitecustomize comes that way.)
        env = dict(os.environ)
        argv = [args.twistd, "-n", "--pidfile=", "ingressd", "--manifests", str(mdir),
                "--http", f"tcp:{ports['http']}:interface={LOOPBACK}",
                "--https", f"tcp:{ports['https']}:interface={LOOPBACK}",
                "--admin", f"tcp:{ports['admin']}:interface={LOOPBACK}",
                *shlex.split(args.ingressd_args),
                *(arg.replace("{tmp}", str(tmp)) for arg in sc.ingressd_args)]
        proc = procs.start("proxy-ingressd", argv, cpu, env=env, cwd=tmp)
        wait_until("ingressd /readyz",
                   lambda: http_get(ports["admin"], "/readyz", False, host=LOOPBACK)[0] == 200,
                   proc, procs)
    elif kind == "custom":
        argv = shlex.split(args.proxy_cmd.format(**placeholders))
        proc = procs.start("proxy-custom", argv, cpu, cwd=tmp)
    else:
        raise BenchError(f"unknown proxy {kind}")

    port = ports["https" if tls else "http"]

    def serves() -> bool:
        if sc.backend_grpc:
            return grpc_probe(port, cert[0] if cert else None)
        status, body = http_get(port, sc.path, tls, headers=check_headers(sc))
        return status == 200 and (sc.expect_body is None or body == sc.expect_body)

    wait_until(f"{kind} serving {sc.scheme}://{HOST}{sc.path}", serves, proc, procs)
    return proc


def bench_one(procs: Processes, kind: str, args, sc: Scenario, tmp: Path, ports: dict, cert,
              nginx: str, wrk: str) -> dict:
    keep = len(procs.procs)  # the backend stays; what this run starts is stopped at its end
    try:
        proc = start_proxy(kind, procs, args, sc, tmp, ports, cert, nginx)
        url = f"{sc.scheme}://{LOOPBACK}:{ports['https' if sc.scheme == 'https' else 'http']}" \
              f"{sc.path}"
        if args.warmup > 0:
            run_load(procs, wrk, args, url, args.warmup, sc, f"{sc.client}-warmup-{kind}")
        pcpu = proxy_cpu(args, sc)
        load0, pcore0 = cpu_core_ticks(args.load_cpu), cpu_core_ticks(pcpu)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        out, res = run_load(procs, wrk, args, url, args.seconds, sc, f"{sc.client}-{sc.name}-{kind}")
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
        load1, pcore1 = cpu_core_ticks(args.load_cpu), cpu_core_ticks(pcpu)
        if proc.poll() is not None:
            raise BenchError(f"{kind} exited during the run:\n{procs.log_tail(proc)}")
        cpu = cpu1 - cpu0
        res["proxy_cpu_s"] = round(cpu, 3)
        res["proxy_cpu_us_per_request"] = cpu * 1e6 / res["requests"] if res["requests"] else None
        res["proxy_cpu_percent"] = 100 * cpu / (t1 - t0)
        res["proxy_processes"] = len(process_tree(proc.pid))  # at the end: workers started
        # How busy the two CPUs were: the load CPU near 100 % means wrk+backend may have limited
        # the rate; the proxy CPU well above the proxy's own use means something else ran there.
        for key, (b0, n0), (b1, n1) in (("load_cpu_busy_percent", load0, load1),
                                        ("proxy_core_busy_percent", pcore0, pcore1)):
            res[key] = 100 * (b1 - b0) / (n1 - n0) if n1 > n0 else None
        res["wrk_output"] = out
        return res
    finally:
        procs.stop_all(keep)


FIGURES = [  # (key, label, format, better)
    ("requests_per_s", "requests/s", "{:,.0f}", "higher"),
    ("p50_ms", "latency p50 (ms)", "{:.3f}", "lower"),
    ("p99_ms", "latency p99 (ms)", "{:.3f}", "lower"),
    ("proxy_cpu_us_per_request", "proxy CPU µs/request", "{:.1f}", "lower"),
    ("proxy_cpu_percent", "proxy CPU use (%)", "{:.0f}", "-"),
    ("proxy_core_busy_percent", "proxy core busy (%)", "{:.0f}", "-"),
    ("load_cpu_busy_percent", "wrk+backend core busy (%)", "{:.0f}", "-"),
    ("requests", "requests completed", "{:,.0f}", "-"),
    ("socket_errors", "socket errors", "{:,.0f}", "-"),
    ("non_2xx", "non-2xx responses", "{:,.0f}", "-"),
]


def median_of(runs: list[dict]) -> dict:
    """Each figure's median over the runs (per figure, so not necessarily one run's figures)."""
    if len(runs) == 1:
        return runs[0]
    out: dict = {"runs": runs}
    for key in runs[0]:
        vals = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if vals and len(vals) == len(runs):
            # errors: the worst run, so that none is hidden by the median
            out[key] = max(vals) if key in ("socket_errors", "non_2xx") else \
                statistics.median(vals)
    return out


def print_table(sc: Scenario, results: dict, args) -> None:
    kinds = list(results)
    others = [k for k in kinds if k != "nginx"] if "nginx" in kinds else []
    head = ["figure", *kinds, *(f"{k}/nginx" for k in others)]
    rows = []
    for key, label, fmt, _ in FIGURES:
        row = [label]
        for k in kinds:
            v = results[k].get(key)
            row.append("-" if v is None else fmt.format(v))
        for k in others:
            a, b = results[k].get(key), results["nginx"].get(key)
            row.append(f"{a / b:.2f}" if a is not None and b else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(f"\n== {sc.name}: {sc.description}")
    if sc.client == "wrk":
        load = (f"wrk -t1 -c{args.connections} -d{args.seconds:g}s --latency -H 'Host: {HOST}'"
                f"{''.join(' ' + shlex.quote(a) for a in sc.wrk_args)} {sc.scheme}://...{sc.path}")
    elif sc.client == "h2load":
        load = (f"h2load -t1 -c{max(1, args.connections // H2_STREAMS)} -m{H2_STREAMS} "
                f"-D {max(1, round(args.seconds))} -H ':authority: {HOST}' https://...{sc.path}")
    elif sc.client == "tls-full":
        load = (f"tlsbench.py -c {TLS_FULL_CLIENTS} --seconds {args.seconds:g} --host {HOST} "
                "(a request = one connection with a full TLS handshake)")
    elif sc.backend_grpc:
        mode = sc.client.split("-")[1]
        load = (f"grpcbench.py client -c {args.connections} --seconds {args.seconds:g} --mode {mode} "
                f"({max(1, args.connections // 10)} channels; a request = "
                f"{'one unary call' if mode == 'unary' else 'one bidi round trip'})")
    else:
        load = (f"wsbench.py client -c {args.connections} --seconds {args.seconds:g} "
                "(a request = one echo round-trip)")
    pcpu = proxy_cpu(args, sc)
    print(f"   {load} (warm-up {args.warmup:g}s); proxy on "
          f"{'every CPU' if pcpu is None else f'CPU {pcpu}'}, client+backend on CPU "
          f"{args.load_cpu}")
    for r in [head, *rows]:
        print("   " + "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                                for i, c in enumerate(r)))
    for k in kinds:
        r = results[k]
        if r.get("socket_errors") or r.get("non_2xx"):
            print(f"   WARNING: {k} had errors; see its wrk output in the JSON file")
        use, core, load = (r.get("proxy_cpu_percent"), r.get("proxy_core_busy_percent"),
                           r.get("load_cpu_busy_percent"))
        if use is not None and core is not None and core - use > 10:
            print(f"   note: {k}: other processes used ~{core - use:.0f}% of the proxy CPU "
                  f"(noisy run; repeat it)")
        if use is not None and use < 85 and load is not None and load > 90:
            print(f"   note: {k} used {use:.0f}% of its CPU while the wrk+backend CPU was "
                  f"{load:.0f}% busy: its requests/s is limited by the load side")
    sys.stdout.flush()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="scenarios:\n" + "\n".join(
                                    f"  {s.name:18} {s.description}" for s in SCENARIOS.values()))
    p.add_argument("--seconds", type=float, default=10, help="measured run length (default 10)")
    p.add_argument("--warmup", type=float, default=3, help="warm-up run length (default 3; 0: none)")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per proxy, interleaved; the table shows each figure's median")
    p.add_argument("--connections", "-c", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("--scenario", default="keepalive",
                   help="comma-separated scenario names, or 'all' (default keepalive)")
    p.add_argument("--only", default=None,
                   help="comma-separated subset of proxies: nginx, ingressd, custom "
                        "(default: nginx,ingressd, plus custom with --proxy-cmd)")
    p.add_argument("--json", metavar="FILE", help="save machine info and all figures as JSON")
    p.add_argument("--ingressd-args", default="",
                   help="extra arguments for 'twistd ingressd'. By default ingressd runs with "
                        "its defaults: access log on (to its log file) and metrics on, while "
                        "nginx's access log is off; for a like-for-like comparison pass "
                        "--ingressd-args '--access-log off' (metrics stay on: the full feature "
                        "path)")
    p.add_argument("--twistd", default=str(REPO / ".venv" / "bin" / "twistd"),
                   help="twistd to run ingressd with, and the ingressd installed beside it "
                        "(default: the repo's .venv)")
    p.add_argument("--proxy-cmd", default=None,
                   help="benchmark this command as proxy 'custom'; placeholders: {http_port} "
                        "{https_port} {admin_port} {backend_port} {tmp} {manifests} {host}; it "
                        "must route Host bench.local to 127.0.0.1:{backend_port}")
    p.add_argument("--proxy-cpu", type=int, default=0, help="CPU for the proxy (default 0)")
    p.add_argument("--load-cpu", type=int, default=1,
                   help="CPU for wrk and the backend (default 1)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    p.add_argument("--print-config", action="store_true",
                   help="print the nginx proxy config and the ingressd manifests of the first "
                        "scenario (example ports) and exit")
    args = p.parse_args(argv)
    names = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    for n in names:
        if n not in SCENARIOS:
            p.error(f"unknown scenario {n!r}; known: {', '.join(SCENARIOS)}")
    args.scenarios = [SCENARIOS[n] for n in names]
    if args.only:
        args.proxies = args.only.split(",")
    else:
        args.proxies = ["nginx", "ingressd"] + (["custom"] if args.proxy_cmd else [])
    for k in args.proxies:
        if k not in ("nginx", "ingressd", "custom"):
            p.error(f"unknown proxy {k!r}")
    if "custom" in args.proxies and not args.proxy_cmd:
        p.error("proxy 'custom' needs --proxy-cmd")
    if not 1 <= args.repeat <= 50:
        p.error("--repeat must be in [1, 50]")
    if args.seconds <= 0 or args.seconds > 3600 or args.warmup < 0 or args.warmup > 600:
        p.error("--seconds must be in (0, 3600], --warmup in [0, 600]")
    return args


def _raise_exit(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def print_config(sc: Scenario) -> None:
    ports = {"backend": 8081, "http": 8080, "https": 8443, "admin": 8090}
    tmp = Path(tempfile.mkdtemp(prefix="ingressd-bench-"))
    try:
        cert = make_cert(tmp) if sc.scheme == "https" else None
        print(f"# nginx proxy config ({sc.name})\n" + proxy_conf(tmp / "proxy-nginx", ports, sc, cert))
        print(f"# ingressd manifests ({sc.name})\n"
              + manifests_yaml(ports, sc, cert, {"backend_port": 8081, "http_port": 8080,
                                                 "https_port": 8443, "admin_port": 8090,
                                                 "tmp": tmp, "manifests": tmp / "manifests",
                                                 "host": HOST}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.print_config:
        print_config(args.scenarios[0])
        return 0
    nginx, wrk = find_nginx(), shutil.which("wrk")
    missing = [n for n, path in (("nginx", nginx), ("wrk", wrk), ("taskset", shutil.which("taskset")))
               if not path]
    if missing:
        print(f"missing: {', '.join(missing)}. Install with:\n    {APT_COMMAND}"
              + ("\n    apt-get install -y util-linux" if "taskset" in missing else ""),
              file=sys.stderr)
        return 2
    if "ingressd" in args.proxies and not os.access(args.twistd, os.X_OK):
        print(f"no twistd at {args.twistd} (make the venv, or pass --twistd, or --only nginx)",
              file=sys.stderr)
        return 2
    ncpu = len(os.sched_getaffinity(0))
    if ncpu < 2:
        print("warning: fewer than 2 CPUs: proxy and load share a CPU; figures are not "
              "comparable with other machines", file=sys.stderr)
    for opt in ("proxy_cpu", "load_cpu"):
        if getattr(args, opt) not in os.sched_getaffinity(0):
            setattr(args, opt, None)  # no pinning for a CPU we cannot use

    # SIGINT explicitly too: a shell starts background jobs with SIGINT ignored.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _raise_exit)
    tmp = Path(tempfile.mkdtemp(prefix="ingressd-bench-"))
    report = {"machine": machine_info(), "settings": {
        "seconds": args.seconds, "repeat": args.repeat, "warmup": args.warmup, "connections": args.connections,
        "proxy_cpu": args.proxy_cpu, "load_cpu": args.load_cpu,
        "ingressd_args": args.ingressd_args, "proxy_cmd": args.proxy_cmd}, "results": {}}
    print(f"{report['machine']['date']}  {report['machine']['nproc']} CPUs "
          f"({report['machine']['cpu_model']}), {report['machine']['nginx']}, "
          f"{report['machine']['wrk']}; temp dir {tmp}")
    procs = Processes(tmp)
    rc = 0
    try:
        for sc in args.scenarios:
            ports = dict(zip(("backend", "http", "https", "admin"), free_ports(4)))
            cert = make_cert(tmp) if sc.scheme == "https" or sc.backend_tls else None
            bprefix = tmp / f"backend-{sc.name}"
            (bprefix / "docroot").mkdir(parents=True, exist_ok=True)
            for name, data in sc.backend_files.items():
                (bprefix / "docroot" / name).write_bytes(data)
            for name, text in sc.wrk_scripts.items():
                (tmp / name).write_text(text)
            for name, data in sc.proxy_files.items():
                (tmp / name).write_bytes(data)
            if sc.client == "websocket":  # nginx cannot echo WebSocket frames
                backend = procs.start(f"backend-{sc.name}", [
                    sys.executable, str(REPO / "bench" / "wsbench.py"), "echo",
                    "--port", str(ports["backend"])], args.load_cpu)
            elif sc.backend_grpc:  # nginx cannot answer gRPC calls
                backend = procs.start(f"backend-{sc.name}", _grpcbench("server", "--port", str(ports["backend"])),
                                      args.load_cpu)
            else:
                backend = start_nginx(procs, nginx, f"backend-{sc.name}", bprefix,
                                      backend_conf(bprefix, ports["backend"], sc, cert), args.load_cpu)
            if sc.backend_grpc:
                wait_until("backend", lambda: grpc_probe(ports["backend"], None), backend, procs)
            else:
                wait_until("backend", lambda: http_get(ports["backend"], sc.path, sc.backend_tls)[0] == 200,
                           backend, procs)
            runs: dict[str, list[dict]] = {}
            for rep in range(args.repeat):  # interleaved, so slow drift hits every proxy alike
                for kind in args.proxies:
                    print(f"-- {sc.name}: {kind} (run {rep + 1}/{args.repeat}) ...", flush=True)
                    try:
                        runs.setdefault(kind, []).append(
                            bench_one(procs, kind, args, sc, tmp, ports, cert, nginx, wrk))
                    except BenchError as e:
                        print(f"ERROR {sc.name}/{kind}: {e}", file=sys.stderr)
                        rc = 1
            results = {kind: median_of(r) for kind, r in runs.items() if r}
            procs.stop_all()
            if results:
                print_table(sc, results, args)
            report["results"][sc.name] = results
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        rc = 130
    finally:
        finish(procs, report, args.json, tmp, args.keep)
    return rc


def finish(procs: Processes, report: dict, json_path: str | None, tmp: Path, keep: bool) -> None:
    """A run's end, however it ends: every process stopped (signals ignored meanwhile: let the
    clean-up finish), the figures saved as JSON if asked and any were made, the temp dir removed
    unless kept. bench.py's and logpair.py's."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    procs.stop_all()
    if json_path and report["results"]:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
        print(f"figures saved to {json_path}")
    if keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
