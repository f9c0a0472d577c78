"""Per-line cost of the access log's formats on the reactor (json, combined, nginx default, nginx json).

Prints microseconds of CPU time per line for a typical proxied request (best and median of 5
rounds); no assertions about time.
Run: python bench/accesslog_line.py [lines]
"""

from __future__ import annotations

import statistics
import sys
import time
from types import SimpleNamespace

from ingressd.accesslog import AccessLog
from ingressd.http.headers import Headers
from ingressd.logformat import log_settings_from


def _exchange(now: float):
    route = SimpleNamespace(host="shop.example", path="/", ingress=SimpleNamespace(namespace="shop", name="web"),
                            backend=SimpleNamespace(service="svc", port=8080))
    protocol = SimpleNamespace(scheme="http", tls=lambda: ("", ""), transport=None)
    return SimpleNamespace(
        method=b"GET", request=SimpleNamespace(target=b"/a?b=1"), request_uri=b"/a?b=1", path="/a",
        version=b"1.1", host="shop.example", scheme="http",
        headers=Headers([(b"host", b"shop.example"), (b"user-agent", b"curl/8.5.0"), (b"accept", b"*/*")]),
        client_ip="203.0.113.7", peer_ip="10.0.0.2", status=200, bytes_sent=612, request_bytes=78,
        started=now - 0.01, proxy=SimpleNamespace(clock=SimpleNamespace(seconds=time.time)), route=route,
        entry=None, upstream_address="10.1.0.5:8080", upstream_statuses=200, upstream_status=200, upstream_trail="",
        upstream_started=now - 0.009, upstream_ended=now - 0.001, request_id="0123456789abcdef0123456789abcdef",
        server_port=80, protocol=protocol, tunnel_bytes=(0, 0), response_headers=(), upstream_endpoint=None,
    )


def main(lines: int = 100_000, rounds: int = 5) -> None:
    exchange = _exchange(time.time())
    for name, options in (("json", {}), ("combined", {"access_log_format": "combined"}),
                          ("nginx default", {"access_log_format": "nginx"}),
                          ("nginx escape=json", {"log_format_upstream": '{"a":"$remote_addr","s":$status,'
                                                 '"u":"$request_uri","ua":"$http_user_agent"}',
                                                 "log_format_escape_json": True})):
        per_line = []
        for _ in range(rounds):  # CPU time of this thread, best and median of the rounds: other load shows less
            log = AccessLog("-", max_pending=lines + 1, settings=log_settings_from(options))
            start = time.thread_time()
            for _ in range(lines):
                log(exchange)
            per_line.append((time.thread_time() - start) / lines * 1e6)
            # A line that failed to render is dropped, not written: a bench that measured failures would lie.
            assert log.dropped == 0 and log.counts()["pending"] == lines, f"{name}: {log.dropped} lines failed"
        print(f"{name:18} {min(per_line):6.2f} µs/line (median {statistics.median(per_line):.2f}, CPU time)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
