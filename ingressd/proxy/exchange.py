"""The request path: one ``Exchange`` per request, from the parsed head to the backend.

socket → ``http1`` parses → ``Proxy`` (the handler) makes an Exchange → normalise the
path, the forwarding policy (``ingressd.proxy.forwarding``), match the route → the route's
prepared features in phase order → a connection of the route's upstream protocol
(``interfaces.UpstreamProtocol``: HTTP/1.1 today, ``http1_upstream``), or a WebSocket tunnel
→ the response streamed back, with backpressure both ways (or through a
``response_buffer.ResponseBuffer``: read ahead of a slow client, paced). Every status
ingressd generates itself goes through ``local``.

A request body is read whole before a backend is asked (``request_body.BufferedBody``, as
nginx's default ``proxy_request_buffering on``): a body over the limit is refused with 413
before any backend sees a byte of it. A route whose ``UpstreamSettings.request_buffering`` is
False (``proxy-request-buffering: off``), or whose upstream protocol takes request bodies as
streams (gRPC: ``h2_upstream``), streams it instead, decided in ``_forward`` (``_streams_body``):
the backend is asked at once and takes the body as it arrives, the client paused while the
backend is behind by more than ``_STREAM_WINDOW`` bytes.
"""

from __future__ import annotations

from operator import itemgetter
from time import time as _wall_clock
from typing import Any, Callable

from twisted.python import log

from ingressd.proxy.chain import (
    intercepts,
    run_error_features,
    run_request_features,
    run_response_features,
    with_page_headers,
)
from ingressd.config.entries import AUTO_HTTP, DEFAULT_UPSTREAM
from ingressd.features import ForwardedRequest, LocalResponse, UpstreamSettings
from ingressd.proxy.backend_request import backend_request_head
from ingressd.proxy.forwarding import FORWARDED, SPOOFABLE, ForwardingPolicy
from ingressd.proxy.request_facts import header_facts, request_facts
from ingressd.http.headers import HIDDEN_FROM_BACKEND, HOP_BY_HOP, Headers, connection_tokens, from_backend, serialize
from ingressd.http.http1 import error_page
from ingressd.http.pathnorm import BadPath, lenient_views, normalize, split_target
from ingressd.config.routing import host_of, remembered_host
from ingressd.proxy.canary_choice import choose
from ingressd.proxy.next_upstream import DEFAULT as NEXT_UPSTREAM, exhausted, failure_kind, may_retry
from ingressd.proxy.request_body import BufferedBody
from ingressd.proxy.response_buffer import ResponseBuffer
from ingressd.proxy.route_timeouts import RouteTimers
from ingressd.proxy.tunnel import Tunnel
from ingressd.proxy import grpc_status
from ingressd.proxy.upstream import STREAMED, UpstreamError

_END_TO_END = frozenset((b"host",))
_ABSOLUTE = (b"http://", b"https://")  # an absolute-form request target begins with one
_NOT_FORWARDED = HOP_BY_HOP | FORWARDED
_BODY_ROUND = 262144  # bytes of a held request body sent per reactor round (see _send_buffered)
_ACCEL_BUFFERING = b"x-accel-buffering"  # a backend's say on reading its response ahead (nginx honours it)
_name = itemgetter(0)
_STREAM_WINDOW = 65536  # a streamed request body: bytes the backend may be behind before the client waits
_NOT_IN_101 = frozenset((b"content-length", b"transfer-encoding"))
# Answers after which nginx closes the connection (ngx_http_special_response_handler);
# after any other answer of our own the connection stays open, as there.
_CLOSING_STATUSES = frozenset((400, 413, 414, 500, 501))


class ProxySettings:
    """Process-wide proxy settings: the forwarding policy, and the upstream settings used
    before a route is matched (each route's entry carries its own, laid over the server's)."""

    def __init__(self, trusted_proxies=(), upstream: UpstreamSettings = DEFAULT_UPSTREAM,
                 temp_dir: str | None = None, forwarding: ForwardingPolicy | None = None):
        self.upstream = upstream
        self.forwarding = forwarding if forwarding is not None else ForwardingPolicy(trusted_proxies)
        self.temp_dir = temp_dir  # where bodies beyond memory go (--temp-path; None: the system's)


