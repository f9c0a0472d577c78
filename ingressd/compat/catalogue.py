"""ingress-nginx's annotations and where ingressd stands on each: the compatibility contract as data.

One ``Entry`` per ``nginx.ingress.kubernetes.io/`` annotation of ingress-nginx's last release
(v1.15.1: 138 names) and per removed one that old manifests still carry. Each says what
ingressd does with it (``status``) and what ignoring it would do (``effect``). The translator
(through ``ingressd.compat.assess``), ``ingressd check`` and docs/migrating.md all read this table;
tests keep it, the built-in plugins and the docs in agreement.

A value equal to ingress-nginx's own default (``default``) asks for nothing, and so does an
annotation whose switch (``requires``) is not on: both are honoured by definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

# What ingressd does with an annotation.
IMPLEMENTED = "implemented"  # a plugin owns it and behaves as ingress-nginx does
PARTIAL = "partial"  # a plugin owns it; ``note`` names each way it differs
NOT_NEEDED = "not-needed"  # nothing to do: ingressd already behaves as it asks (``note`` says why)
REFUSED = "refused"  # never, by design (``note`` says why and what to use instead)
NOT_YET = "not-yet"  # not implemented yet
STATUSES = (IMPLEMENTED, PARTIAL, NOT_NEEDED, REFUSED, NOT_YET)

# What serving the Ingress while ignoring the annotation would do.
HARMLESS = "harmless"  # neither wider access nor traffic elsewhere: served, with a warning
NARROWS_ACCESS = "narrows access"  # its absence would let in clients it keeps out: not served
CHANGES_TRAFFIC = "changes where or how traffic goes"  # not served
EFFECTS = (HARMLESS, NARROWS_ACCESS, CHANGES_TRAFFIC)

# How a value is compared with the default.
BOOL, INT, SIZE, WORD, TEXT = "bool", "int", "size", "word", "text"


@dataclass(frozen=True, slots=True)
class Entry:
    """One ingress-nginx annotation (``name`` without the prefix)."""

    name: str
    status: str
    effect: str
    default: str | None = None  # ingress-nginx's default value, when setting it asks for nothing
    kind: str = TEXT  # how values compare with ``default``
    requires: str | None = None  # the annotation that switches this one on
    note: str = ""
    removed: bool = False  # gone from ingress-nginx; old manifests still carry it
    ignorable: bool = True  # False: no flag makes ingressd serve the Ingress without it

    @property
    def honoured(self) -> bool:
        """Whether ingressd does what the annotation asks (a plugin or nothing to do)."""
        return self.status in (IMPLEMENTED, PARTIAL, NOT_NEEDED)


def _entries(*entries: Entry) -> Mapping[str, Entry]:
    table = {}
    for entry in entries:
        assert entry.name not in table, entry.name
        assert entry.status in STATUSES and entry.effect in EFFECTS, entry
        table[entry.name] = entry
    return MappingProxyType(table)


E = Entry
_H, _N, _C = HARMLESS, NARROWS_ACCESS, CHANGES_TRAFFIC
_AUTH_URL = "auth-url"
_CANARY = "canary"
_AFFINITY = "affinity"
_TLS_AUTH = "auth-tls-secret"
_MODSEC = "enable-modsecurity"
_OTEL = "enable-opentelemetry"
_OPENTRACING = ("OpenTracing was removed in ingress-nginx v1.10, which ignores it since; enable-opentelemetry "
                "traces requests")
_PROTOCOL = "backend-protocol"  # proxy-ssl-* and fastcgi-* act only with HTTPS, GRPCS or FCGI backends
_READ_SNIPPET = ("read as data, never as nginx text: a subset of nginx (headers, return, rewrite, "
                 "allow/deny, if); any other directive refuses the Ingress, naming it and its line; "
                 "`rewrite … last` and a rewrite without flag do not search the routes again")
_SNIPPET = ("snippets are nginx configuration text; ingressd never pastes an annotation into text "
            "something interprets")

CATALOGUE: Mapping[str, Entry] = _entries(
    # -- implemented by the built-in plugins ---------------------------------------------
    E("ssl-redirect", IMPLEMENTED, _C, "true", BOOL),
    E("force-ssl-redirect", IMPLEMENTED, _C, "false", BOOL),
    E("preserve-trailing-slash", IMPLEMENTED, _H, "false", BOOL),
    E("enable-cors", IMPLEMENTED, _H, "false", BOOL),
    E("cors-allow-origin", IMPLEMENTED, _H, "*", requires="enable-cors"),
    E("cors-allow-methods", IMPLEMENTED, _H, requires="enable-cors"),
    E("cors-allow-headers", IMPLEMENTED, _H, requires="enable-cors"),
    E("cors-expose-headers", IMPLEMENTED, _H, requires="enable-cors"),
    E("cors-allow-credentials", IMPLEMENTED, _H, "true", BOOL, requires="enable-cors"),
    E("cors-max-age", IMPLEMENTED, _H, "1728000", INT, requires="enable-cors"),
    E("limit-rps", IMPLEMENTED, _N, "0", INT),
    E("limit-rpm", IMPLEMENTED, _N, "0", INT),
    E("limit-connections", IMPLEMENTED, _N, "0", INT),
    E("limit-burst-multiplier", IMPLEMENTED, _N, "5", INT),
    E("limit-allowlist", IMPLEMENTED, _N),
    E("limit-whitelist", IMPLEMENTED, _N, note="the old name of limit-allowlist"),
    E("allowlist-source-range", IMPLEMENTED, _N),
    E("whitelist-source-range", IMPLEMENTED, _N, note="the old name of allowlist-source-range"),
    E("denylist-source-range", IMPLEMENTED, _N),
    E("auth-type", IMPLEMENTED, _N, note="basic; auth-type digest rejects the Ingress (never served open)"),
    E("auth-secret", IMPLEMENTED, _N, requires="auth-type"),
    E("auth-secret-type", IMPLEMENTED, _N, "auth-file", WORD, requires="auth-type"),
    E("auth-realm", IMPLEMENTED, _H, requires="auth-type"),
    E("proxy-connect-timeout", IMPLEMENTED, _H, "5", INT),
    E("proxy-read-timeout", IMPLEMENTED, _H, "60", INT),
    E("proxy-send-timeout", IMPLEMENTED, _H, "60", INT),
    E("proxy-body-size", IMPLEMENTED, _N, "1m", SIZE),
    E("custom-http-errors", PARTIAL, _H,
      note="the client gets the error backend's page with the original status code, never the "
           "error backend's own status (ingress-nginx relays it, so a 200 from the error backend "
           "could turn a 401 or 503 into a 200: CVE-2026-24513)"),
    E("default-backend", PARTIAL, _C,
      note="error pages keep the original status code, as for custom-http-errors"),
    E("disable-proxy-intercept-errors", IMPLEMENTED, _H, "false", BOOL),
    E("upstream-vhost", IMPLEMENTED, _C, note="the Host header sent to the backend"),
    E("connection-proxy-header", PARTIAL, _H,
      note="a WebSocket upgrade keeps `Connection: upgrade` (ingress-nginx would send the value and "
           "break the upgrade)"),
    E("proxy-redirect-from", IMPLEMENTED, _C, "off", WORD, note="rewriting the backend's Location headers"),
    E("proxy-redirect-to", IMPLEMENTED, _C, "off", WORD, requires="proxy-redirect-from"),
    E("proxy-cookie-domain", IMPLEMENTED, _C, "off", WORD),
    E("proxy-cookie-path", IMPLEMENTED, _C, "off", WORD),
    E("configuration-snippet", PARTIAL, _C, note=_READ_SNIPPET),
    E("server-snippet", PARTIAL, _C,
      note=_READ_SNIPPET + "; it serves every route of its host, the oldest Ingress's when several set one, "
           "and its proxy_set_header has no effect, as in ingress-nginx"),
    # -- nothing to do: ingressd already behaves as they ask ------------------------------
    E("client-body-buffer-size", IMPLEMENTED, _H, "8k", SIZE,
      note="without it ingressd keeps 64 KiB of a request body in memory (nginx: 8k) before a temporary file"),
    E("proxy-buffer-size", IMPLEMENTED, _H, "4k", SIZE,
      note="sizes the memory of a read-ahead response (with proxy-buffers-number); a backend's response "
           "head larger than it is not refused (nginx: 502, upstream sent too big header)"),
    E("proxy-buffers-number", IMPLEMENTED, _H, "4", INT, note="with proxy-buffer-size: a read-ahead response's memory"),
    E("proxy-busy-buffers-size", NOT_NEEDED, _H,
      note="ingressd hands the client whatever it takes; no buffers wait as busy"),
    E("proxy-max-temp-file-size", IMPLEMENTED, _H, "1024m", SIZE,
      note="a read-ahead response beyond memory goes to a temporary file in --temp-path"),
    E("proxy-buffering", IMPLEMENTED, _H, "off", WORD,
      note="`on` reads the response ahead of a slow client and releases the backend when it is done; "
           "a backend's X-Accel-Buffering overrides it per response, as nginx"),
    E("proxy-request-buffering", IMPLEMENTED, _H, "on", WORD,
      note="`off` streams the body to the backend (chunked when its length is unknown, buffered whole "
           "with proxy-http-version 1.0, as nginx); no retry once a byte was sent"),
    E("proxy-http-version", IMPLEMENTED, _H, "1.1", WORD,
      note="a 1.0 request's connection is not reused, as nginx's"),
    E("enable-global-auth", IMPLEMENTED, _H, "true", BOOL,
      note="`false` opts the route out of the controller's `--global-auth-url`"),
    E("service-upstream", IMPLEMENTED, _C, "false", BOOL,
      note="`true`: the Service's cluster IP and port are the route's one endpoint; a headless or "
           "ExternalName Service keeps its endpoints, as ingress-nginx falls back"),
    E("load-balance", IMPLEMENTED, _H, "round_robin", WORD,
      note="round_robin and ewma (ingress-nginx's ewma.lua: 10 s decay, the lower of two random endpoints, new "
           "endpoints start at the average); chash, chashsubset, sticky_* reject the Ingress (they come from "
           "upstream-hash-by and affinity)"),
    # -- refused by design ---------------------------------------------------------------
    E("stream-snippet", REFUSED, _C, note=_SNIPPET),
    E("auth-snippet", REFUSED, _N, requires=_AUTH_URL, note=_SNIPPET),
    E("modsecurity-snippet", REFUSED, _N, note=_SNIPPET),
    # -- not yet: ignoring them would widen access ---------------------------------------
    E(_AUTH_URL, IMPLEMENTED, _N,
      note="external authentication, e.g. oauth2-proxy: 2xx proxies, 401 answers 401 (or the sign-in "
           "redirect), 403 answers 403, anything else (another status, a timeout, a refused connection) "
           "answers 500, never the backend; Ingress paths under an item of no-auth-locations (default "
           "/.well-known/acme-challenge) are not authenticated; variables are substituted as data (a byte that is not visible "
           "ASCII is percent-encoded); the sub-request's X-Forwarded-Host is the host ingressd decided "
           "(ingress-nginx passes on the client's own)"),
    E("auth-signin", IMPLEMENTED, _N, requires=_AUTH_URL,
      note="an invalid value rejects the Ingress (ingress-nginx ignores it)"),
    E("auth-signin-redirect-param", IMPLEMENTED, _N, "rd", requires=_AUTH_URL),
    E("auth-method", IMPLEMENTED, _N, "GET", WORD, requires=_AUTH_URL),
    E("auth-response-headers", IMPLEMENTED, _N, requires=_AUTH_URL,
      note="a listed header the auth answer lacks is removed from the request (a client's copy never "
           "reaches the backend); hop-by-hop names and Host reject the Ingress"),
    E("auth-request-redirect", IMPLEMENTED, _N, requires=_AUTH_URL),
    E("auth-proxy-set-headers", IMPLEMENTED, _N, requires=_AUTH_URL,
      note="a missing ConfigMap or an invalid header in it answers 503 for the route, as ingress-nginx"),
    E("auth-cache-key", IMPLEMENTED, _N, requires=_AUTH_URL,
      note="per route and key; answers with Set-Cookie, Vary or Cache-Control no-store/no-cache/private "
           "are not kept; bounded in entries and bytes"),
    E("auth-cache-duration", IMPLEMENTED, _N, requires=_AUTH_URL),
    E("auth-keepalive", PARTIAL, _H, "0", INT, requires=_AUTH_URL,
      note="connections to the auth service are always pooled and reused (the server's upstream pool)"),
    E("auth-keepalive-requests", PARTIAL, _H, "1000", INT, requires=_AUTH_URL,
      note="validated; the server's pool decides how long a connection is reused"),
    E("auth-keepalive-timeout", PARTIAL, _H, "60", INT, requires=_AUTH_URL,
      note="validated; the server's pool decides how long an idle connection is kept"),
    E("auth-keepalive-share-vars", IMPLEMENTED, _H, "false", BOOL, requires=_AUTH_URL,
      note="nginx variables shared with a Lua sub-request: nothing to share in ingressd"),
    E("auth-always-set-cookie", IMPLEMENTED, _N, "false", BOOL, requires=_AUTH_URL),
    E(_TLS_AUTH, PARTIAL, _N,
      note="client certificates asked in the handshake by SNI, per host (the oldest Ingress of a host decides); "
           "fails closed where ingress-nginx would not: a Secret without a usable ca.crt (or ca.crl) answers 403 "
           "for the host (ingress-nginx serves it unverified), a plain-HTTP request to a verify-client on host "
           "is answered as one without certificate, and TLS sessions are not resumed on such hosts"),
    E("auth-tls-verify-client", IMPLEMENTED, _N, requires=_TLS_AUTH,
      note="an invalid value rejects the Ingress (ingress-nginx falls back to on)"),
    E("auth-tls-verify-depth", IMPLEMENTED, _N, "1", INT, requires=_TLS_AUTH),
    E("auth-tls-error-page", PARTIAL, _N, requires=_TLS_AUTH,
      note="a URL (302 to it); a local path or @location (nginx's internal redirect) rejects the Ingress"),
    E("auth-tls-pass-certificate-to-upstream", IMPLEMENTED, _N, "false", BOOL, requires=_TLS_AUTH),
    E("auth-tls-match-cn", IMPLEMENTED, _N, requires=_TLS_AUTH,
      note="matched by RE2 (linear time), as Go validated it; no look-around or back-references"),
    E("satisfy", IMPLEMENTED, _N, "all", WORD,
      note="`any`: an allow/deny list, basic or external authentication letting the request through "
           "suffices; the allow/deny rules of a configuration-snippet are not combined; a value other "
           "than any or all rejects the Ingress (ingress-nginx reads it as all)"),
    E(_MODSEC, NOT_YET, _N, "false", BOOL, note="ModSecurity web application firewall"),
    E("enable-owasp-core-rules", NOT_YET, _N, "false", BOOL, requires=_MODSEC),
    E("modsecurity-transaction-id", NOT_YET, _H, requires=_MODSEC),
    E("limit-rate", IMPLEMENTED, _N, "0", INT, note="kilobytes per second to the client, per request, as nginx's"),
    E("limit-rate-after", IMPLEMENTED, _N, "0", INT, requires="limit-rate"),
    # -- not yet: ignoring them would send traffic elsewhere or otherwise -------------------
    E("rewrite-target", IMPLEMENTED, _C,
      note="patterns in RE2 (linear time): one with look-around or back-references, or a target "
           "with variables other than $1…$9, $scheme, $host, $uri, $args, $request_uri, rejects "
           "its Ingress with a message saying so"),
    E("use-regex", IMPLEMENTED, _C, "false", BOOL,
      note="turns every path of the host, in every Ingress, into a case-insensitive regular "
           "expression, as ingress-nginx does; RE2 syntax (no look-around, no back-references)"),
    E("x-forwarded-prefix", IMPLEMENTED, _C, requires="rewrite-target"),
    E("app-root", PARTIAL, _C,
      note="applies to requests for / that the Ingress's own paths route (ingress-nginx: any "
           "request for / on the host, whichever Ingress routes it)"),
    E("permanent-redirect", IMPLEMENTED, _C,
      note="`return CODE URL`: the Location is the URL as written, nothing of the request appended"),
    E("permanent-redirect-code", IMPLEMENTED, _C, "301", INT, requires="permanent-redirect",
      note="outside 300–308: 301, as ingress-nginx"),
    E("temporal-redirect", IMPLEMENTED, _C,
      note="wins over permanent-redirect, as ingress-nginx; a URL that is not http(s) rejects the "
           "Ingress (ingress-nginx ignores the annotation)"),
    E("temporal-redirect-code", IMPLEMENTED, _C, "302", INT, requires="temporal-redirect",
      note="outside 300–307: 302, as ingress-nginx"),
    E("from-to-www-redirect", IMPLEMENTED, _C, "false", BOOL,
      note="--http-redirect-code (308) to $scheme://HOST:PORT$request_uri, only when no Ingress has "
           "the other name; its certificate is the Ingress's when it names the other name"),
    E("relative-redirects", IMPLEMENTED, _H, "false", BOOL,
      note="applies to the redirects ingressd makes as nginx would (permanent/temporal-redirect, snippets)"),
    E("use-port-in-redirects", IMPLEMENTED, _H, "false", BOOL,
      note="applies to the redirects ingressd makes as nginx would (permanent/temporal-redirect, snippets)"),
    E(_PROTOCOL, IMPLEMENTED, _C, "HTTP", WORD,
      note="HTTP, HTTPS, AUTO_HTTP, GRPC (HTTP/2 in clear), GRPCS (HTTP/2 over TLS, proxy-ssl-*) and FCGI "
           "(FastCGI responder, a connection per request as fastcgi_keep_conn off; nginx's fastcgi_params, but "
           "SERVER_SOFTWARE is ingressd, a client's Proxy header is not passed as HTTP_PROXY (httpoxy), and the "
           "route's proxy-*-timeout apply where nginx keeps fastcgi_*_timeout at 60s). A gRPC "
           "call ingressd answers itself (dead backend, timeout, 503…) gets HTTP 200 with grpc-status in "
           "trailers (the code a gRPC client derives from nginx's HTTP error; grpc-timeout passed: "
           "DEADLINE_EXCEEDED); gRPC routes are reached over TLS (ALPN h2), over cleartext HTTP/2 with prior "
           "knowledge (h2c) on the plain port (as nginx's listen ... http2 since 1.25.1), or over HTTP/1.1"),
    E("fastcgi-index", IMPLEMENTED, _C, requires=_PROTOCOL,
      note="appended to a URI ending in / for SCRIPT_NAME ($fastcgi_script_name), as nginx's fastcgi_index"),
    E("fastcgi-params-configmap", PARTIAL, _C, requires=_PROTOCOL,
      note="values may use the variables of nginx's fastcgi_params, $uri, $args, $is_args, $host, $request_id, "
           "$http_NAME and $arg_NAME; another refuses the Ingress (nginx -t fails on it)"),
    E("ssl-passthrough", PARTIAL, _C, "false", BOOL,
      note="needs --enable-ssl-passthrough, as in ingress-nginx; without it the Ingress is not served (ingress-nginx "
           "would terminate the host's TLS itself); TLS goes to the Service's ready endpoints (ingress-nginx: its "
           "cluster IP) of the host's / path; a passthrough host whose / path is missing or belongs to an Ingress "
           "without ssl-passthrough has its TLS connections closed (ingress-nginx terminates them, or passes "
           "them to the other Ingress's Service); a server-alias name passes through as its host does (ingress-nginx "
           "terminates it); plain HTTP to the host goes to the backend over TLS for every "
           "path of the Ingress (ingress-nginx: for the / path's Service)"),
    E(_CANARY, PARTIAL, _C, "false", BOOL,
      note="with session affinity on the main route the sticky balancer decides and the canary is not "
           "consulted; a canary without a main Ingress of the same host and path is not served"),
    E("canary-by-header", IMPLEMENTED, _C, requires=_CANARY),
    E("canary-by-header-value", IMPLEMENTED, _C, requires=_CANARY),
    E("canary-by-header-pattern", IMPLEMENTED, _C, requires=_CANARY, note="RE2 syntax"),
    E("canary-by-cookie", IMPLEMENTED, _C, requires=_CANARY),
    E("canary-weight", IMPLEMENTED, _C, "0", INT, requires=_CANARY),
    E("canary-weight-total", IMPLEMENTED, _C, "100", INT, requires=_CANARY),
    E(_AFFINITY, IMPLEMENTED, _C, note="cookie session affinity; the cookie's key is a consistent-hash key "
      "(balanced) or a salted hash of the endpoint (persistent), the same in every replica"),
    E("affinity-mode", IMPLEMENTED, _C, "balanced", WORD, requires=_AFFINITY),
    E("affinity-canary-behavior", IMPLEMENTED, _C, "sticky", WORD, requires=_CANARY,
      note="read on the canary Ingress, as ingress-nginx: sticky makes the canary sticky with the main Ingress's "
           "cookie settings, legacy leaves it without affinity"),
    E("session-cookie-name", IMPLEMENTED, _C, "INGRESSCOOKIE", requires=_AFFINITY),
    E("session-cookie-path", IMPLEMENTED, _C, requires=_AFFINITY),
    E("session-cookie-domain", IMPLEMENTED, _C, requires=_AFFINITY),
    E("session-cookie-max-age", IMPLEMENTED, _C, requires=_AFFINITY),
    E("session-cookie-expires", IMPLEMENTED, _C, requires=_AFFINITY),
    E("session-cookie-secure", IMPLEMENTED, _C, requires=_AFFINITY),
    E("session-cookie-samesite", IMPLEMENTED, _C, requires=_AFFINITY),
    E("session-cookie-conditional-samesite-none", IMPLEMENTED, _C, "false", BOOL, requires=_AFFINITY),
    E("session-cookie-change-on-failure", IMPLEMENTED, _C, "false", BOOL, requires=_AFFINITY),
    E("upstream-hash-by", IMPLEMENTED, _C,
      note="variables $request_uri, $remote_addr, $host, $uri, $args, $query_string, $scheme, $request_method, "
      "$http_NAME, $cookie_NAME, $arg_NAME and text between them; any other variable rejects the Ingress"),
    E("upstream-hash-by-subset", IMPLEMENTED, _C, "false", BOOL, requires="upstream-hash-by",
      note="the sets are cut from the endpoints in address order, so every replica makes the same"),
    E("upstream-hash-by-subset-size", IMPLEMENTED, _C, "3", INT, requires="upstream-hash-by"),
    E("server-alias", IMPLEMENTED, _C,
      note="an alias that is a host of some Ingress, or claimed by an older Ingress, is skipped with a "
           "warning, as in ingress-nginx"),
    E("mirror-target", PARTIAL, _C,
      note="the copy never holds up the client (nginx keeps the client's keep-alive connection until the mirror "
           "answers); at most --mirror-max-in-flight copies outstanding per target, more are dropped; a body over "
           "--mirror-max-body-size is not mirrored; a target without a path is asked for the request's URI (nginx: "
           "/_mirror-<Ingress UID>); variables only in the path ($request_uri, $host, $scheme, $remote_addr, "
           "$request_id); a target that is not an http/https URL with a host rejects the Ingress"),
    E("mirror-host", IMPLEMENTED, _C, requires="mirror-target"),
    E("mirror-request-body", IMPLEMENTED, _C, "on", WORD, requires="mirror-target",
      note="a value other than on or off rejects the Ingress (ingress-nginx falls back to on)"),
    E("proxy-ssl-secret", IMPLEMENTED, _C, note="a client certificate for HTTPS backends", requires=_PROTOCOL),
    E("proxy-ssl-verify", IMPLEMENTED, _C, "off", WORD, requires=_PROTOCOL),
    E("proxy-ssl-verify-depth", IMPLEMENTED, _C, "1", INT, requires=_PROTOCOL),
    E("proxy-ssl-name", IMPLEMENTED, _C, requires=_PROTOCOL),
    E("proxy-ssl-server-name", IMPLEMENTED, _C, "off", WORD, requires=_PROTOCOL),
    E("proxy-ssl-ciphers", IMPLEMENTED, _C, requires=_PROTOCOL),
    E("proxy-ssl-protocols", IMPLEMENTED, _C, requires=_PROTOCOL),
    E("proxy-next-upstream", PARTIAL, _H, "error timeout",
      note="as nginx: a retry only before anything reached the client, POST/LOCK/PATCH once sent only with "
           "non_idempotent, a passed-over answer discarded (the last one passed through); a retry avoids the "
           "endpoints tried while others are ready. Differs: a pooled keep-alive connection the backend had "
           "closed is tried once more on a new connection even with `off` (nginx answers 502); a value "
           "ingress-nginx would replace by the default rejects the Ingress"),
    E("proxy-next-upstream-timeout", IMPLEMENTED, _H, "0", INT),
    E("proxy-next-upstream-tries", PARTIAL, _H, "3", INT,
      note="0 (no limit in nginx) asks each endpoint at most once"),
    E("custom-headers", IMPLEMENTED, _H,
      note="the headers must be listed in --global-allowed-response-headers (ingress-nginx's ConfigMap key "
           "global-allowed-response-headers)"),
    # -- not yet, harmless: logging, tracing, TLS tuning ---------------------------------
    E("enable-access-log", IMPLEMENTED, _H, "true", BOOL,
      note="the route's requests are still counted in /metrics, as in ingress-nginx"),
    E("enable-rewrite-log", IMPLEMENTED, _H, "false", BOOL,
      note="each rewrite (rewrite-target) of the route is written to ingressd's log: the Ingress, the pattern, "
           "the path and the new URI or redirect, as nginx's rewrite_log notice"),
    E(_OTEL, IMPLEMENTED, _H, "false", BOOL,
      note="true traces the Ingress's requests (a SERVER span exported over OTLP/gRPC, traceparent sent to the "
           "backend), false turns the ConfigMap's enable-opentelemetry off for it; needs the ingressd[otel] extra "
           "(without it, true rejects the Ingress)"),
    E("opentelemetry-trust-incoming-span", IMPLEMENTED, _H, "true", BOOL, requires=_OTEL,
      note="read only beside enable-opentelemetry: true, as ingress-nginx's parser"),
    E("opentelemetry-operation-name", IMPLEMENTED, _H, requires=_OTEL,
      note="the span name (letters, digits, _ and -); read only beside enable-opentelemetry: true; without it "
           "the ConfigMap's opentelemetry-operation-name, else the Ingress path (nginx's location name)"),
    E("ssl-ciphers", IMPLEMENTED, _H,
      note="per SNI host, over --ssl-ciphers; TLS 1.3 suites stay OpenSSL's, as nginx's; a list with characters "
           "ingress-nginx refuses or naming no cipher OpenSSL knows rejects the Ingress (ingress-nginx drops the "
           "first, and nginx refuses to reload on the second)"),
    E("ssl-prefer-server-ciphers", IMPLEMENTED, _H, note="per SNI host, over --ssl-prefer-server-ciphers"),
    E("http2-push-preload", NOT_NEEDED, _H, "false", BOOL,
      note="ingress-nginx's nginx (1.27) ignores http2_push_preload: HTTP/2 server push was removed in nginx "
           "1.25.1 (the directive is obsolete: a warning, no effect); its template still writes it"),
    # -- removed from ingress-nginx, still found in old manifests -------------------------
    E("add-base-url", NOT_YET, _H, "false", BOOL, removed=True),
    E("base-url-scheme", NOT_YET, _H, removed=True),
    E("enable-influxdb", NOT_YET, _H, "false", BOOL, removed=True),
    E("influxdb-host", NOT_YET, _H, removed=True),
    E("influxdb-port", NOT_YET, _H, removed=True),
    E("influxdb-measurement", NOT_YET, _H, removed=True),
    E("influxdb-server-name", NOT_YET, _H, removed=True),
    E("enable-opentracing", NOT_NEEDED, _H, "false", BOOL, removed=True, note=_OPENTRACING),
    E("opentracing-trust-incoming-span", NOT_NEEDED, _H, removed=True, note=_OPENTRACING),
    E("global-rate-limit", IMPLEMENTED, _N, "0", INT, removed=True,
      note="removed in ingress-nginx v1.12; served with --redis (a sliding window counter in Redis, shared by "
           "the replicas; docs/operations.md); without --redis, or without global-rate-limit-window (where "
           "ingress-nginx limited nothing), the Ingress is not served"),
    E("global-rate-limit-window", IMPLEMENTED, _N, requires="global-rate-limit", removed=True,
      note="a Go duration (1m, 30s), from 1ms to 168h"),
    E("global-rate-limit-key", IMPLEMENTED, _N, requires="global-rate-limit", removed=True,
      note="nginx variables as the external-auth annotations' ($remote_addr, $http_NAME, $arg_NAME, "
           "$request_uri, literals); an unknown variable rejects the Ingress"),
    E("global-rate-limit-ignored-cidrs", IMPLEMENTED, _N, requires="global-rate-limit", removed=True),
    E("grpc-backend", NOT_YET, _C, "false", BOOL, removed=True,
      note="removed in ingress-nginx 0.21.0 (#3203), whose parsers no longer read it; use backend-protocol: "
           "GRPC (not served, so that a manifest relying on it never reaches a gRPC backend as HTTP/1.1)"),
    E("secure-backends", NOT_YET, _C, "false", BOOL, removed=True, note="now backend-protocol: HTTPS"),
    E("secure-verify-ca-secret", NOT_YET, _C, requires="secure-backends", removed=True),
    E("session-cookie-hash", NOT_NEEDED, _C, requires=_AFFINITY, removed=True,
      note="removed in ingress-nginx 0.24 (#3743): its last release ignores it, as ingressd does; the cookie's "
           "key never names the endpoint in clear"),
    E("upstream-fail-timeout", NOT_YET, _H, removed=True),
    E("upstream-max-fails", NOT_YET, _H, removed=True),
)

CURRENT = tuple(name for name, entry in CATALOGUE.items() if not entry.removed)


def lookup(name: str) -> Entry | None:
    """The entry for an annotation name without its prefix, or None for a name ingress-nginx never had."""
    return CATALOGUE.get(name)


_STATUS_TEXT = {IMPLEMENTED: "implemented", PARTIAL: "partial", NOT_NEEDED: "nothing to do",
                REFUSED: "refused by design", NOT_YET: "not yet"}
_IF_IGNORED = {HARMLESS: "served, with a warning", NARROWS_ACCESS: "not served: would widen access",
               CHANGES_TRAFFIC: "not served: would change where or how traffic goes"}


def markdown_table() -> str:
    """The catalogue as the Markdown table in docs/migrating.md (a test keeps them equal)."""
    lines = ["| annotation | ingressd | when ingressd does not honour it | notes |",
             "| --- | --- | --- | --- |"]
    for entry in sorted(CATALOGUE.values(), key=lambda e: (e.removed, e.name)):
        if entry.honoured:
            when = "—"
        else:
            when = _IF_IGNORED[entry.effect] + ("" if entry.ignorable else " (cannot be ignored)")
        notes = []
        if entry.removed:
            notes.append("removed from ingress-nginx")
        if entry.default is not None:
            notes.append(f"`{entry.default}` (ingress-nginx's default) asks for nothing")
        if entry.requires:
            notes.append(f"no effect without `{entry.requires}`")
        if entry.note:
            notes.append(entry.note)
        lines.append(f"| `{entry.name}` | {_STATUS_TEXT[entry.status]} | {when} | {'; '.join(notes)} |")
    return "\n".join(lines) + "\n"


BEGIN = "<!-- catalogue: begin (generated: python -m ingressd.compat.catalogue --write docs/migrating.md) -->\n"
END = "<!-- catalogue: end -->"


def write_between(path: str, begin: str, end: str, table: str) -> None:
    """Replace what lies between the markers ``begin`` and ``end`` of the Markdown file ``path``
    with ``table`` (the generated tables of docs/migrating.md)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    head, found, rest = text.partition(begin)
    if not found:
        raise SystemExit(f"{path}: no {begin.strip()} marker")
    _, _, tail = rest.partition(end)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(head + begin + table + end + tail)


def write_into(path: str) -> None:
    """Replace the annotation table between the markers of the Markdown file ``path``."""
    write_between(path, BEGIN, END, markdown_table())


if __name__ == "__main__":  # python -m ingressd.compat.catalogue [--write FILE]: the table for docs/migrating.md
    import sys

    if sys.argv[1:2] == ["--write"] and len(sys.argv) == 3:
        write_into(sys.argv[2])
    else:
        print(markdown_table(), end="")
