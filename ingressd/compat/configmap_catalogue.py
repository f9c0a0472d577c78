"""ingress-nginx's controller ConfigMap keys and where ingressd stands on each: the contract as data.

One ``Key`` per key of ingress-nginx's ConfigMap documentation
(docs/user-guide/nginx-configuration/configmap.md: 192 keys, and the 6 ``REMOVED_KEYS`` of its
global rate limiter, documented until its last releases) with ingress-nginx's default,
what ingressd does with it (``status``, the annotation catalogue's statuses) and what ignoring
it would do (``effect``). ``maps`` says how a key is served, in one string:

- ``annotation:NAME``: the value stands in for the annotation NAME on every Ingress that does
  not set it (ingress-nginx: the annotation overrides the ConfigMap), parsed by its plugin;
- ``setting:NAME``: the value replaces the server setting NAME (an ``--NAME`` option) that
  plugins read from ``BuildContext.settings`` when routes are built: applied live;
- ``option:NAME``: the server option ``--NAME``, read at start only; a different value is
  reported as needing a restart with that option.

Adding a key's support is one row here (status IMPLEMENTED and its ``maps``); the reader
(``ingressd.config.nginx_configmap``) needs no change. A value equal to ``default`` asks for
nothing. docs/migrating.md's table of keys is generated from this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from ingressd.compat.catalogue import (
    BOOL,
    CHANGES_TRAFFIC,
    EFFECTS,
    HARMLESS,
    IMPLEMENTED,
    INT,
    NARROWS_ACCESS,
    NOT_NEEDED,
    NOT_YET,
    PARTIAL,
    REFUSED,
    SIZE,
    STATUSES,
    TEXT,
    WORD,
    write_between,
)

MAPPINGS = ("annotation", "setting", "option")
# Annotations with an older name: an Ingress setting either name overrides the ConfigMap's default.
ANNOTATION_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "allowlist-source-range": ("whitelist-source-range",),
    "limit-allowlist": ("limit-whitelist",),
})


@dataclass(frozen=True, slots=True)
class Key:
    """One key of ingress-nginx's controller ConfigMap."""

    name: str
    status: str
    effect: str
    default: str | None = None  # ingress-nginx's default, as text; None when it depends on the machine
    kind: str = TEXT  # how values compare with ``default``
    maps: str | None = None  # "annotation:NAME", "setting:NAME" or "option:NAME"
    note: str = ""
    owner: str | None = None  # the part of issue 21 that serves it (for the merge)

    @property
    def honoured(self) -> bool:
        return self.status in (IMPLEMENTED, PARTIAL, NOT_NEEDED)

    @property
    def target(self) -> tuple[str, str] | None:
        """``maps`` split: (how, name)."""
        if self.maps is None:
            return None
        how, _, name = self.maps.partition(":")
        return how, name

    # what compat.assess.same_value reads of an annotation Entry
    @property
    def requires(self) -> None:
        return None


def _keys(*keys: Key) -> Mapping[str, Key]:
    table = {}
    for key in keys:
        assert key.name not in table, key.name
        assert key.status in STATUSES and key.effect in EFFECTS, key
        assert key.target is None or key.target[0] in MAPPINGS, key
        table[key.name] = key
    return MappingProxyType(table)


K = Key
_H, _N, _C = HARMLESS, NARROWS_ACCESS, CHANGES_TRAFFIC
_TUNING = "nginx tuning with no counterpart in ingressd"
_BLOCK = ("403 on every route and the default backend (a request no route matches gets its 404); the real "
          "client address as the forwarding settings define it")
_BLOCK_MAP = ("as nginx's map: exact values without regard to case, ~regex and ~*regex (RE2 syntax) found anywhere; "
              "403 on every route and the default backend (a request no route matches gets its 404)")
_MEMCACHED = ("Redis replaces memcached: the global limits are counted in the Redis given by --redis "
              "(--redis-timeout bounds each decision); without it an Ingress with global-rate-limit is not served")
# Keys ingress-nginx documented until its last releases removed them with its memcached-based global
# rate limiter (kubernetes/ingress-nginx#11851); ConfigMaps migrated from older releases still carry them.
REMOVED_KEYS = frozenset({
    "global-rate-limit-status-code", "global-rate-limit-memcached-host", "global-rate-limit-memcached-port",
    "global-rate-limit-memcached-connect-timeout", "global-rate-limit-memcached-max-idle-timeout",
    "global-rate-limit-memcached-pool-size",
})
_LIVE = "applied live: the next connection and the next request of an open one read it (a value other than ingress-nginx's default wins over the option)"
_JAEGER = ("removed from ingress-nginx with OpenTracing in v1.10: still in its documentation's table, read by "
           "nothing (not in its config.go); the OpenTelemetry keys trace requests")
_RESTART = "read at start from the option named; a different value here is reported as needing a restart with that option"

