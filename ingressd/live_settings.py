"""SIGHUP: read the options again (command line and ``--config``) and say what changed.

Of the options, ``--manifests`` (which files and folders are read), the client-address
options (``FORWARDING``: a new forwarding policy, read by the next request and connection),
the access log's format options (``ACCESS_LOG``), the backend pools' keep-alive limits
(``UPSTREAM_KEEPALIVE``), the TCP/UDP services' settings (``STREAM``), the client side's limits
(``CLIENT_SIDE``) and the TLS settings (``TLS``: new handshakes) are applied to a running server; every
other changed option is named as needing a restart, and keeps its old value until then.
Manifests themselves are re-read on SIGHUP whether or not the list
changed (they are also polled: SIGHUP just does not wait for the next poll).
"""

from __future__ import annotations

from typing import Any

from ingressd.http.client_settings import CLIENT_SIDE

# The client-address settings (ingressd.proxy.forwarding.ForwardingPolicy): a new policy is
# swapped in, read by the next request and the next connection.
FORWARDING = frozenset({"trusted_proxies", "use_forwarded_headers", "proxy_real_ip_cidr", "forwarded_for_header",
                        "compute_full_forwarded_for", "enable_real_ip", "proxy_protocol",
                        "proxy_protocol_header_timeout", "proxy_add_original_uri_header", "generate_request_id"})
# The access log's format and filters: a new LogSettings swapped into the running access log.
ACCESS_LOG = frozenset({"access_log_format", "log_format_upstream", "log_format_escape_json",
                        "log_format_escape_none", "skip_access_log_urls", "disable_access_log",
                        "access_log_path", "http_access_log_path", "stream_access_log_path", "access_log_params",
                        "enable_access_log_for_default_backend", "enable_syslog", "syslog_host", "syslog_port"})
# The backend connection pools' keep-alive limits (HTTP1Upstream.use_limits): read at the next release.
UPSTREAM_KEEPALIVE = frozenset({"upstream_keepalive_connections", "upstream_keepalive_timeout",
                                "upstream_keepalive_requests", "upstream_keepalive_time"})
# The TCP/UDP services' settings (ingressd.l4.stream_settings.StreamSettings): read by the next connection.
STREAM = frozenset({"proxy_stream_timeout", "proxy_stream_responses", "proxy_stream_next_upstream",
                    "proxy_stream_next_upstream_timeout", "proxy_stream_next_upstream_tries", "log_format_stream"})
# The client side's timeouts, limits, Server header and HTTP/2 (ingressd.http.client_settings.
# CLIENT_SIDE): the next connection and the next request read them.
# The server's TLS settings (ingressd.tls.settings.TLSSettings): every TLS context made anew, used by new handshakes.
TLS = frozenset({"ssl_protocols", "ssl_ciphers", "ssl_prefer_server_ciphers", "ssl_session_cache",
                 "ssl_session_timeout", "ssl_session_tickets", "ssl_ecdh_curve"})
LIVE = frozenset({"manifests"}) | FORWARDING | ACCESS_LOG | UPSTREAM_KEEPALIVE | STREAM | CLIENT_SIDE | TLS  # settings a running server takes over
_NOT_OPTIONS = frozenset({"config", "worker_id"})  # not compared: where options come from, internal


def read_settings(argv: list[str]) -> dict[str, Any]:
    """The settings the command line ``argv`` gives now (``--config`` read again).
    Raises ``twisted.python.usage.UsageError`` when they are not valid."""
    from ingressd.tap import Options, settings_from

    options = Options()
    options.parseOptions(list(argv))
    return settings_from(options)


def changed_options(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(changed settings applied live, changed settings that need a restart), by key."""
    live: list[str] = []
    restart: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key in _NOT_OPTIONS or old.get(key) == new.get(key):
            continue
        (live if key in LIVE else restart).append(key)
    return live, restart


def option_names(keys: list[str]) -> str:
    return ", ".join("--" + key.replace("_", "-") for key in keys)