class Proxy:
    """The handler ``http1`` calls for every request; holds what all exchanges share."""

    def __init__(self, state, upstreams, settings: ProxySettings, clock: Any):
        self.state = state  # .table: the current RouteTable, swapped in one assignment
        # protocol name → interfaces.UpstreamProtocol ("HTTP": HTTP/1.1 in clear); a route's
        # UpstreamSettings.protocol picks one (build_table rejects routes to any other).
        self.upstreams = upstreams
        self.settings = settings
        self.clock = clock
        # Finished exchanges (interfaces.py, beside FinishedExchange): each one at once to
        # ``observers``; once a round, noted with the wall time and this clock, to ``round_observers``
        # in one call (``end_round``); a TLS client connection's at once to ``tls_observers`` too.
        self.observers: list[Callable[["Exchange"], None]] = []
        self.round_observers: list[Callable[[list], None]] = []
        self.tls_observers: list[Callable[["Exchange"], None]] = []
        self._noted: list[tuple] = []  # this round's (exchange, wall time, clock) for round_observers
        self._round_end = getattr(clock, "call_at_round_end", None)  # the reactor's, when it ends rounds
        # Until an observer wants each round's exchanges by the round's end (``want_rounds``), no
        # round end is asked for: the notes wait for ``_UNHURRIED_NOTES`` or an ``end_round`` call.
        self._at_round_end = None
        self._hand_over_at = _UNHURRIED_NOTES  # notes waiting at most: then handed over at once
        self._end_round = self.end_round  # (the bound method made once: asked for every round)
        # A reactor's clock is time.time itself (Twisted's seconds): then one reading is both a note's times.
        self._clock_is_wall = getattr(clock, "seconds", None) is _wall_clock
        self.tunnels_open = 0  # WebSocket tunnels now open
        self.exchanges_open = 0  # requests begun and not yet finished (nginx's "writing" connections)
        # Requests without a body to a plain route take the exchange's plain lane
        # (the end of Exchange.begin); False: every request takes the general steps (the tests
        # compare the two).
        self.flat = True
        self._plain_entries: dict = {}  # RouteEntry → whether it is plain (_plain_entry), bounded
        self._plain_table = None  # the route table those entries belong to

    def __call__(self, protocol, request) -> "Exchange":
        # Exchange.__init__'s lines (and Headers.__init__'s), inline: one exchange a request,
        # without two Python frames (test_request_side pins that both make the same exchange).
        exchange = _new_object(Exchange)
        exchange.proxy = self
        self.exchanges_open += 1
        exchange.protocol = protocol
        exchange.request = request
        exchange.method = request.method
        exchange.version = request.version
        headers = exchange.headers = _new_object(Headers)
        pairs = request.headers
        headers.pairs = pairs if pairs is not None else []
        exchange.peer_ip = exchange.client_ip = protocol.peer_ip
        exchange.scheme = protocol.scheme
        exchange.server_port = protocol.server_port
        exchange.upstream_settings = self.settings.upstream
        exchange.started = self.clock.seconds()
        exchange._tried = ()
        exchange.bytes_sent = exchange._body_bytes = 0
        exchange.request_bytes = getattr(request, "head_bytes", 0)
        exchange._done = exchange._awaiting_body = exchange._client_held = False
        exchange._buffer = exchange._held = exchange._last_piece = exchange._next_round = exchange._backoff = None
        exchange._plain_fields = ()
        exchange._timers = exchange._writer = exchange._finish_callbacks = None
        exchange.websocket = exchange._body_complete = False
        exchange.body_filter = exchange.balancer = None
        exchange._intercepted = 0
        exchange.upstream_trail = ""
        exchange.begin()
        return exchange

    def rejected(self, protocol, request, status: int, bytes_sent: int) -> None:
        """The client side answered ``status`` itself before any exchange took the request (a
        malformed request, a head too large, a timeout): the observers (access log, metrics)
        see it as an exchange with what is known of the request."""
        exchange = Exchange(self, protocol, _known(request))
        exchange.host = host_of(exchange.headers.get(b"host"))
        exchange.status = status
        exchange.bytes_sent = bytes_sent
        exchange._finished()

    @property
    def rounds_wanted(self) -> bool:
        """Whether a round observer asked for each round's end (``want_rounds``)."""
        return self._hand_over_at != _UNHURRIED_NOTES

    @property
    def noted(self) -> int:
        """Finished exchanges noted and not handed over to ``round_observers`` yet."""
        return len(self._noted)

    def want_rounds(self) -> None:
        """A round observer that must have each round's exchanges by the round's end (the access
        log: its lines at most a round late) asks for it here: the proxy then asks the reactor for
        the round's end (``call_at_round_end``) when a round's first exchange finishes, and hands
        the notes over sooner only at ``_ROUND_NOTES``; on a reactor without round ends, at each
        exchange's end. Without it (the metrics alone, which hand the round over themselves before
        anything reads them: ``Metrics.hand_over``) no round end is asked for, and the notes wait
        until ``_UNHURRIED_NOTES`` of them are noted or an observer calls ``end_round``."""
        self.end_round()  # (any notes so far: none of them asked for a round end)
        self._at_round_end = self._round_end
        self._hand_over_at = _ROUND_NOTES if self._round_end is not None else 1

    def end_round(self) -> None:
        """Hand the exchanges noted since the last hand-over to each of ``round_observers`` in
        one call: at the reactor's round end, at ``_ROUND_NOTES`` noted, and whenever an observer
        must have every exchange finished so far (a metrics read, a log settings change, a stop).
        A failing observer is logged; the others still get the batch."""
        noted = self._noted
        if not noted:
            return
        self._noted = []
        for observer in self.round_observers:
            try:
                observer(noted)
            except Exception:
                log.err(None, "ingressd: a round observer failed")

    def is_plain(self, entry, https: bool = False) -> bool:
        """Whether requests to ``entry`` (over https: whose scheme is https) may take the plain
        lane (``_plain_entry``), remembered."""
        return self.plain_fields(entry, https) is not None

    def plain_fields(self, entry, https: bool):
        """None when requests to ``entry`` (over https: whose scheme is https) may not take the
        plain lane; else the response fields the lane sets (features' ``https_response_fields``,
        so only over https; most often none), remembered."""
        table = self.state.table
        if table is not self._plain_table:  # a new route table: the old one's entries are let go
            self._plain_table = table
            self._plain_entries = {}
        known = self._plain_entries.get(entry)
        if known is None:
            if len(self._plain_entries) >= _PLAIN_MEMO:
                self._plain_entries.clear()
            known = self._plain_entries[entry] = _plain_entry(entry, self.upstreams)
        return known[https]

    def use_forwarding(self, policy: ForwardingPolicy) -> None:
        """Serve the next requests with ``policy`` (a changed ConfigMap or SIGHUP): one assignment."""
        settings = self.settings
        self.settings = ProxySettings(upstream=settings.upstream, temp_dir=settings.temp_dir, forwarding=policy)

    def is_trusted(self, protocol) -> bool:
        """Whether the client connection's peer is a trusted proxy (decided once per connection
        and policy: ``protocol.trusted`` holds (policy, answer))."""
        policy = self.settings.forwarding
        known = protocol.trusted
        if known is None or known[0] is not policy:
            known = protocol.trusted = (policy, policy.is_trusted(protocol.peer_ip))
        return known[1]