KEYS: Mapping[str, Key] = _keys(
    K('add-headers', PARTIAL, _H, '', TEXT, maps='setting:add-headers', note="namespace/name of a ConfigMap of headers set on every answer of every route (more_set_headers); watched; an Ingress's custom-headers / response-headers win for their names; a missing ConfigMap, a bad name or value, a hop-by-hop header, Server or Date refuses the ConfigMap; not on the 404 of a request no route matches"),
    K('allow-backend-server-header', IMPLEMENTED, _H, 'false', BOOL, maps='setting:allow-backend-server-header', note="as ingress-nginx renders it (proxy_pass_header Server; with server-tokens false, more_clear_headers Server): with server-tokens true the backend's Server header is sent instead of ingressd's (ingressd's when the backend sends none); with server-tokens false no Server header at all; as --allow-backend-server-header gives it, applied live to the next response"),
    K('allow-cross-namespace-resources', PARTIAL, _H, 'false', BOOL, maps='option:allow-cross-namespace-resources', note=_RESTART),
    K('allow-snippet-annotations', IMPLEMENTED, _N, 'false', BOOL, note="false (the default): an Ingress with a *-snippet annotation is not served, as ingress-nginx's admission refuses it"),
    K('annotations-risk-level', PARTIAL, _N, 'High', WORD, note='Critical and High are honoured (below Critical, snippets are refused: they are Critical); Medium and Low are not yet (the ConfigMap is refused)'),
    K('annotation-value-word-blocklist', NOT_NEEDED, _H, '', TEXT, note='annotations are parsed as typed data and never pasted into configuration text'),
    K('hide-headers', IMPLEMENTED, _H, '', TEXT, maps='setting:hide-headers', note="comma-separated names removed from the backends' answers (proxy_hide_header), live; a header add-headers or the Ingress sets is still sent with their value; a hop-by-hop or framing name refuses the ConfigMap"),
    K('access-log-params', PARTIAL, _H, '', TEXT, maps='setting:access-log-params', note="buffer= and flush= accepted (lines are buffered by a writer thread and written within 0.1 s); gzip and if= refuse the ConfigMap (lines are written uncompressed; skip-access-log-urls is ingress-nginx's if=)"),
    K('access-log-path', IMPLEMENTED, _H, '/var/log/nginx/access.log', TEXT, maps='setting:access-log-path', note="live: the HTTP and TCP/UDP lines go to this absolute path (/dev/stdout, /dev/stderr: the process's own); the default (the image's link to /dev/stdout) leaves --access-log; reopened by SIGUSR1; syslog: or off refuses the ConfigMap (enable-syslog, disable-access-log say that)"),
    K('http-access-log-path', IMPLEMENTED, _H, '', TEXT, maps='setting:http-access-log-path', note='live: where the HTTP lines go, before access-log-path'),
    K('stream-access-log-path', IMPLEMENTED, _H, '', TEXT, maps='setting:stream-access-log-path', note="live: where the TCP/UDP services' lines go, before access-log-path"),
    K('enable-access-log-for-default-backend', PARTIAL, _H, 'false', BOOL, maps='setting:enable-access-log-for-default-backend', note="live; with --nginx-configmap, requests no route answers and those of --default-backend-service are not logged unless true (without a ConfigMap ingressd logs them); a known host's unmatched path counts as the default backend here (ingress-nginx logs it under the host's server)"),
    K('error-log-path', NOT_NEEDED, _H, '/var/log/nginx/error.log', TEXT, note=_TUNING),
    K('enable-modsecurity', NOT_YET, _N, 'false', BOOL, note='ModSecurity web application firewall'),
    K('modsecurity-snippet', REFUSED, _N, '', TEXT, note='snippets are nginx configuration text; ingressd never pastes configuration into text something interprets'),
    K('enable-owasp-modsecurity-crs', NOT_YET, _N, 'false', BOOL, note='ModSecurity web application firewall'),
    K('client-header-buffer-size', NOT_NEEDED, _H, '1k', TEXT, note="nginx's first buffer of a request head, with no client-visible effect: a head that does not fit in it moves to large-client-header-buffers, whose limits apply"),
    K('client-header-timeout', IMPLEMENTED, _H, '60', INT, maps='setting:client-header-timeout', note="seconds (or a Go duration) a client has for a request head, then 408; " + _LIVE),
    K('client-body-buffer-size', IMPLEMENTED, _H, '8k', SIZE, maps='annotation:client-body-buffer-size'),
    K('client-body-timeout', IMPLEMENTED, _H, '60', INT, maps='setting:client-body-timeout', note="seconds between two reads of a request body, then 408; " + _LIVE),
    K('disable-access-log', IMPLEMENTED, _H, 'false', BOOL, maps='setting:disable-access-log', note="applied live to the access log (a value other than ingress-nginx's default wins over the option)"),
    K('disable-ipv6', NOT_NEEDED, _H, 'false', BOOL, note="true asks for what ingressd does: its listeners bind IPv4 (0.0.0.0) unless --http / --https name an IPv6 interface (tcp:PORT:interface=\\:\\:); false, ingress-nginx's default, listens on [::] too, which ingressd does only with that interface"),
    K('disable-ipv6-dns', NOT_NEEDED, _H, 'false', BOOL, note=_TUNING),
    K('enable-underscores-in-headers', IMPLEMENTED, _H, 'false', BOOL, maps='setting:enable-underscores-in-headers', note="false (the default): a request header field whose name has an underscore is dropped, as nginx (never forwarded, never seen by a feature; Content_Length and the like frame nothing); true: it is forwarded; HTTP/1.1 and HTTP/2; " + _LIVE),
    K('enable-ocsp', IMPLEMENTED, _H, 'false', BOOL, maps='setting:enable-ocsp', note="live: each served certificate's OCSP response is fetched in the background from the http:// responder of its AIA extension (its issuer must follow it in tls.crt), checked (signature, serial, validity), kept until half its validity has passed and stapled to handshakes that ask; a failure keeps a still-valid response and retries every 5 minutes, never blocking a handshake"),
    K('ignore-invalid-headers', PARTIAL, _H, 'true', BOOL, maps='setting:ignore-invalid-headers', note="false: a name with an underscore is forwarded even without enable-underscores-in-headers, as nginx; names with other characters HTTP does not allow are refused (400) by the strict parsers whatever the value, where nginx drops them (true) or forwards them (false); " + _LIVE),
    K('retry-non-idempotent', IMPLEMENTED, _H, 'false', BOOL, maps='setting:retry-non-idempotent', note='true: non_idempotent joins every route\'s proxy-next-upstream list (POST, LOCK and PATCH are retried too once sent), as buildNextUpstream'),
    K('error-log-level', NOT_NEEDED, _H, 'notice', TEXT, note=_TUNING),
    K('http2-max-field-size', NOT_NEEDED, _H, '', TEXT, note=_TUNING),
    K('http2-max-header-size', NOT_NEEDED, _H, '', TEXT, note=_TUNING),
    K('http2-max-requests', NOT_NEEDED, _H, '0', INT, note="ingress-nginx's nginx (1.27) ignores http2_max_requests, obsolete since nginx 1.19.7 (a warning, no effect): keep-alive-requests limits HTTP/2 connections, in ingressd too"),
    K('http2-max-concurrent-streams', IMPLEMENTED, _H, '128', INT, maps='setting:http2-max-concurrent-streams', note="sent to HTTP/2 clients in SETTINGS; a stream beyond it is refused (REFUSED_STREAM); applied live to new connections (a value other than ingress-nginx's default wins over the option)"),
    K('hsts', IMPLEMENTED, _H, 'true', BOOL, maps='setting:hsts'),
    K('hsts-include-subdomains', IMPLEMENTED, _H, 'true', BOOL, maps='setting:hsts-include-subdomains'),
    K('hsts-max-age', IMPLEMENTED, _H, '31536000', INT, maps='setting:hsts-max-age'),
    K('hsts-preload', IMPLEMENTED, _H, 'false', BOOL, maps='setting:hsts-preload'),
    K('keep-alive', IMPLEMENTED, _H, '75', INT, maps='setting:keepalive-timeout', note="seconds an idle client connection (HTTP/1.1 and HTTP/2) stays open; as --keepalive-timeout gives it; " + _LIVE),
    K('keep-alive-requests', IMPLEMENTED, _H, '1000', INT, maps='setting:keepalive-requests', note="HTTP/1.1: the response to the last request says Connection: close; HTTP/2: after that many streams GOAWAY (NO_ERROR) with the last stream id, the streams in flight finish; as --keepalive-requests gives it; " + _LIVE),
    K('large-client-header-buffers', IMPLEMENTED, _H, '4 8k', TEXT, maps='setting:large-client-header-buffers', note="NUMBER SIZE, as nginx: a request line longer than SIZE gets 414, a header line longer than SIZE, or a head whose lines do not fit in NUMBER buffers of SIZE (packed line by line, as nginx packs them) 400 Request Header Or Cookie Too Large; over HTTP/2 a name or value longer than SIZE, or all of them beyond NUMBER × SIZE, end the connection (GOAWAY ENHANCE_YOUR_CALM), as nginx; at most 64 buffers of 1m; " + _LIVE),
    K('log-format-escape-none', IMPLEMENTED, _H, 'false', BOOL, maps='setting:log-format-escape-none', note="applied live to the access log (a value other than ingress-nginx's default wins over the option)"),
    K('log-format-escape-json', IMPLEMENTED, _H, 'false', BOOL, maps='setting:log-format-escape-json', note="applied live to the access log (a value other than ingress-nginx's default wins over the option)"),
    K('log-format-upstream', IMPLEMENTED, _H, '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id', TEXT, maps='setting:log-format-upstream', note="read as nginx reads the quoted log_format string; a variable ingressd does not know refuses the ConfigMap; applied live to the access log (a value other than ingress-nginx's default wins over the option)"),
    K('log-format-stream', IMPLEMENTED, _H, '[$remote_addr] [$time_local] $protocol $status $bytes_sent $bytes_received $session_time', TEXT, maps='setting:log-format-stream', note="live: the TCP/UDP services' access-log line, nginx's stream variables ($remote_addr, $remote_port, $server_port, $protocol, $status, $bytes_sent, $bytes_received, $session_time, $time_local, $time_iso8601, $msec, $pid, $hostname, $upstream_addr, $upstream_bytes_sent, $upstream_bytes_received, $upstream_connect_time, $proxy_protocol_addr); another variable refuses the ConfigMap", owner='logformat'),
    K('enable-multi-accept', NOT_NEEDED, _H, 'true', BOOL, note=_TUNING),
    K('max-worker-connections', IMPLEMENTED, _H, '16384', INT, maps='setting:max-worker-connections', note="client connections one process serves at once, over its HTTP and HTTPS listeners (counted once a PROXY protocol header is read); more are closed as they are accepted, logged (worker_connections are not enough) and counted (ingressd_client_connections_refused); 0: no limit of ingressd's own (nginx: from max-worker-open-files; the open-file limit bounds them); as --max-worker-connections gives it, applied live to the next connection"),
    K('max-worker-open-files', NOT_NEEDED, _H, '0', INT, note=_TUNING),
    K('map-hash-bucket-size', NOT_NEEDED, _H, '64', INT, note=_TUNING),
    K('nginx-status-ipv4-whitelist', NOT_NEEDED, _H, '127.0.0.1', TEXT, note='ingressd has no nginx status page; its admin endpoint listens where --admin says'),
    K('nginx-status-ipv6-whitelist', NOT_NEEDED, _H, '::1', TEXT, note='ingressd has no nginx status page; its admin endpoint listens where --admin says'),
    K('proxy-real-ip-cidr', IMPLEMENTED, _N, '0.0.0.0/0', TEXT, maps='setting:proxy-real-ip-cidr', note="the client address allow lists, rate limits and logs see; as --proxy-real-ip-cidr gives it, applied live (a value other than ingress-nginx's default wins over the option); beside --trusted-proxies (the same networks under another name) a different value is refused"),
    K('proxy-set-headers', IMPLEMENTED, _H, '', TEXT, maps='setting:proxy-set-headers', note="namespace/name of a ConfigMap of headers sent to every backend (proxy_set_header); watched; an Ingress's request-headers win for their names; a missing ConfigMap, a bad name or value, a hop-by-hop header, Host or a forwarding header ingressd sets (X-Forwarded-*, X-Real-IP, X-Request-ID) refuses the ConfigMap"),
    K('server-name-hash-max-size', NOT_NEEDED, _H, '1024', INT, note=_TUNING),
    K('server-name-hash-bucket-size', NOT_NEEDED, _H, None, INT, note=_TUNING),
    K('proxy-headers-hash-max-size', NOT_NEEDED, _H, '512', INT, note=_TUNING),
    K('proxy-headers-hash-bucket-size', NOT_NEEDED, _H, '64', INT, note=_TUNING),
    K('reuse-port', NOT_NEEDED, _H, 'true', BOOL, note=_TUNING),
    K('server-tokens', IMPLEMENTED, _H, 'false', BOOL, maps='setting:server-tokens', note="true: Server: ingressd/<version> on every response (false: none, as ingress-nginx clears it); as --server-tokens gives it; " + _LIVE),
    K('ssl-ciphers', IMPLEMENTED, _H, 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256', TEXT, maps='setting:ssl-ciphers', note='live: new handshakes use it (every TLS context is made anew), open connections keep theirs; a value other than the default wins over --ssl-ciphers'),
    K('ssl-ecdh-curve', PARTIAL, _H, 'auto', TEXT, maps='setting:ssl-ecdh-curve', note="live; one of prime256v1 (P-256), secp384r1, secp521r1 restricts every handshake to that curve as nginx does; X25519, X448, ffdhe* or a list of several keeps OpenSSL's default groups (pyOpenSSL sets one curve only), said in the log; an unknown group refuses the ConfigMap"),
    K('ssl-dh-param', IMPLEMENTED, _H, '', TEXT, maps='setting:ssl-dh-param', note='live: the Secret (namespace/name) is watched, its dhparam.pem enables the DHE suites of ssl-ciphers for new handshakes; a missing Secret, no dhparam.pem or parameters OpenSSL refuses (unreadable, under 2048 bits) refuse the ConfigMap'),
    K('ssl-protocols', IMPLEMENTED, _H, 'TLSv1.2 TLSv1.3', TEXT, maps='setting:ssl-protocols', note='live: new handshakes use it (every TLS context is made anew), open connections keep theirs; a value other than the default wins over --ssl-protocols'),
    K('ssl-session-cache', IMPLEMENTED, _H, 'true', BOOL, maps='setting:ssl-session-cache', note='live: new handshakes use it (every TLS context is made anew), open connections keep theirs; a value other than the default wins over --ssl-session-cache'),
    K('ssl-session-cache-size', NOT_NEEDED, _H, '10m', TEXT, note=_TUNING),
    K('ssl-session-tickets', PARTIAL, _H, 'false', BOOL, maps='setting:ssl-session-tickets', note="live, as ssl-ciphers; ingressd's default is on (OpenSSL drops a cached TLS 1.2 session whose client closed without close_notify: without tickets most would not resume), so false, ingress-nginx's default, asks for nothing here: --ssl-session-tickets off turns them off"),
    K('ssl-session-ticket-key', NOT_YET, _H, None, TEXT, owner='tls', note="pyOpenSSL has no public way to set session ticket keys (SSL_CTX_set_tlsext_ticket_keys is reachable only through its private bindings, which ingressd does not use): each replica's ticket keys are its own and random, so a ticket resumes on the replica that issued it only (a full handshake elsewhere)"),
    K('ssl-session-timeout', IMPLEMENTED, _H, '10m', TEXT, maps='setting:ssl-session-timeout', note='live: new handshakes use it (every TLS context is made anew), open connections keep theirs; a value other than the default wins over --ssl-session-timeout'),
    K('ssl-buffer-size', NOT_NEEDED, _H, '4k', TEXT, note=_TUNING),
    K('use-proxy-protocol', IMPLEMENTED, _N, 'false', BOOL, maps='setting:proxy-protocol', note="every connection (HTTP and HTTPS) starts with a PROXY protocol v1 or v2 header, one without is closed; as --proxy-protocol gives it, applied live to new connections (a value other than ingress-nginx's default wins over the option)"),
    K('proxy-protocol-header-timeout', IMPLEMENTED, _H, '5s', TEXT, maps='setting:proxy-protocol-header-timeout', note="applied live to new connections (a value other than ingress-nginx's default wins over the option)"),
    K('enable-aio-write', NOT_NEEDED, _H, 'true', BOOL, note=_TUNING),
    K('use-gzip', IMPLEMENTED, _H, 'false', BOOL, maps='setting:use-gzip', note="as nginx's gzip filter with ingress-nginx's gzip_proxied any, gzip_vary on, gzip_http_version 1.1: statuses 200, 403 and 404, not HEAD, not already encoded, text/html or gzip-types, at least gzip-min-length when the length is known; streamed, each piece flushed; ETag weakened, Content-Length and Accept-Ranges dropped"),
    K('use-geoip', NOT_NEEDED, _H, 'true', BOOL, note='GeoIP variables are only used by snippets and custom log formats'),
    K('use-geoip2', NOT_NEEDED, _H, 'false', BOOL, note='GeoIP variables are only used by snippets and custom log formats'),
    K('geoip2-autoreload-in-minutes', NOT_NEEDED, _H, '0', INT, note=_TUNING),
    K('enable-brotli', IMPLEMENTED, _H, 'false', BOOL, maps='setting:enable-brotli', note="as ngx_brotli (preferred over gzip when both are on and the client accepts br); the same rules as use-gzip but brotli's own level, minimum length and types; Vary: Accept-Encoding is added with brotli alone too (nginx: only with gzip_vary on)"),
    K('brotli-level', IMPLEMENTED, _H, '4', INT, maps='setting:brotli-level', note="0 to 11"),
    K('brotli-min-length', IMPLEMENTED, _H, '20', INT, maps='setting:brotli-min-length', note="bytes; a response of unknown length is compressed"),
    K('brotli-types', IMPLEMENTED, _H, 'application/xml+rss application/atom+xml application/javascript application/x-javascript application/json application/rss+xml application/vnd.ms-fontobject application/x-font-ttf application/x-web-app-manifest+json application/xhtml+xml application/xml font/opentype image/svg+xml image/x-icon text/css text/javascript text/plain text/x-component', TEXT, maps='setting:brotli-types', note="space-separated MIME types besides text/html; * any"),
    K('use-http2', IMPLEMENTED, _H, 'true', BOOL, maps='setting:no-http2', note="false: h2 is no longer chosen by ALPN on new TLS connections, nor h2c with prior knowledge on new plain connections (HTTP/2 connections already open finish as they are); the inverse of --no-http2; applied live (a value other than ingress-nginx's default wins over the option)"),
    K('gzip-disable', IMPLEMENTED, _H, '', TEXT, maps='setting:gzip-disable', note="a regular expression on User-Agent, case-insensitive, in RE2 (one it cannot compile refuses the ConfigMap); msie6: MSIE 4 to 6 without SV1"),
    K('gzip-level', IMPLEMENTED, _H, '1', INT, maps='setting:gzip-level', note="1 to 9"),
    K('gzip-min-length', IMPLEMENTED, _H, '256', INT, maps='setting:gzip-min-length', note="bytes; a response of unknown length is compressed"),
    K('gzip-types', IMPLEMENTED, _H, 'application/atom+xml application/javascript application/x-javascript application/json application/rss+xml application/vnd.ms-fontobject application/x-font-ttf application/x-web-app-manifest+json application/xhtml+xml application/xml font/opentype image/svg+xml image/x-icon text/css text/javascript text/plain text/x-component', TEXT, maps='setting:gzip-types', note="space-separated MIME types besides text/html; * any"),
    K('worker-processes', PARTIAL, _H, None, TEXT, maps='option:workers', note=_RESTART),
    K('worker-cpu-affinity', NOT_NEEDED, _H, '', TEXT, note=_TUNING),
    K('worker-shutdown-timeout', PARTIAL, _H, '240s', TEXT, maps='option:shutdown-grace', note=_RESTART),
    K('enable-serial-reloads', NOT_NEEDED, _H, 'false', BOOL, note=_TUNING),
    K('load-balance', IMPLEMENTED, _H, 'round_robin', WORD, maps='annotation:load-balance'),
    K('variables-hash-bucket-size', NOT_NEEDED, _H, '256', INT, note=_TUNING),
    K('variables-hash-max-size', NOT_NEEDED, _H, '2048', INT, note=_TUNING),
    K('upstream-keepalive-connections', IMPLEMENTED, _H, '320', INT, maps='setting:upstream-keepalive-connections', note="idle backend connections kept per endpoint (HTTP/1 and HTTPS pools), from the next response"),
    K('upstream-keepalive-time', IMPLEMENTED, _H, '1h', TEXT, maps='setting:upstream-keepalive-time', note="nginx's keepalive_time: a backend connection opened that long ago is closed once its request is done, not reused; applied live"),
    K('upstream-keepalive-timeout', IMPLEMENTED, _H, '60', INT, maps='setting:upstream-keepalive-timeout', note="seconds an idle backend connection is kept"),
    K('upstream-keepalive-requests', IMPLEMENTED, _H, '10000', INT, maps='setting:upstream-keepalive-requests', note="requests a backend connection serves before it is closed"),
    K('limit-conn-zone-variable', IMPLEMENTED, _N, '$binary_remote_addr', TEXT, maps='setting:limit-conn-zone-variable', note="what limit-connections, limit-rps and limit-rpm count by (ingress-nginx's $limit_ID map): nginx variables ($http_NAME, $cookie_NAME, $arg_NAME, $host, $remote_addr…); one ingressd cannot evaluate refuses the ConfigMap; an empty key is not counted; limit-allowlist still checks the client address"),
    K('proxy-stream-timeout', IMPLEMENTED, _H, '600s', TEXT, maps='setting:proxy-stream-timeout', note='TCP/UDP services: seconds a connection or session may be idle; live (from the next connection or session; wins over --proxy-stream-timeout)'),
    K('proxy-stream-next-upstream', IMPLEMENTED, _H, 'true', BOOL, maps='setting:proxy-stream-next-upstream', note='TCP services: a failed connect to an endpoint tries the next one; false: the connection is closed (502 in its log line); live'),
    K('proxy-stream-next-upstream-timeout', IMPLEMENTED, _H, '600s', TEXT, maps='setting:proxy-stream-next-upstream-timeout', note='TCP services: no further endpoint is tried once this long has passed since the connection came (0: no limit); live'),
    K('proxy-stream-next-upstream-tries', IMPLEMENTED, _H, '3', INT, maps='setting:proxy-stream-next-upstream-tries', note='TCP services: endpoints tried per connection (0: each endpoint once); live'),
    K('proxy-stream-responses', IMPLEMENTED, _H, '1', INT, maps='setting:proxy-stream-responses', note='UDP services: replies expected per datagram (0: until idle); live (from the next datagram; wins over --proxy-stream-responses)'),
    K('bind-address', NOT_NEEDED, _H, '', TEXT, note='ingressd listens where --http and --https say'),
    K('use-forwarded-headers', IMPLEMENTED, _N, 'false', BOOL, maps='setting:use-forwarded-headers', note="the client address allow lists, rate limits and logs see; as --use-forwarded-headers gives it, applied live (a value other than ingress-nginx's default wins over the option)"),
    K('enable-real-ip', IMPLEMENTED, _N, 'false', BOOL, maps='setting:enable-real-ip', note="the client address allow lists, rate limits and logs see; as --enable-real-ip gives it, applied live (a value other than ingress-nginx's default wins over the option)"),
    K('forwarded-for-header', IMPLEMENTED, _N, 'X-Forwarded-For', TEXT, maps='setting:forwarded-for-header', note="the client address allow lists, rate limits and logs see; as --forwarded-for-header gives it, applied live (a value other than ingress-nginx's default wins over the option)"),
    K('forwarded-for-proxy-protocol-header', NOT_NEEDED, _H, 'X-Forwarded-For-Proxy-Protocol', TEXT, note="the name of a request header ingress-nginx sets internally to combine the PROXY protocol source with use-forwarded-headers (the backend sees it too); ingressd combines them without a header: the forwarded-for header's client when the PROXY source is in proxy-real-ip-cidr, else the PROXY source"),
    K('compute-full-forwarded-for', IMPLEMENTED, _N, 'false', BOOL, maps='setting:compute-full-forwarded-for', note="the client address allow lists, rate limits and logs see; as --compute-full-forwarded-for gives it, applied live (a value other than ingress-nginx's default wins over the option); the chain is passed on only from a trusted peer (ingress-nginx passes anyone's)"),
    K('proxy-add-original-uri-header', IMPLEMENTED, _H, 'false', BOOL, maps='setting:proxy-add-original-uri-header', note="X-Original-URI sent to the backend; applied live (a value other than ingress-nginx's default wins over the option)"),
    K('generate-request-id', IMPLEMENTED, _H, 'true', BOOL, maps='setting:generate-request-id', note="false: a request without X-Request-ID gets none; applied live (a value other than ingress-nginx's default wins over the option)"),
    K('jaeger-collector-host', NOT_NEEDED, _H, '', TEXT, note=_JAEGER),
    K('jaeger-collector-port', NOT_NEEDED, _H, '6831', INT, note=_JAEGER),
    K('jaeger-endpoint', NOT_NEEDED, _H, '', TEXT, note=_JAEGER),
    K('jaeger-service-name', NOT_NEEDED, _H, 'nginx', TEXT, note=_JAEGER),
    K('jaeger-propagation-format', NOT_NEEDED, _H, 'jaeger', TEXT, note=_JAEGER),
    K('jaeger-sampler-type', NOT_NEEDED, _H, 'const', TEXT, note=_JAEGER),
    K('jaeger-sampler-param', NOT_NEEDED, _H, '1', TEXT, note=_JAEGER),
    K('jaeger-sampler-host', NOT_NEEDED, _H, 'http://127.0.0.1', TEXT, note=_JAEGER),
    K('jaeger-sampler-port', NOT_NEEDED, _H, '5778', INT, note=_JAEGER),
    K('jaeger-trace-context-header-name', NOT_NEEDED, _H, 'uber-trace-id', TEXT, note=_JAEGER),
    K('jaeger-debug-header', NOT_NEEDED, _H, 'uber-debug-id', TEXT, note=_JAEGER),
    K('jaeger-baggage-header', NOT_NEEDED, _H, 'jaeger-baggage', TEXT, note=_JAEGER),
    K('jaeger-trace-baggage-header-prefix', NOT_NEEDED, _H, 'uberctx-', TEXT, note=_JAEGER),
    K('enable-opentelemetry', PARTIAL, _H, 'false', BOOL, maps='setting:enable-opentelemetry', note="every route traced (a SERVER span exported over OTLP/gRPC, W3C traceparent sent to the backend) except an Ingress saying enable-opentelemetry: false; live; needs the ingressd[otel] extra (without it, true refuses the ConfigMap). Differs: the 404 of a request no route matches is not traced (ingress-nginx traces its default server's location); an auth-url sub-request gets no span of its own and sends the auth service no traceparent; spans dropped on a full queue are logged, not in /metrics"),
    K('opentelemetry-trust-incoming-span', IMPLEMENTED, _H, 'true', BOOL, maps='setting:opentelemetry-trust-incoming-span', note="false: a client's traceparent is ignored (a new trace); live"),
    K('opentelemetry-operation-name', IMPLEMENTED, _H, '', TEXT, maps='setting:opentelemetry-operation-name', note="the span name; the nginx variables of ingressd's templates ($request_method, $uri, $host…) are expanded, an unknown one refuses the ConfigMap; live"),
    K('opentelemetry-config', NOT_NEEDED, _H, '/etc/ingress-controller/telemetry/opentelemetry.toml', TEXT, note="the path where ingress-nginx writes the module's TOML file from the otel-* keys; ingressd reads those keys directly"),
    K('otlp-collector-host', IMPLEMENTED, _H, '', TEXT, maps='setting:otlp-collector-host', note="OTLP over gRPC in clear, as ingress-nginx's module; empty: spans are made and propagated, not exported; live (a new exporter; the old one sends what it holds)"),
    K('otlp-collector-port', IMPLEMENTED, _H, '4317', INT, maps='setting:otlp-collector-port', note='live'),
    K('otel-max-queuesize', IMPLEMENTED, _H, '2048', INT, maps='setting:otel-max-queuesize', note='spans waiting for export; when full a new span is dropped and counted (logged at 1, 2, 4, 8… drops); live'),
    K('otel-schedule-delay-millis', IMPLEMENTED, _H, '5000', INT, maps='setting:otel-schedule-delay-millis', note='live'),
    K('otel-max-export-batch-size', IMPLEMENTED, _H, '512', INT, maps='setting:otel-max-export-batch-size', note='more than otel-max-queuesize refuses the ConfigMap; live'),
    K('otel-service-name', IMPLEMENTED, _H, 'nginx', TEXT, maps='setting:otel-service-name', note="the spans' service.name; live"),
    K('otel-sampler', IMPLEMENTED, _H, 'AlwaysOn', TEXT, maps='setting:otel-sampler', note='AlwaysOn, AlwaysOff or TraceIdRatioBased (another value refuses the ConfigMap); an unsampled request still gets a traceparent (flags 00); live'),
    K('otel-sampler-parent-based', IMPLEMENTED, _H, 'true', BOOL, maps='setting:otel-sampler-parent-based', note='live'),
    K('otel-sampler-ratio', IMPLEMENTED, _H, '0.01', TEXT, maps='setting:otel-sampler-ratio', note='a number from 0 to 1; live'),
    K('main-snippet', REFUSED, _N, '', TEXT, note='snippets are nginx configuration text; ingressd never pastes configuration into text something interprets'),
    K('http-snippet', REFUSED, _N, '', TEXT, note='snippets are nginx configuration text; ingressd never pastes configuration into text something interprets'),
    K('server-snippet', REFUSED, _N, '', TEXT, note='snippets are nginx configuration text; ingressd never pastes configuration into text something interprets'),
    K('stream-snippet', REFUSED, _N, '', TEXT, note='snippets are nginx configuration text; ingressd never pastes configuration into text something interprets'),
    K('location-snippet', REFUSED, _N, '', TEXT, note='snippets are nginx configuration text; ingressd never pastes configuration into text something interprets'),
    K('custom-http-errors', IMPLEMENTED, _H, '', TEXT, maps='setting:custom-http-errors'),
    K('proxy-body-size', IMPLEMENTED, _N, '1m', SIZE, maps='annotation:proxy-body-size'),
    K('proxy-connect-timeout', IMPLEMENTED, _H, '5', INT, maps='annotation:proxy-connect-timeout'),
    K('proxy-read-timeout', IMPLEMENTED, _H, '60', INT, maps='annotation:proxy-read-timeout'),
    K('proxy-send-timeout', IMPLEMENTED, _H, '60', INT, maps='annotation:proxy-send-timeout'),
    K('proxy-buffers-number', IMPLEMENTED, _H, '4', INT, maps='annotation:proxy-buffers-number'),
    K('proxy-buffer-size', IMPLEMENTED, _H, '4k', SIZE, maps='annotation:proxy-buffer-size'),
    K('proxy-busy-buffers-size', NOT_NEEDED, _H, '', TEXT, note='ingressd hands the client whatever it takes; no buffers wait as busy'),
    K('proxy-cookie-path', IMPLEMENTED, _C, 'off', WORD, maps='annotation:proxy-cookie-path'),
    K('proxy-cookie-domain', IMPLEMENTED, _C, 'off', WORD, maps='annotation:proxy-cookie-domain'),
    K('proxy-next-upstream', IMPLEMENTED, _H, 'error timeout', TEXT, maps='annotation:proxy-next-upstream'),
    K('proxy-next-upstream-timeout', IMPLEMENTED, _H, '0', INT, maps='annotation:proxy-next-upstream-timeout'),
    K('proxy-next-upstream-tries', IMPLEMENTED, _H, '3', INT, maps='annotation:proxy-next-upstream-tries'),
    K('proxy-redirect-from', IMPLEMENTED, _C, 'off', WORD, maps='annotation:proxy-redirect-from'),
    K('proxy-request-buffering', IMPLEMENTED, _H, 'on', WORD, maps='annotation:proxy-request-buffering'),
    K('ssl-redirect', IMPLEMENTED, _C, 'true', BOOL, maps='annotation:ssl-redirect'),
    K('force-ssl-redirect', IMPLEMENTED, _C, 'false', BOOL, maps='annotation:force-ssl-redirect'),
    K('denylist-source-range', IMPLEMENTED, _N, '', TEXT, maps='annotation:denylist-source-range'),
    K('whitelist-source-range', IMPLEMENTED, _N, '', TEXT, maps='annotation:allowlist-source-range'),
    K('skip-access-log-urls', IMPLEMENTED, _H, '', TEXT, maps='setting:skip-access-log-urls', note="applied live to the access log (a value other than ingress-nginx's default wins over the option)"),
    K('limit-rate', IMPLEMENTED, _N, '0', INT, maps='annotation:limit-rate'),
    K('limit-rate-after', IMPLEMENTED, _N, '0', INT, maps='annotation:limit-rate-after'),
    K('lua-shared-dicts', NOT_NEEDED, _H, '', TEXT, note=_TUNING),
    K('http-redirect-code', IMPLEMENTED, _C, '308', INT, maps='setting:http-redirect-code'),
    K('proxy-buffering', IMPLEMENTED, _H, 'off', WORD, maps='annotation:proxy-buffering'),
    K('limit-req-status-code', IMPLEMENTED, _H, '503', INT, maps='setting:limit-req-status-code'),
    K('limit-conn-status-code', IMPLEMENTED, _H, '503', INT, maps='setting:limit-conn-status-code'),
    K('global-rate-limit-status-code', IMPLEMENTED, _H, '429', INT, maps='setting:global-rate-limit-status-code', note="the status over global-rate-limit (with Retry-After), live; replaces --global-rate-limit-status-code"),
    K('global-rate-limit-memcached-host', NOT_NEEDED, _H, '', TEXT, note=_MEMCACHED),
    K('global-rate-limit-memcached-port', NOT_NEEDED, _H, '11211', INT, note=_MEMCACHED),
    K('global-rate-limit-memcached-connect-timeout', NOT_NEEDED, _H, '50', INT, note=_MEMCACHED),
    K('global-rate-limit-memcached-max-idle-timeout', NOT_NEEDED, _H, '10000', INT, note=_MEMCACHED),
    K('global-rate-limit-memcached-pool-size', NOT_NEEDED, _H, '50', INT, note=_MEMCACHED),
    K('enable-syslog', PARTIAL, _H, 'false', BOOL, maps='setting:enable-syslog', note="live: the HTTP access-log lines go to syslog-host:syslog-port over UDP instead of the file, as nginx sends them (RFC 3164, <190>, tag nginx); a datagram that cannot be sent is dropped and counted; ingressd's own log (nginx's error_log) stays on its output; without syslog-host the ConfigMap is refused"),
    K('syslog-host', IMPLEMENTED, _H, '', TEXT, maps='setting:syslog-host', note='a host name or IP address, resolved by the log writer thread'),
    K('syslog-port', IMPLEMENTED, _H, '514', INT, maps='setting:syslog-port'),
    K('no-tls-redirect-locations', IMPLEMENTED, _C, '/.well-known/acme-challenge', TEXT, maps='setting:no-tls-redirect-locations'),
    K('global-allowed-response-headers', IMPLEMENTED, _H, '', TEXT, maps='setting:global-allowed-response-headers'),
    K('global-auth-url', IMPLEMENTED, _N, '', TEXT, maps='setting:global-auth-url'),
    K('global-auth-method', IMPLEMENTED, _N, '', WORD, maps='setting:global-auth-method'),
    K('global-auth-signin', IMPLEMENTED, _N, '', TEXT, maps='setting:global-auth-signin'),
    K('global-auth-signin-redirect-param', IMPLEMENTED, _H, 'rd', TEXT, maps='setting:global-auth-signin-redirect-param', note="the global sign-in URL's parameter for the original URL, as auth-signin-redirect-param"),
    K('global-auth-response-headers', IMPLEMENTED, _N, '', TEXT, maps='setting:global-auth-response-headers'),
    K('global-auth-request-redirect', IMPLEMENTED, _H, '', TEXT, maps='setting:global-auth-request-redirect', note='the X-Auth-Request-Redirect sent to the global auth service, as auth-request-redirect'),
    K('global-auth-snippet', REFUSED, _N, '', TEXT, note='snippets are nginx configuration text; ingressd never pastes configuration into text something interprets'),
    K('global-auth-cache-key', IMPLEMENTED, _H, '', TEXT, maps='setting:global-auth-cache-key', note="caches the global auth service's answers per this key and route, as auth-cache-key"),
    K('global-auth-cache-duration', IMPLEMENTED, _H, '200 202 401 5m', TEXT, maps='setting:global-auth-cache-duration', note='as auth-cache-duration (proxy_cache_valid lines); without it the annotation\'s default 200 202 401 5m'),
    K('no-auth-locations', IMPLEMENTED, _N, '/.well-known/acme-challenge', TEXT, maps='setting:no-auth-locations', note='comma-separated; a route whose Ingress path starts with an item skips external, global and basic auth (as isLocationInLocationList); an empty value exempts nothing'),
    K('block-cidrs', IMPLEMENTED, _N, '', TEXT, maps='setting:block-cidrs', note=_BLOCK),
    K('block-user-agents', IMPLEMENTED, _N, '', TEXT, maps='setting:block-user-agents', note=_BLOCK_MAP),
    K('block-referers', IMPLEMENTED, _N, '', TEXT, maps='setting:block-referers', note=_BLOCK_MAP),
    K('proxy-ssl-location-only', NOT_NEEDED, _H, 'false', BOOL, note="proxy-ssl-* annotations apply to the Ingress's own routes"),
    K('default-type', NOT_NEEDED, _H, 'text/html', TEXT, note=_TUNING),
    K('service-upstream', NOT_NEEDED, _H, 'false', BOOL, note="ingressd sends to the Service's ready endpoints: the same pods the ClusterIP would pick"),
    K('ssl-reject-handshake', IMPLEMENTED, _H, 'false', BOOL, maps='setting:ssl-reject-handshake', note='live: a handshake naming no host of an Ingress rule or TLS section (or no name, or a ClientHello ingressd cannot read) is answered with a fatal unrecognized_name alert instead of the default certificate; passthrough hosts are not affected'),
    K('debug-connections', NOT_NEEDED, _H, '', TEXT, note=_TUNING),
    K('strict-validate-path-type', NOT_NEEDED, _H, 'true', BOOL, note='ingressd always validates Exact and Prefix paths strictly'),
    K('grpc-buffer-size-kb', NOT_NEEDED, _H, '0', INT, note=_TUNING),
    K('relative-redirects', IMPLEMENTED, _H, 'false', BOOL, maps='annotation:relative-redirects'),
)


def lookup(name: str) -> Key | None:
    """The catalogue's row for a ConfigMap key, or None for a key ingress-nginx never had."""
    return KEYS.get(name)


_STATUS_TEXT = {IMPLEMENTED: "implemented", PARTIAL: "partial", NOT_NEEDED: "nothing to do",
                REFUSED: "refused by design", NOT_YET: "not yet"}
_IF_IGNORED = {HARMLESS: "applied, with a warning", NARROWS_ACCESS: "ConfigMap refused: would widen access",
               CHANGES_TRAFFIC: "ConfigMap refused: would change where or how traffic goes"}


def _how(key: Key) -> str:
    target = key.target
    if target is None:
        return ""
    how, name = target
    return {"annotation": f"default of the `{name}` annotation (an Ingress's own annotation wins)",
            "setting": f"the server setting `--{name}`, applied live",
            "option": f"the server option `--{name}` (start only)"}[how]


def markdown_table() -> str:
    """The catalogue as the Markdown table of ConfigMap keys in docs/migrating.md."""
    lines = ["| ConfigMap key | ingressd | when ingressd does not honour a value other than the default | notes |",
             "| --- | --- | --- | --- |"]
    for key in sorted(KEYS.values(), key=lambda k: k.name):
        when = "—" if key.honoured else _IF_IGNORED[key.effect]
        notes = []
        if key.default is not None:
            shown = key.default if len(key.default) <= 40 else key.default[:37] + "…"
            notes.append(f"default `{shown}`" if shown else "default empty")
        if _how(key):
            notes.append(_how(key))
        if key.note:
            notes.append(key.note)
        text = "; ".join(notes).replace("|", "\\|")
        lines.append(f"| `{key.name}` | {_STATUS_TEXT[key.status]} | {when} | {text} |")
    return "\n".join(lines) + "\n"


BEGIN = "<!-- configmap keys: begin (generated: python -m ingressd.compat.configmap_catalogue --write docs/migrating.md) -->\n"
END = "<!-- configmap keys: end -->"


def write_into(path: str) -> None:
    """Replace the key table between the markers of the Markdown file ``path``."""
    write_between(path, BEGIN, END, markdown_table())


if __name__ == "__main__":  # python -m ingressd.compat.configmap_catalogue [--write FILE]
    import sys

    if sys.argv[1:2] == ["--write"] and len(sys.argv) == 3:
        write_into(sys.argv[2])
    else:
        print(markdown_table(), end="")