class Exchange:
    """One request and its response. See ``ingressd.features`` for what plugins may use."""

    # What every exchange sets in __init__ (none has a class default) is kept in slots; the
    # rest goes to the instance's dict as it is set. CPython shares the keys of a class's
    # instance dicts up to 30 names only: an exchange setting more copied them into a dict of
    # its own each time (42 names on the plain lane's keep-alive request before).
    __slots__ = ("__dict__", "__weakref__", "proxy", "protocol", "request", "method", "version", "headers", "peer_ip",
                 "client_ip", "scheme", "server_port", "upstream_settings", "started", "_tried",
                 # Read on every request (body_done, upstream_whole, _finished, request_bytes) and
                 # set in __init__ too: CPython 3.11 reads a slot for ~30 instructions but a class
                 # attribute through the instance for ~230 (it does not specialise that read).
                 "bytes_sent", "_done", "_buffer", "_held", "_client_held", "_awaiting_body", "_last_piece",
                 "_plain_fields", "_timers", "_next_round", "_backoff", "_writer", "_finish_callbacks",
                 "_body_bytes",
                 # The request's size as received, head and body: kept as it grows (body_data)
                 # instead of a property, as the access log and the metrics fold read it once a
                 # request (3.11 calls a property through a frame it cannot specialise).
                 "request_bytes",
                 # Read through the class two or three times an HTTP/2 (gRPC) request before, 14 reads
                 # a call (grpc8): slots set in __init__ too, as the ones above. (Each is a store on
                 # every request, which the plain lane's keep-alive request does not read.)
                 "websocket", "body_filter", "balancer", "_body_complete", "_intercepted",
                 # Read by the access log on every line ($upstream_status): a slot set in __init__ too.
                 "upstream_trail")

    # Values every exchange starts with, as class attributes: an exchange only stores what
    # differs (the request path creates one per request).
    target = b""
    path = ""
    query = b""
    host = ""
    request_id = ""
    route = None
    entry = None
    status = 0
    upstream_address = ""  # nginx's $upstream_addr: after retries, each try's, comma-separated
    upstream_status = 0
    upstream_endpoint = None  # the Endpoint of the last try (a balancer learns from its answer)
    # For metrics and the access log (read by Proxy.observers once the exchange is over):
    upstream_started = 0.0  # clock.seconds() when the backend was asked (last try)
    upstream_ended = 0.0  # … and when its response ended (or it failed)
    upstream_connected = 0.0  # … when it had a connection (nginx's $upstream_connect_time)
    upstream_headed = 0.0  # … when its response head came ($upstream_header_time)
    response_headers = ()  # the response's header pairs as sent ($sent_http_NAME)
    # The response body's length as the backend (or ingressd) gave it, None when unknown: what
    # response features see of it (compression's minimum length).
    response_length: int | None = None
    retries = 0
    error_cause = ""  # why ingressd answered 502/503/504 itself: no_endpoints, read_timeout…
    answered_by = ""  # the plugin whose request feature answered (rate_limit, basic_auth…)
    _has_connection = False
    _forward_callbacks: list | None = None  # on_forward's (callback, body_limit), until announced
    _upstream = None
    _cancel_connect = None
    _plain = False  # in the plain lane (the end of begin)
    _body_sent = False
    _body_ended = False  # the whole body went to the backend (its connection may be reused)
    _first_try: float | None = None  # clock.seconds() when the first endpoint was asked (proxy-next-upstream-timeout)
    _streaming = False  # the body goes to the backend as it arrives (request_buffering off)
    _upstream_paused = False  # the backend does not take more of the body for now
    _response_started = False
    _retried = False
    _canary_decided = False
    _forwarded: "list[tuple[bytes, bytes]] | tuple" = ()
    _tunnel: Tunnel | None = None
    _upstream_error = False  # the status being replaced by an error page is the backend's own

    def __init__(self, proxy: Proxy, protocol, request):
        # (Proxy.__call__ makes the request path's exchanges with these lines inline: keep the two alike.)
        self.proxy = proxy
        proxy.exchanges_open += 1
        self.protocol = protocol
        self.request = request
        self.method: bytes = request.method
        self.version: bytes = request.version
        self.headers = Headers(request.headers)
        self.peer_ip: str = protocol.peer_ip
        self.client_ip: str = protocol.peer_ip
        self.scheme: str = protocol.scheme
        self.server_port: int = protocol.server_port
        # Timeouts, body limit, protocol: the server's until the route is matched, then the route's.
        self.upstream_settings: UpstreamSettings = proxy.settings.upstream
        self.started = proxy.clock.seconds()
        self._tried: tuple = ()  # endpoints asked already (a tuple: no hash of an Endpoint per request)
        # Slots every request reads (see __slots__), as class defaults would have said:
        self.bytes_sent = 0
        self._done = False
        self._body_bytes = 0
        self.request_bytes: int = getattr(request, "head_bytes", 0)  # head and body as received
        self._buffer: BufferedBody | None = None  # the request body, held until a backend takes it
        self._held: BufferedBody | None = None  # the whole body, kept to be sent again (proxy-next-upstream)
        self._awaiting_body = False  # the backend is asked once the body is complete
        self._client_held = False  # the client's reading is paused until the backend takes more of the body
        self._last_piece: bytes | None = None  # a streamed body's last piece, sent with its end by body_done
        self._next_round = None  # the call sending more of the held body in the reactor's next round
        self._backoff = None  # the call making the next try after a retry policy's backoff
        self._plain_fields: tuple = ()  # the response fields the plain lane sets (Proxy.plain_fields)
        self._timers: RouteTimers | None = None  # the route's own time limits (Route.timeouts), if it has some
        # The response body between backend and client when the route reads ahead of the client
        # (proxy-buffering) or paces it (limit-rate); None: written straight through.
        self._writer: ResponseBuffer | None = None
        self._finish_callbacks: list[Callable[[], None]] | None = None
        self.websocket = False
        # A response feature's ``features.BodyFilter`` (compression): the body's bytes pass through
        # it on their way to the client, which then gets them without a length (chunked).
        self.body_filter = None
        # Where this request goes instead of the route's endpoints: set by a request feature
        # (the default-backend annotation when the route's Service has no ready endpoints), an
        # object whose ``pick(exclude)`` returns the next Endpoint, as ``RouteEntry.pick``.
        self.balancer = None
        self._body_complete = False
        self._intercepted = 0
        # The statuses of tries passed over ("502, 503, "), "" after one try: $upstream_status is
        # upstream_status alone while it is "" (what the access log reads without the property's call).
        self.upstream_trail = ""

    # -- what features use ----------------------------------------------------------------

    def on_finish(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the exchange is over (answered or abandoned)."""
        if self._finish_callbacks is None:
            self._finish_callbacks = []
        self._finish_callbacks.append(callback)

    def on_forward(self, callback: Callable[[ForwardedRequest], None], body_limit: int = 0) -> None:
        """Call ``callback`` once with the ``ForwardedRequest`` as it leaves for the backend
        (the body complete; ``body`` given when at most ``body_limit`` bytes), e.g. a mirror."""
        if self._forward_callbacks is None:
            self._forward_callbacks = []
        self._forward_callbacks.append((callback, body_limit))

    def _announce_forward(self) -> None:
        callbacks, self._forward_callbacks = self._forward_callbacks, None
        headers = tuple(self._upstream_headers())
        length = self._body_length()
        buffer = self._buffer
        for callback, limit in callbacks:
            body = None
            if length and limit and buffer is not None and self._body_complete:  # not a streamed one
                body = buffer.copy(limit)
            elif length is not None and length == 0 and limit:
                body = b""
            try:
                callback(ForwardedRequest(self.method, self.target, headers, length, body))
            except Exception:
                log.err(None, "ingressd: an on_forward callback failed")

    @property
    def connect_timeout(self) -> float:
        return self.upstream_settings.connect_timeout

    @property
    def read_timeout(self) -> float:
        return self.upstream_settings.read_timeout

    @property
    def send_timeout(self) -> float:
        return self.upstream_settings.send_timeout

    @property
    def max_body_size(self) -> int:
        return self.upstream_settings.max_body_size

    @property
    def https(self) -> bool:
        """Whether the client's own connection is TLS (nginx's ``$https``), whatever
        ``scheme`` a trusted proxy's X-Forwarded-Proto made of it."""
        return self.protocol.scheme == "https"

    @property
    def client_certificate(self):
        """What the client's TLS certificate proved (``tls.client_auth.ClientCertificate``)."""
        return self.protocol.client_certificate()

    @property
    def request_uri(self) -> bytes:
        """The request target as the client sent it (nginx's ``$request_uri``), whatever a
        rewrite made of ``target``."""
        target = self.request.target
        hash_at = target.find(b"#")
        return target if hash_at < 0 else target[:hash_at]

    @property
    def tunnel_bytes(self) -> tuple[int, int]:
        """WebSocket bytes (client → backend, backend → client) once tunnelled."""
        tunnel = self._tunnel
        return (tunnel.bytes_up, tunnel.bytes_down) if tunnel is not None else (0, 0)

    # -- start ----------------------------------------------------------------------------

    def begin(self) -> None:
        request = self.request
        # The target and the headers read in one call (request_facts) when the target needs no
        # normalising; otherwise _read_head's general steps (which may answer 400).
        facts = request_facts(request.target, self.headers.pairs, FORWARDED, SPOOFABLE)
        if facts is None:
            facts = self._read_head()
            if facts is None:
                return
        self.path, self.query, self.target, host, rid, upgrade, self._has_connection, spoofed, forwarded = facts
        # (``host``: the Host field's value until here; its routing key, remembered, without host_of's call)
        self.host = host = remembered_host(host) or host_of(host)
        proxy = self.proxy  # (read once: begin runs once per request)
        policy = proxy.settings.forwarding
        known = self.protocol.trusted  # is_trusted's answer for the connection, without its call
        self.request_id, self.client_ip, self.scheme, self._forwarded = policy.decide(
            self.headers, facts[3], rid, spoofed, forwarded, self.peer_ip, self.scheme, self.server_port,
            known[1] if known is not None and known[0] is policy else proxy.is_trusted(self.protocol),
            self.request_uri if policy.add_original_uri else b"")
        websocket = bool(request.upgrade and upgrade and upgrade.strip().lower() == b"websocket")
        if websocket:  # (False: the class's)
            self.websocket = True
        table = proxy.state.table
        misdirected = table.misdirected
        if misdirected is not None and self.https \
                and misdirected.misdirected(self.client_certificate.server_name, host):
            self.local(421)  # another Gateway HTTPS listener's host (tls/misdirected.py)
            return
        path = self.path
        # match's first step inline: its memo of (host, path) → entry when the table has no
        # HTTPS-only part (``secure``); anything else (and an answer not remembered) is match's.
        entry = table.cache.get((host, path)) if table.secure is None else None
        if entry is None:
            entry = table.match(host, path, self)
        if entry is None:
            self.local(404)
            return
        for view in lenient_views(path):
            other = table.match(host, view, self)
            if other is not None and other is not entry and other.request_features \
                    and other.request_features != entry.request_features:
                self.local(400)  # a backend could read this as a path with other protection
                return
        self.route = route = entry.route
        weighted = entry.weighted
        if weighted is not None and weighted.entries is not None:  # backendRefs with filters of their own
            entry = self._member_entry(entry, weighted)
            route = entry.route
        self.entry = entry
        self.upstream_settings = entry.upstream
        if route.timeouts is not None:
            self._timers = RouteTimers(proxy.clock, route.timeouts, self.started, self._request_timed_out)
        if not request.chunked and not request.content_length and not websocket and proxy.flat:
            # A route's HTTPS requests may pass features that then only set response fields
            # (ssl-redirect's HSTS): the lane sets them (plain_fields).
            # (plain_fields' memo read here when it has the entry: begin runs once per request)
            memo = proxy._plain_entries.get(entry) if proxy._plain_table is table else None
            https = self.scheme == "https"
            fields = memo[https] if memo is not None else proxy.plain_fields(entry, https)
            if fields is not None:
                if fields:
                    self._plain_fields = fields
                # The plain lane, inline (once a request: no frame of its own). What
                # ``_forward``, ``_connect`` and ``_pick`` would decide is known: the endpoint is
                # picked and an idle pooled connection, when there is one, is asked at once, with
                # ``_connect_to``'s and ``_connected``'s bookkeeping; without one, ``_connect_to``
                # connects. Failures, retries and everything after the response head are the
                # general steps'.
                self._plain = True
                endpoint = entry.balancer.pick(())  # (nothing tried yet)
                if endpoint is None:
                    self.error_cause = "no_endpoints"
                    self.local(503)
                    return
                settings = entry.upstream
                connection = proxy.upstreams[settings.protocol].take_idle(endpoint.address, endpoint.port, settings)
                if connection is None:
                    self._connect_to(endpoint)
                    return
                self._tried = (endpoint,)
                self.upstream_endpoint = endpoint
                self.upstream_address = connection.address  # the endpoint's "address:port" (the pool's key)
                # The backend is asked in the call that made the exchange: its clock read serves.
                self.upstream_started = self._first_try = self.upstream_connected = self.started
                self._upstream = connection  # (_upstream_paused: the class's False, a first try's)
                # No body follows the head (its framing says so): body_done has nothing to end (no
                # _end_body, whose end_body writes nothing without chunks).
                self._body_ended = True
                # _upstream_headers, serialize and start's framing in one call (no feature edits the
                # headers of a plain route, and its request is no WebSocket)
                pairs = self.headers.pairs
                method = request.method
                connection.start_head(self, backend_request_head(
                    method, self.target, b"1.1", pairs,
                    _NOT_FORWARDED | (connection_tokens(pairs) - _END_TO_END) if self._has_connection
                    else _NOT_FORWARDED, self._forwarded, request.content_length), method == b"HEAD",
                    settings.read_timeout, settings.send_timeout)
                return
        if entry.request_features:
            self._run_features()
        else:
            self._forward()

    def _read_head(self):
        """``request_facts``'s results by the general steps: the target split, its path
        normalised (a 400 when it cannot be routed safely: None), the one pass over the headers."""
        request = self.request
        raw_path, query = split_target(request.target)
        if raw_path.startswith(_ABSOLUTE):
            raw_path = _origin_form(raw_path)
        try:
            path, upstream_path = normalize(raw_path)
        except BadPath:
            self.local(400)
            return None
        if upstream_path is raw_path and not raw_path.startswith(b"http"):
            target = request.target
            hash_at = target.find(b"#")
            if hash_at >= 0:
                target = target[:hash_at]
        else:
            target = upstream_path + b"?" + query if query else upstream_path
        return (path, query, target) + header_facts(self.headers.pairs, FORWARDED, SPOOFABLE)

    def _member_entry(self, entry, weighted):
        """Choose the member of the weighted set now, before any feature runs: one with filters of
        its own runs through its own entry (the route's features, then its filters')."""
        balancer, own = weighted.pick_with_entry()
        self.balancer = _NO_BACKEND if balancer is None else balancer  # None: 500 when it would be forwarded
        return own if own is not None else entry

    def _run_features(self) -> None:
        run_request_features(self.entry.request_features, self, self._features_done, self._feature_failed,
                             wanted=self._wanted)

    def _wanted(self) -> bool:
        return not self._done

    def _features_done(self, answer: LocalResponse | None, feature) -> None:
        if answer is None:
            self._forward()
        else:
            self.answered_by = _feature_owner(feature)
            self._answer(answer)

    def _feature_failed(self, feature, failure) -> None:
        log.err(failure, f"ingressd: a request feature of {self.route.ingress} failed")
        if not self._done:
            self.local(500)

    def _answer(self, response: LocalResponse) -> None:
        self.local(response.status, response.headers, response.body if response.body or response.status < 400 else None)

    # -- to the backend -------------------------------------------------------------------

    def _forward(self) -> None:
        request = self.request
        settings = self.upstream_settings
        limit = settings.max_body_size
        if limit and request.content_length is not None and request.content_length > limit:
            self.local(413)
            return
        if self._body_bytes and limit and self._body_bytes > limit:
            self.local(413)
            return
        if not self._body_complete and request.has_body:
            if request.expect_continue:
                self.protocol.send_continue()
            if self._streams_body():
                self._streaming = True
                self._connect()
                return
            # The whole body first (nginx's proxy_request_buffering on): one that turns out
            # too large is refused before any backend sees a byte of it.
            self._awaiting_body = True
            return
        self._connect()

    def _streams_body(self) -> bool:
        """Whether the request body goes to the backend as it arrives: an upstream protocol
        that takes bodies as streams (gRPC: client streaming and bidi;
        ``UpstreamProtocol.streams_request_body``), or the route's ``proxy-request-buffering:
        off`` (nginx buffers a chunked body anyway when it proxies HTTP/1.0: no chunks to send
        it in)."""
        settings = self.upstream_settings
        if getattr(self.proxy.upstreams.get(settings.protocol), "streams_request_body", False):
            return True
        return settings.request_buffering is False and not self.websocket \
            and not (self.request.chunked and settings.http_version == "1.0")

    def _connect(self) -> None:
        if self._forward_callbacks is not None:
            self._announce_forward()
        weighted = self.entry.weighted
        if weighted is not None and self.balancer is None:  # a weighted set: a member per request, kept on retries
            self.balancer = weighted.pick()
            if self.balancer is None:  # weight 0 everywhere, or a member that could not be resolved
                self.error_cause = "no_backend"
                self.local(500)
                return
        elif self.balancer is _NO_BACKEND:  # chosen before the features (_member_entry): as above
            self.error_cause = "no_backend"
            self.local(500)
            return
        endpoint = self._pick()
        if endpoint is None:
            self.error_cause = "no_endpoints"
            self.local(503)
            return
        self._connect_to(endpoint)

    def _pick(self):
        """The next endpoint of the request's balancer, avoiding those tried while others remain."""
        balancer = self.balancer
        entry = self.entry
        if entry.alternatives and not self._canary_decided:  # a canary: decided once (proxy/canary_choice.py)
            self._canary_decided = True
            balancer = self.balancer = choose(balancer, entry, self)  # retries keep the decision
        return (balancer or entry.balancer).pick(self._tried)

    def _connect_to(self, endpoint) -> None:
        settings = self.upstream_settings
        self._tried += (endpoint,)
        self.upstream_endpoint = endpoint
        address = f"{endpoint.address}:{endpoint.port}"
        self.upstream_address = f"{self.upstream_address}, {address}" if self.upstream_address else address
        self.upstream_started = self.proxy.clock.seconds()
        if self._first_try is None:
            self._first_try = self.upstream_started
        if self._timers is not None:
            self._timers.try_started(self._try_timed_out)
        protocol = settings.protocol
        if protocol == AUTO_HTTP:  # ingress-nginx's proxy_pass $scheme://: as the client came
            protocol = "HTTPS" if self.protocol.scheme == "https" else "HTTP"
        self._cancel_connect = self.proxy.upstreams[protocol].acquire(
            endpoint.address, endpoint.port, settings, self._connected, self._connect_failed
        )

    def _upstream_headers(self) -> list:
        """The request headers the backend is sent (framing aside: the upstream protocol's)."""
        pairs = self.headers.pairs
        drop = _NOT_FORWARDED
        if self._has_connection:
            drop = drop | (connection_tokens(pairs) - _END_TO_END)  # a client cannot have Host removed
        lines = [(name, value) for name, value in pairs if name not in drop]
        lines.extend(self._forwarded)
        if self.websocket:
            lines.append((b"upgrade", b"websocket"))
            lines.append((b"connection", b"upgrade"))
        for edit in self.entry.upstream_request_features:  # the route's features have the last word
            edit(self, lines)
        return lines

    def _body_length(self) -> int | None:
        request = self.request
        if self.websocket:
            return None
        if request.chunked:
            if self._streaming and not self._body_complete:
                return STREAMED  # its length is not known yet: chunked to the backend
            return self._body_bytes  # read whole: sent with its length, as nginx does
        return request.content_length

    def _connected(self, connection) -> None:
        self._cancel_connect = None
        self.upstream_connected = self.proxy.clock.seconds()
        if self._done:
            connection.release()
            return
        self._upstream = connection
        settings = self.upstream_settings
        self._upstream_paused = False
        connection.start(self, self.method, self.target, self._upstream_headers(), self._body_length(),
                         settings.read_timeout, settings.send_timeout,
                         b"1.0" if settings.http_version == "1.0" else b"1.1")
        if self._buffer is not None or self._body_complete or self._client_held:  # else nothing to send yet
            self._send_buffered()

    def _send_buffered(self) -> None:
        """Send the held body as fast as the backend takes it, then end it. Writes leave at
        the end of the reactor's round (``proxy.transport``), where the backend's pushing
        back shows: at most ``_BODY_ROUND`` bytes per round, the rest in the next ones."""
        self._next_round = None
        buffer = self._buffer
        sent = 0
        while buffer is not None and self._upstream is not None and not self._upstream_paused:
            if sent >= _BODY_ROUND:
                self._next_round = self.proxy.clock.callLater(0, self._send_buffered)
                return
            piece = buffer.next_piece()
            if not piece:
                self._buffer = buffer = None
                break
            sent += len(piece)
            if self._body_complete and buffer.exhausted and not self._body_ended:
                send_last = getattr(self._upstream, "send_last", None)
                if send_last is not None:  # the body's end leaves with its last piece (HTTP/2)
                    self._body_sent = self._body_ended = True
                    send_last(piece)
                    self._buffer = buffer = None
                    break
            self._send_body(piece)
        if buffer is None and self._body_complete and self._upstream is not None and not self._body_ended:
            self._end_body()
        if self._client_held and (buffer is None or buffer.size < _STREAM_WINDOW):
            self._client_held = False  # the backend caught up: read more of the body
            self.protocol.resume_reading()

    def _connect_failed(self, error: UpstreamError) -> None:
        self._cancel_connect = None
        if not self._done:
            self.upstream_failed(None, error)

    def _send_body(self, data: bytes) -> None:
        self._body_sent = True
        self._upstream.send_body(data)

    def _end_body(self) -> None:
        self._body_ended = True
        self._upstream.end_body()

    # called by http1 as the request body arrives
    def body_data(self, data: bytes) -> None:
        if self._done:
            return
        size = len(data)
        self._body_bytes += size
        self.request_bytes += size
        limit = self.upstream_settings.max_body_size
        if limit and self._body_bytes > limit:
            if not self._response_started:
                self._abandon_upstream()
                self.local(413)
            elif self._streaming:  # a streamed body grew too large mid-response
                self._abandon_upstream()
                self.protocol.abort()
                self._finished()
            return
        self.protocol.body_progress()
        buffer = self._buffer
        if (buffer is None and self._streaming and self.request.complete and self._last_piece is None
                and self._upstream is not None and not self._upstream_paused and self._next_round is None
                and getattr(self._upstream, "send_last", None) is not None):
            # (HTTP/2: the request's last DATA, its end next) a unary body in one piece: nothing to
            # hold, body_done sends it with the end (send_last), as _send_buffered would have
            self._last_piece = data
            return
        if buffer is None:
            # Streamed, it holds at most about a window (the client waits beyond it): memory.
            memory = _STREAM_WINDOW * 4 if self._streaming else self.upstream_settings.body_buffer_size
            buffer = self._buffer = BufferedBody(directory=self.proxy.settings.temp_dir, memory_bound=memory,
                                                 retain=not self._streaming)
            if not self._streaming:
                self._held = buffer  # kept whole, to be sent again to another endpoint (proxy-next-upstream)
        try:
            buffer.add(data)
        except OSError as exc:  # no temporary file (disk full, --temp-path gone): nginx's 500
            log.msg(f"ingressd: a request body could not be held: {exc}")
            self._abandon_upstream()
            self._fail_locally(500)
            return
        if self._streaming:
            upstream = self._upstream
            if upstream is not None and not self._upstream_paused and self._next_round is None and not (
                    self.request.complete and getattr(upstream, "send_last", None) is not None):
                self._send_buffered()  # (a last piece waits for body_done, which follows: sent with the end)
            if self._buffer is not None and self._buffer.size >= _STREAM_WINDOW and not self._client_held:
                self._client_held = True
                self.protocol.pause_reading()

    def body_done(self) -> None:
        self._body_complete = True
        self.protocol.body_finished()
        if self._done:
            return
        if self._awaiting_body:
            self._awaiting_body = False
            self._connect()
        elif self._upstream is not None:
            piece = self._last_piece
            if piece is not None:  # body_data's last piece: it leaves with the end
                self._last_piece = None
                self._body_sent = self._body_ended = True
                self._upstream.send_last(piece)
            elif self._buffer is None and not self._client_held:  # no body held (a GET): just its end
                if not self._body_ended:
                    self._end_body()
            else:
                self._send_buffered()

    # -- from the backend -----------------------------------------------------------------

    def upstream_head(self, connection, status: int, headers, length) -> None:
        self.upstream_status = status
        self.upstream_headed = self.proxy.clock.seconds()
        if self._plain and status != 101:  # _respond_head's work, with nothing of the route's to run
            pairs = connection.for_client  # HTTP1Connection's one-call head filtered them already
            if pairs is None:
                pairs = from_backend(headers)
            if self.protocol.passes_backend_server:
                pairs += [pair for pair in headers if pair[0] == b"server"][:1]
            if self._plain_fields:
                pairs = _with_fields(pairs, self._plain_fields)
            if _ACCEL_BUFFERING in map(_name, headers):
                self._writer = self._response_writer(headers)
            self.status = status
            self.response_length = length
            self.response_headers = pairs
            self._response_started = True
            self.protocol.write_head(status, pairs, length)
            return
        if status in (self.upstream_settings.next_upstream or NEXT_UPSTREAM).statuses \
                and self._next_upstream(f"http_{status}", True):
            self._upstream = None
            connection.abort()  # its answer is passed over, as nginx closes it
            return
        if status == 101:
            if self.websocket:
                return  # the tunnel takes over in upstream_upgraded
            status = 502
            self.error_cause = "unexpected_upgrade"
        entry = self.entry
        if status in entry.error_codes and entry.error_features:
            own = self.upstream_status != status  # an answer ingressd makes of it (a stray 101)
            if own or intercepts(entry.error_features, status):
                self._intercepted = status  # the body is dropped; the error page replaces it
                self._upstream_error = not own
                return
        pairs = getattr(connection, "for_client", None)  # an HTTP1Connection's one-call head: filtered already
        if pairs is None:
            pairs = from_backend(headers)
        if self.protocol.passes_backend_server:  # allow-backend-server-header
            pairs += [pair for pair in headers if pair[0] == b"server"][:1]
        settings = self.upstream_settings
        if settings.response_buffering or settings.limit_rate or _ACCEL_BUFFERING in map(_name, headers):
            self._writer = self._response_writer(headers)
        self._respond_head(status, pairs, length)

    def takes_whole(self, headers) -> bool:
        """Whether a whole response may come in one ``upstream_whole`` call: in the plain lane
        (whose response head has nothing of the route's to run), to a client side that writes
        a head and body at once (HTTP/1.1's ``write_response``), without the backend's
        X-Accel-Buffering (a response writer of its own: the general steps), the request sent
        whole (so its connection may be reused: the connection releases itself first)."""
        return self._plain and self._body_ended and _ACCEL_BUFFERING not in map(_name, headers) \
            and getattr(self.protocol, "write_response", None) is not None

    def upstream_whole(self, status: int, headers, pairs, lines: bytes, length, body: bytes) -> None:
        """A whole response in one step (``takes_whole`` said yes; the connection is settled, no
        longer this exchange's, and already back in its pool or closed, as ``upstream_done``
        would have left it: the request had ended): what ``upstream_head``, ``upstream_body``
        and ``upstream_done`` do in the plain lane, with the head and body written at once.
        ``pairs``: the headers for the client (``headers.from_backend``'s), ``lines``: those
        serialised."""
        self.upstream_status = self.status = status
        self.upstream_headed = self.upstream_ended = self.proxy.clock.seconds()
        self._upstream = None
        protocol = self.protocol
        if protocol.passes_backend_server:
            server = [pair for pair in headers if pair[0] == b"server"][:1]
            pairs += server
            lines += serialize(server)
        fields = self._plain_fields
        if fields:  # ssl-redirect's HSTS over https
            if fields.names.isdisjoint(map(_name, pairs)):  # (the usual case) added after the backend's:
                pairs += fields  # _with_fields's list and serialize's lines, without a pass of their own
                lines += fields.lines
            else:
                pairs = _with_fields(pairs, fields)
                lines = serialize(pairs)
        self.response_length = length
        self.response_headers = pairs
        self._response_started = True
        self.bytes_sent += len(body)
        protocol.write_response(status, pairs, lines, length, body)
        protocol.finish_response()
        self._finished()

    def _response_writer(self, headers) -> ResponseBuffer | None:
        """A ResponseBuffer when the response is read ahead of the client or paced: the
        route's proxy-buffering, unless the backend's ``X-Accel-Buffering`` says otherwise
        (nginx honours it), and its limit-rate."""
        settings = self.upstream_settings
        hold = bool(settings.response_buffering)
        for name, value in headers:
            if name == _ACCEL_BUFFERING:
                word = value.strip().lower()
                if word in (b"yes", b"no"):
                    hold = word == b"yes"
        rate = settings.limit_rate or 0
        if not hold and not rate:
            return None
        memory = settings.response_memory
        file_bound = settings.max_temp_file_size
        return ResponseBuffer(self.protocol, self.proxy.clock, self._pause_upstream, self._resume_upstream,
                              hold=hold, memory=16384 if memory is None else memory,
                              file_bound=0 if file_bound is None else file_bound,
                              directory=self.proxy.settings.temp_dir, rate=rate,
                              rate_after=settings.limit_rate_after or 0, started=self.started)

    def _pause_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading()

    def _resume_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()

    def _respond_head(self, status: int, pairs, length) -> None:
        self.status = status
        self.response_length = length
        entry = self.entry
        if entry is not None and entry.response_features:
            run_response_features(entry.response_features, self, status, pairs)
        if self.body_filter is not None:
            length = None  # the filter decides the bytes: streamed without a length
        self.response_headers = pairs
        self._response_started = True
        if self.websocket:  # a WebSocket request answered without a tunnel: close after it
            self.protocol.close_after_response()
        self.protocol.write_head(status, pairs, length)

    def upstream_body(self, data: bytes) -> None:
        if not self._intercepted:
            if self.body_filter is not None:
                data = self.body_filter.write(data)
                if not data:
                    return
            self.bytes_sent += len(data)
            if self._writer is not None:
                try:
                    self._writer.write(data)
                except OSError as exc:  # no temporary file for what the client has not taken
                    log.msg(f"ingressd: a response could not be held for the client: {exc}")
                    self._abandon_upstream()
                    self._fail_locally(502)
            else:
                self.protocol.write_body(data)

    def _fail_locally(self, status: int) -> None:
        """Answer ``status``, or drop the response if one started already."""
        if self._response_started:
            self.protocol.abort()
            self._finished()
        else:
            self.local(status)

    def upstream_trailers(self, trailers) -> None:
        """The backend's trailer fields (gRPC's grpc-status…): sent after the body."""
        if not self._intercepted and not self._done:
            self.protocol.write_trailers(trailers)

    def upstream_done(self, connection, reusable: bool) -> None:
        self._upstream = None
        if self._timers is not None:
            self._timers.try_ended()
        self.upstream_ended = self.proxy.clock.seconds()
        if reusable and self._body_ended:
            connection.release()
        else:
            connection.close()
        if self._done:
            return
        if self._intercepted:
            self.local(self._intercepted)
            return
        if self.body_filter is not None:  # what the filter holds back ends the body
            last, self.body_filter = self.body_filter.finish(), None
            if last:
                self.upstream_body(last)
        if self._writer is not None:  # released already: the client may still be reading
            self._writer.end(self._response_complete)
            return
        self._response_complete()

    def _response_complete(self) -> None:
        if not self._done:
            self.protocol.finish_response()
            self._finished()

    def upstream_failed(self, connection, error: UpstreamError) -> None:
        self._upstream = None
        if self._timers is not None:
            self._timers.try_ended()
        if self._done:
            return
        self.upstream_ended = self.proxy.clock.seconds()
        if self._response_started:
            log.msg(f"ingressd: {error} while streaming the response of {self.upstream_address}")
            self.protocol.abort()
            self._finished()
            return
        if error.retryable and connection is not None and connection.reused and not self._retried \
                and self._resendable() and (self.upstream_settings.next_upstream or NEXT_UPSTREAM).stale_retry:
            # A pooled keep-alive connection the backend had closed: the request never reached
            # it. Once more on a new connection, not counted as a try (nginx: peer.tries++).
            self._retried = True
            endpoint, self._tried = self._tried[-1], self._tried[:-1]
            self._again(endpoint, 502)
            return
        if self._next_upstream(failure_kind(error.cause, error.timeout), connection is not None, error.timeout):
            return
        log.msg(f"ingressd: {error} ({self.method.decode('latin-1')} {self.host}{self.path})")
        self.error_cause = error.cause
        self.local(504 if error.timeout else (self.upstream_settings.next_upstream or NEXT_UPSTREAM).error_status)

    def _try_timed_out(self) -> None:
        """The route's backendRequest timeout passed (``route_timeouts``): the try fails as a timeout."""
        connection = self._upstream
        self._abandon_upstream()
        if not self._done:
            self.upstream_failed(connection, UpstreamError("backend request timeout", timeout=True,
                                                           cause="backend_request_timeout"))

    def _request_timed_out(self) -> None:
        """The route's request timeout passed (``route_timeouts``): 504, or the started response cut."""
        if self._done:
            return
        self._timers.try_ended()
        self._abandon_upstream()
        self.error_cause = "request_timeout"
        self._fail_locally(504)

    # -- the next endpoint (proxy-next-upstream) -------------------------------------------

    def _resendable(self) -> bool:
        """The request can be sent again: it has no body, or its body is held whole."""
        return not self._body_bytes or (self._held is not None and self._body_complete)

    def _next_upstream(self, kind: str, sent: bool, timeout: bool = False) -> bool:
        """After a failed try (``kind``: ``next_upstream.failure_kind`` or ``http_XXX``), send
        the request to the next endpoint if the route's proxy-next-upstream allows: True if so."""
        policy = self.upstream_settings.next_upstream or NEXT_UPSTREAM
        if not self._resendable() or not may_retry(policy, kind, self.method, sent, len(self._tried),
                                                   self.proxy.clock.seconds() - self._first_try):
            return False
        endpoint = self._pick()
        if endpoint is None or exhausted(policy, endpoint, self._tried):
            return False
        status = self.upstream_status if kind.startswith("http_") else 504 if timeout else 502
        if policy.backoff:  # an HTTPRoute retry's least wait between tries, on the reactor
            if self._timers is not None:
                self._timers.try_ended()
            self._backoff = self.proxy.clock.callLater(policy.backoff, self._after_backoff, endpoint, status)
        else:
            self._again(endpoint, status)
        return True

    def _after_backoff(self, endpoint, status: int) -> None:
        self._backoff = None
        if not self._done:
            self._again(endpoint, status)

    def _again(self, endpoint, status: int) -> None:
        """Ask ``endpoint`` after a try that ended with ``status`` (the backend's, or 502/504)."""
        self.retries += 1
        self.upstream_trail += f"{status}, "
        self.upstream_status = 0
        self._intercepted = 0
        self._upstream_error = False
        self._body_sent = self._body_ended = False
        if self._next_round is not None:
            self._next_round.cancel()
            self._next_round = None
        held = self._held
        if held is not None:
            held.rewind()
            self._buffer = held
        self._connect_to(endpoint)

    @property
    def upstream_statuses(self) -> "int | str":
        """nginx's ``$upstream_status``: the backend's status; after retries each try's, as
        ``"502, 503, 200"`` (a failed try's is the 502 or 504 it would have been)."""
        if not self.upstream_trail:
            return self.upstream_status
        return f"{self.upstream_trail}{self.upstream_status or self.status}"

    def upstream_upgraded(self, connection, rest: bytes) -> None:
        """The backend answered 101: splice the two connections."""
        if self._done:
            connection.abort()
            return
        if not self.websocket:  # a 101 nobody asked for: upstream_head already answered 502
            self._upstream = None
            connection.abort()
            if self._intercepted:
                self.local(self._intercepted)
            else:
                self.protocol.finish_response()
                self._finished()
            return
        pairs = [(n, v) for n, v in connection.response_headers
                 if n not in _NOT_IN_101 and n not in HIDDEN_FROM_BACKEND]
        run_response_features(self.entry.response_features, self, 101, pairs)
        # HTTP/1.1: a 101 head; HTTP/2 (RFC 8441): :status 200, once the backend's accept is right.
        if not self.protocol.accept_tunnel(pairs):
            self._upstream = None
            connection.abort()
            log.msg(f"ingressd: invalid WebSocket handshake from {self.upstream_address}")
            self.error_cause = "invalid_upgrade"
            self.local(502)
            return
        self.status = 101
        self.upstream_ended = self.proxy.clock.seconds()
        if self._timers is not None:  # a tunnel lasts as long as its two sides want
            self._timers.stop()
        self.proxy.tunnels_open += 1  # until _finished
        self._response_started = True
        settings = self.upstream_settings
        tunnel = Tunnel(self.protocol, connection, self.proxy.clock, settings.read_timeout, settings.send_timeout,
                        on_close=self._finished)
        pending = self._tunnel_pending
        self._tunnel_pending = None
        tunnel.start(pending, rest)
        self._tunnel = tunnel

    # -- WebSocket: the client's bytes after the upgrade request ---------------------------

    _tunnel_pending: list[bytes] | None = None

    def wants_tunnel(self) -> bool:
        if not self.websocket or self._done:
            return False
        self._tunnel_pending = []
        self.protocol.divert(self)  # until the backend answers, buffer what the client sends
        return True

    def tunnel_early_data(self, data: bytes) -> None:
        if data:
            self.client_data(data)

    def client_data(self, data: bytes) -> None:
        if self._tunnel_pending is not None:
            self._tunnel_pending.append(data)
            if sum(len(d) for d in self._tunnel_pending) > 65536:
                self.protocol.pause_reading()

    # -- the client side ------------------------------------------------------------------

    def client_side_answered(self, status: int, bytes_sent: int) -> None:
        """The client side answered ``status`` itself (the request body timed out) and closes:
        abandon the backend request; the exchange is over with that status."""
        if self._tunnel is not None:
            return
        self._abandon_upstream()
        if not self._done:
            self.status = status
            self.bytes_sent += bytes_sent
            self._finished()

    def client_lost(self) -> None:
        """The client went away: abandon the backend request."""
        if self._tunnel is not None:
            return
        self._abandon_upstream()
        if not self._done:
            self.status = self.status or 499
            self._finished()

    def _abandon_upstream(self) -> None:
        if self._cancel_connect is not None:
            self._cancel_connect()
            self._cancel_connect = None
        if self._upstream is not None:
            self._upstream.abort()
            self._upstream = None

    def client_paused(self) -> None:
        if self._writer is not None:
            self._writer.client_paused()
        elif self._upstream is not None:
            self._upstream.pause_reading()

    def client_resumed(self) -> None:
        if self._writer is not None:
            self._writer.client_resumed()
        elif self._upstream is not None:
            self._upstream.resume_reading()

    def upstream_write_paused(self) -> None:
        self._upstream_paused = True  # a streamed body: the client waits once a window is held

    def upstream_write_resumed(self) -> None:
        self._upstream_paused = False
        if self._buffer is not None and self._next_round is None:
            self._send_buffered()

    # -- answers ingressd makes itself ----------------------------------------------------

    def local(self, status: int, headers=(), body: bytes | None = None) -> None:
        """Answer ``status`` ourselves: error pages by plugins, then the response features."""
        if self._done or getattr(self, "_in_error", False):
            return  # an error page is being fetched: the first error wins (e.g. over a later 413)
        entry = self.entry
        if status >= 400 and entry is not None and status in entry.error_codes:
            self._in_error = True
            self._error_page(status, list(headers), body)
            return
        self._send_local(status, list(headers), body)

    def _error_page(self, status: int, headers: list, body: bytes | None) -> None:
        def done(page: LocalResponse | None) -> None:
            if page is None:
                self._send_local(status, headers, body)
            else:
                self._send_local(status, with_page_headers(headers, page), page.body)

        run_error_features(self.entry.error_features, self, status, self._upstream_error, done)

    def _send_local(self, status: int, pairs: list, body: bytes | None) -> None:
        if self._done or self.protocol.closed:
            self._finished()
            return
        if status >= 400 and grpc_status.is_grpc_call(self):
            self._send_grpc_status(status)
            return
        if body is None:
            body = error_page(status) if status >= 400 else b""
            if body:
                pairs.append((b"content-type", b"text/html"))
        if status in _CLOSING_STATUSES or self.request.upgrade or (not self.request.complete and self.request.has_body):
            self.protocol.close_after_response()
        self._respond_head(status, pairs, len(body))
        if self.body_filter is not None:
            body = self.body_filter.write(body) + self.body_filter.finish()
        self.bytes_sent += len(body)
        self.protocol.write_body(body)
        self.protocol.finish_response()
        self._finished()

    def _send_grpc_status(self, status: int) -> None:
        """A gRPC call's error answered the gRPC way (``grpc_status``): HTTP 200,
        ``application/grpc``, no message, the status in the trailers; ``status`` is what the
        access log and metrics see."""
        code, message = grpc_status.of_http(status, self.error_cause)
        if status in _CLOSING_STATUSES or (not self.request.complete and self.request.has_body):
            self.protocol.close_after_response()
        self.status = status
        self._response_started = True
        self.protocol.write_head(200, [(b"content-type", b"application/grpc")], None)
        self.protocol.write_trailers([(b"grpc-status", b"%d" % code), (b"grpc-message", message)])
        self.protocol.finish_response()
        self._finished()

    def _finished(self) -> None:
        if self._done:
            return
        self._done = True
        proxy = self.proxy
        proxy.exchanges_open -= 1
        if self._timers is not None:
            self._timers.stop()
        if self._buffer is not None:
            self._buffer.discard()
            self._buffer = None
        if self._held is not None:
            self._held.discard()
            self._held = None
        if self._next_round is not None:
            self._next_round.cancel()
            self._next_round = None
        if self._backoff is not None:
            self._backoff.cancel()
            self._backoff = None
        if self._writer is not None:
            self._writer.close()
        if self._client_held:  # answered before the streamed body ended: stop holding the client back
            self._client_held = False
            self.protocol.resume_reading()
        if self.status == 101:
            self.proxy.tunnels_open -= 1
        callbacks = self._finish_callbacks
        if callbacks is not None:  # (no store when none were registered: the usual case)
            self._finish_callbacks = None
            for callback in callbacks:
                try:
                    callback()
                except Exception:
                    log.err(None, "ingressd: an on_finish callback failed")
        observers = proxy.observers
        if proxy.tls_observers and self.protocol.scheme == "https":  # (a TLS client connection's too)
            observers = [*observers, *proxy.tls_observers]
        for observer in observers:
            try:
                observer(self)
            except Exception:
                log.err(None, "ingressd: an exchange observer failed")
        if proxy.round_observers:  # noted for the round's end (Proxy.end_round)
            noted = proxy._noted
            if not noted and proxy._at_round_end is not None:
                proxy._at_round_end(proxy._end_round)
            now = proxy.clock.seconds()
            noted.append((self, now if proxy._clock_is_wall else _wall_clock(), now))
            if len(noted) >= proxy._hand_over_at:
                proxy.end_round()


_new_object = object.__new__  # an Exchange (or Headers) whose slots the caller sets (Proxy.__call__)
_NO_BACKEND = object()  # the weighted member chosen early could not be used (or none could be chosen)
_PLAIN_MEMO = 4096  # route entries whose plainness Proxy.is_plain remembers
_ROUND_NOTES = 256  # finished exchanges noted at most: then handed over before the round's end
_UNHURRIED_NOTES = 64  # … when no observer wants each round's end (Proxy.want_rounds): the metrics' bound


def _with_fields(pairs: list, fields: tuple) -> list:
    """The plain lane's response fields (``Proxy.plain_fields``) set on a response's headers as
    the features that gave them would set them: each replaces the backend's field of its name."""
    names = {name for name, _ in fields}
    kept = [pair for pair in pairs if pair[0] not in names]
    kept.extend(fields)
    return kept


def _plain_entry(entry, upstreams) -> tuple:
    """Whether a route's requests without a body may take the plain lane (the end of ``Exchange.begin``),
    as (for http, for https): None when not, else the response fields the lane sets. Plain: no
    feature but settings (features that only say the route's ``UpstreamSettings``, such as
    backend-protocol's: so no request, response, upstream-request or error feature, no body
    filter, no mirror, no balancer) — over https, also features whose hooks then only set
    response fields (``https_response_fields``: ssl-redirect's HSTS) —, no weighted backend set
    or canary, no route timeouts, HTTP/1.1 in clear or over TLS (``HTTPS``) to a pool that lends
    idle connections, and nothing the response head is checked against (no response buffering
    or rate limit of the route's, no proxy-next-upstream status)."""
    settings = entry.upstream
    if not (entry.weighted is None and not entry.alternatives
            and entry.route.timeouts is None and settings.protocol in _PLAIN_PROTOCOLS
            and settings.http_version != "1.0"
            and not settings.response_buffering and not settings.limit_rate
            and not (settings.next_upstream or NEXT_UPSTREAM).statuses
            and getattr(upstreams.get(settings.protocol), "take_idle", None) is not None):
        return _NOT_PLAIN
    if entry.upstream_request_features or entry.error_features:
        return _NOT_PLAIN  # (what the entry found, whatever dir() below says of its features)
    settings_only = not entry.request_features and not entry.response_features
    fields: list = []  # what the features' response hooks leave set over https, in their order
    declared = 0  # features whose hooks over https only set their fields
    for feature in entry.features:
        names = {name for name in dir(feature) if not name.startswith("_")}
        if names <= _SETTINGS_ONLY:
            continue  # nothing of it runs per request: read when the entry was built
        settings_only = False
        given = getattr(feature, "https_response_fields", None)
        if given is None or not names <= _HTTPS_FIELDS_ONLY:
            return _NOT_PLAIN  # anything else (a hook, a balancer, a canary rule, a flag), known or not
        replaced = {name for name, _ in given}
        fields = [field for field in fields if field[0] not in replaced] + list(given)
        declared += 1
    if len(entry.request_features) > declared or len(entry.response_features) > declared:
        return _NOT_PLAIN  # a hook that dir() did not show (a feature's own __getattr__)
    return (() if settings_only else None), _PlainFields(fields)


class _PlainFields(tuple):
    """The response fields the plain lane sets over https (``_plain_entry``'s, a tuple of
    (name, value)), with their names and their lines (``serialize``) made once per route entry
    rather than per response (``Exchange.upstream_whole``)."""

    def __new__(cls, fields):
        self = super().__new__(cls, fields)
        self.names = frozenset(map(_name, self))
        self.lines = serialize(self)
        return self


_NOT_PLAIN = (None, None)
_PLAIN_PROTOCOLS = ("HTTP", "HTTPS")  # HTTP/1.1 to the backend, in clear or over TLS
_SETTINGS_ONLY = frozenset(("phase", "upstream"))  # what a feature that only gives settings has
# What a feature that over https only sets response fields has (features.py: https_response_fields).
_HTTPS_FIELDS_ONLY = _SETTINGS_ONLY | {"request", "response", "https_response_fields"}


class _Unparsed:
    """What is known of a request the client side refused while parsing it (its method and
    version are known only once its head is complete)."""

    method = b""
    version = b"1.1"
    upgrade = False
    chunked = False
    content_length = None
    complete = True
    expect_continue = False
    has_body = False

    def __init__(self, target: bytes, headers: list, head_bytes: int):
        self.target = target
        self.headers = headers
        self.head_bytes = head_bytes


def _known(request):
    """``request`` if its head was parsed, else what is known of it (``_Unparsed``)."""
    if request is None:
        return _Unparsed(b"", [], 0)
    if getattr(request, "method", None) is None:
        return _Unparsed(getattr(request, "target", b""), list(getattr(request, "headers", ())),
                         getattr(request, "head_bytes", 0))
    return request


def _feature_owner(method) -> str:
    """The plugin a request feature belongs to: its module's last name (``rate_limit``…)."""
    owner = getattr(method, "__self__", None)
    module = type(owner).__module__ if owner is not None else getattr(method, "__module__", "")
    return getattr(owner, "plugin_name", None) or (module or "unknown").rpartition(".")[2]


def _origin_form(absolute: bytes) -> bytes:
    """The path of an absolute-form request target (``http://host/path``)."""
    rest = absolute.split(b"//", 1)[1]
    slash = rest.find(b"/")
    return rest[slash:] if slash >= 0 else b"/"
