"""The declared interfaces of the request path: what each part offers the others. Read this first.

A request's way (see docs/architecture.md)::

    client connection ──► ClientSide ◄──── Exchange ────► UpstreamConnection ──► backend
    (http1: a connection,    │   ▲          │   ▲  │           │   ▲
     http2: one stream)      │   └ ExchangeForClient   └ ExchangeForUpstream ┘
                             └──── RawStream ◄── Tunnel ──► RawStream (after a 101)

- ``ClientSide`` is what an HTTP/1 connection or an HTTP/2 stream offers an exchange: the
  peer and TLS facts, writing the response, flow control, closing.
- ``ExchangeForClient`` is what the client side calls on the exchange it dispatched a
  request to (the request body as it arrives, the client going away or pausing).
- ``UpstreamProtocol`` is how requests reach backends in one protocol (HTTP/1.1 in clear
  and HTTPS: ``ingressd.proxy.http1_upstream``; HTTP/2 for GRPC and GRPCS: ``ingressd.proxy.h2_upstream``):
  it hands out connections. The ``Proxy`` holds one per protocol name; each route's
  ``UpstreamSettings.protocol`` picks one, and a route to a protocol the server does not
  speak is rejected when the table is built.
- ``UpstreamConnection`` is one backend connection speaking that protocol: it frames the
  request the exchange describes (method, target, headers, body length) and reports the
  response.
- ``ExchangeForUpstream`` is what a backend connection calls on its exchange (the response
  head, body and end, failures, an upgrade, backpressure on the request body).
- ``RawStream`` / ``RawReceiver``: a connection handed over to a byte tunnel (WebSocket).
- ``TLSPassthrough`` / ``PassedThrough``: a TLS connection handed, before any TLS, to a
  byte splice (``ssl-passthrough``), decided by its ClientHello's SNI name.
- ``RouteSource`` is a source of routes on the configuration side: a translator from the
  store's objects (of the kinds it declares) to a fragment of the one model
  (``ingressd.config.sources`` registers them and merges their fragments).
- What plugins see of a request is ``RequestView`` (``ingressd.features`` documents how they
  use it); the HTTP requests they send themselves go through ``Subrequests``.

These are ``typing.Protocol``s: the parts implement them structurally, and no part reaches
into another's private names.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

Header = tuple[bytes, bytes]


class ClientSide(Protocol):
    """An HTTP/1 connection or an HTTP/2 stream, as its exchange uses it."""

    peer_ip: str  # the address the connection comes from
    scheme: str  # "http" or "https": the listener's
    server_port: int  # the local port the connection came in on
    # Optional (absent: unknown): the client's port and the local address the connection came
    # in on (nginx's $remote_port and $server_addr: FastCGI's REMOTE_PORT and SERVER_ADDR).
    peer_port: int
    server_ip: str
    closed: bool  # the connection is gone (nothing more can be written)
    # Whether the peer is a trusted proxy (proxy-real-ip-cidr): the proxy's (policy, answer),
    # decided once per connection and forwarding policy, None until then.
    trusted: tuple[Any, bool] | None
    # allow-backend-server-header with server-tokens: the backend's Server header is passed on
    # (in place of ingressd's own); otherwise it is hidden, as every HIDDEN_FROM_BACKEND header.
    passes_backend_server: bool

    def tls(self) -> tuple[str, str]:
        """(TLS version, SNI name) of the connection; ("", "") for plain HTTP."""

    def client_certificate(self) -> Any:
        """What the connection's client certificate proved: a ``tls.client_auth.ClientCertificate``
        (``NO_TLS`` for plain HTTP)."""

    def write_head(self, status: int, headers: Sequence[Header], length: int | None,
                   reason: bytes | None = None) -> None: ...

    def write_body(self, data: bytes) -> None: ...

    # Optional (HTTP/1.1's): ``write_response(status, headers, lines, length, body)``, what
    # ``write_head`` and ``write_body`` write, in one write (``lines``: ``headers`` serialised
    # already, or None): the exchange's plain lane relays a whole response with it.

    def write_trailers(self, trailers: Sequence[Header]) -> None:
        """Trailer fields sent when the response finishes (gRPC's ``grpc-status``…): HTTP/2 a
        last HEADERS frame; HTTP/1.1 a chunked response's last chunk."""

    def finish_response(self) -> None: ...

    def close_after_response(self) -> None:
        """Close (HTTP/1) after the current response instead of keeping the connection alive;
        nothing for an HTTP/2 stream (the connection serves others)."""

    def abort(self) -> None:
        """Drop the response mid-way (HTTP/1: close the connection; HTTP/2: reset the stream)."""

    def send_continue(self) -> None:
        """Answer ``Expect: 100-continue`` before the body is read."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def body_progress(self) -> None:
        """Request-body bytes were read: the body timeout starts over."""

    def body_finished(self) -> None:
        """The whole request body was read: its timeout ends."""

    def cork(self) -> None:
        """Until ``uncork``, join what is written into one send (one backend read relayed)."""

    def uncork(self) -> None: ...


class RawReceiver(Protocol):
    """Takes a connection's bytes once it is handed over (a tunnel, or an exchange waiting for
    a backend's 101)."""

    def client_data(self, data: bytes) -> None: ...

    def client_lost(self) -> None: ...

    def client_paused(self) -> None: ...

    def client_resumed(self) -> None: ...

    # A tunnel also offers ``going_away()``: the server is shutting down (``--shutdown-grace``
    # is over): say so to both peers (WebSocket close code 1001) and close. An exchange still
    # waiting for a backend's 101 does not; it is closed like any unfinished response.


class RawStream(Protocol):
    """A client side that can leave HTTP and carry raw bytes: an HTTP/1 client connection, or
    an HTTP/2 stream opened by an Extended CONNECT (RFC 8441, its DATA frames)."""

    def divert(self, receiver: RawReceiver | None) -> None:
        """From now on, every byte read goes to ``receiver`` instead of the HTTP parser."""

    def accept_tunnel(self, headers: Sequence[Header]) -> bool:
        """The backend answered 101 with ``headers``: tell the client (HTTP/1: a 101 head with
        this side's Server and Date; HTTP/2: ``:status 200``). False, with nothing sent, when the
        client side is the WebSocket client and the handshake is wrong (HTTP/2: the backend's
        Sec-WebSocket-Accept is not the one for the key it was sent)."""

    def write_raw(self, data: bytes) -> None: ...

    def lose_connection(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class ExchangeForClient(Protocol):
    """What the client side calls on the exchange a request was dispatched to."""

    def body_data(self, data: bytes) -> None: ...

    def body_done(self) -> None: ...

    def client_lost(self) -> None: ...

    def client_side_answered(self, status: int, bytes_sent: int) -> None:
        """The client side answered ``status`` itself (a request-body timeout) and closes the
        connection or stream: the exchange is over, with that status."""

    def client_paused(self) -> None: ...

    def client_resumed(self) -> None: ...

    def wants_tunnel(self) -> bool:
        """After an Upgrade request: True when the exchange takes the bytes that follow."""

    def tunnel_early_data(self, data: bytes) -> None: ...


class RequestHandler(Protocol):
    """What the client side (``http1``, ``http2``) hands requests to: ``proxy.exchange.Proxy``."""

    def __call__(self, protocol: ClientSide, request: Any) -> ExchangeForClient | None: ...

    def rejected(self, protocol: ClientSide, request: Any, status: int, bytes_sent: int) -> None:
        """The client side answered ``status`` itself before any exchange took the request
        (malformed, a head too large, a timeout): ``request`` is what was parsed of it, or
        None. Reported to the same observers as exchanges (access log, metrics)."""


class UpstreamConnection(Protocol):
    """One connection to a backend endpoint, for one request at a time."""

    reused: bool  # it served an earlier request (a failure may be a stale keep-alive)
    response_headers: Sequence[Header]  # the current response's headers, as received

    def start(self, exchange: "ExchangeForUpstream", method: bytes, target: bytes, headers: list[Header],
              body_length: int | None, read_timeout: float, send_timeout: float, version: bytes = b"1.1") -> None:
        """Send a request: ``headers`` without framing (the protocol adds its own, and may
        append to the list); ``body_length`` None for no body, ``upstream.STREAMED`` for a
        body of unknown length, else its length; ``version``: the HTTP version of the request
        (``proxy-http-version``; after a 1.0 request the connection is not reused). The exchange
        then streams the body. ``exchange`` is a ``RequestView`` too: a protocol that tells its
        backend about the request otherwise than in headers (FastCGI's parameters) reads it there."""

    def send_body(self, data: bytes) -> None: ...

    def end_body(self) -> None: ...

    # A protocol may also offer ``send_last(data)``: the body's last piece and its end in one
    # (HTTP/2: END_STREAM on the last DATA frame, as nginx's grpc_pass sends it); the exchange
    # uses it when the client side says the piece is the last (``request.complete`` as it hands
    # it over), else ``send_body``, then ``end_body``.

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def release(self) -> None:
        """The response is complete: the connection may serve another request (pooled)."""

    def abort(self) -> None:
        """The exchange gave up: drop the connection, never reuse it."""

    def close(self) -> None:
        """Close it once what was written is sent (a response that cannot be reused)."""

    def divert(self, receiver: Any) -> None:
        """After a 101: every byte read goes to ``receiver.backend_data``."""

    def write_raw(self, data: bytes) -> None:
        """After a 101: the tunnel's bytes, as they are."""


class UpstreamProtocol(Protocol):
    """How requests reach backends in one protocol: connections to endpoints."""

    name: str  # ingress-nginx's backend-protocol value: "HTTP", "HTTPS", "GRPC"…
    # Optional, False when absent: the request body goes to the backend as it arrives, never
    # held whole first (gRPC streams both ways: ``proxy.h2_upstream``).
    streams_request_body: bool
    # Optional: ``take_idle(host, port, settings)``, an idle connection at hand (marked reused) or
    # None, for the exchange's plain lane (the end of ``Exchange.begin``; HTTP/1.1, HTTP and HTTPS);
    # such a connection also takes a head made whole: ``start_head(exchange, head, head_request,
    # read_timeout, send_timeout)`` (``http1_upstream.HTTP1Connection.start_head``) and names its
    # endpoint as ``address`` ("host:port", nginx's $upstream_addr).

    def acquire(self, host: str, port: int, settings: Any,
                on_ready: Callable[[UpstreamConnection], None],
                on_error: Callable[[Exception], None]) -> Callable[[], None]:
        """Call ``on_ready`` with a connection (at once when one is idle) or ``on_error`` with
        an ``upstream.UpstreamError``; returns a canceller. ``settings``: the route's
        ``UpstreamSettings`` (``connect_timeout``, ``tls``…)."""

    def close(self) -> None:
        """The server stops: close idle connections."""


class ExchangeForUpstream(Protocol):
    """What a backend connection calls on the exchange it serves."""

    protocol: ClientSide  # corked around each backend read

    def upstream_head(self, connection: UpstreamConnection, status: int, headers: Sequence[Header],
                      length: int | None) -> None: ...

    def upstream_body(self, data: bytes) -> None: ...

    def upstream_trailers(self, trailers: Sequence[Header]) -> None:
        """The response's trailer fields (HTTP/2 backends: gRPC's grpc-status…), before the end."""

    def upstream_done(self, connection: UpstreamConnection, reusable: bool) -> None: ...

    # Optional: ``takes_whole(headers) -> bool`` (True only once the request has ended) and
    # ``upstream_whole(status, headers, for_client, lines, length, body)``. A connection that has
    # a whole response in one read (head and body) asks ``takes_whole`` with its headers; on True
    # it settles itself (no longer the exchange's: its timers stopped; back in its pool when
    # reusable, else closing) and makes the one
    # ``upstream_whole`` call in place of ``upstream_head``, ``upstream_body`` and
    # ``upstream_done`` (``for_client``: the headers without those not for the client,
    # ``lines``: those serialised; the exchange's plain lane, ``Exchange.upstream_whole``).

    def upstream_failed(self, connection: UpstreamConnection | None, error: Exception) -> None: ...

    def upstream_upgraded(self, connection: UpstreamConnection, rest: bytes) -> None: ...

    def upstream_write_paused(self) -> None: ...

    def upstream_write_resumed(self) -> None: ...


class RequestView(Protocol):
    """What a plugin's request, response and error features may read and use of an exchange."""

    method: bytes
    path: str  # normalised, percent-decoded: what routing matched
    target: bytes  # what is sent to the backend
    query: bytes
    host: str
    scheme: str  # "http" or "https" (a trusted proxy's X-Forwarded-Proto included)
    https: bool  # the client's own connection to ingressd is TLS (nginx's $https), whatever a proxy says
    client_ip: str  # the client's address (behind trusted proxies, from X-Forwarded-For)
    peer_ip: str
    request_id: str
    request_uri: bytes  # the target as the client sent it (nginx's $request_uri)
    headers: Any  # ingressd.http.headers.Headers: the request headers, mutable
    upstream_status: int  # the backend's status once its response head arrived, else 0
    upstream_endpoint: Any  # the model.Endpoint of the last try, None before one
    upstream_started: float  # clock.seconds() when the last try began (0.0 before one)
    upstream_ended: float  # … and when its answer ended or it failed (0.0 until then)
    route: Any  # ingressd.config.model.Route
    # What the client's TLS certificate proved (ingressd.tls.client_auth.ClientCertificate:
    # verify, subject, issuer, pem, the policy it was checked under); read on first use.
    client_certificate: Any

    def on_finish(self, callback: Callable[[], None]) -> None: ...

    def on_forward(self, callback: Callable[[Any], None], body_limit: int = 0) -> None:
        """Call ``callback(features.ForwardedRequest)`` once, when the request (its body read
        whole) is about to leave for its backend: the method, target and complete headers the
        backend is sent, and the body as bytes when it is at most ``body_limit`` bytes. Not
        called for a request answered before that (a redirect, a denial)."""


class FinishedExchange(RequestView, Protocol):
    """What ``Proxy.observers`` (the access log, metrics) read of an exchange once it is over."""

    version: bytes  # b"1.1", b"1.0", b"2"
    started: float  # clock.seconds() when the request head was complete
    status: int
    bytes_sent: int  # response body bytes sent
    request_bytes: int  # request head and body bytes received
    tunnel_bytes: tuple[int, int]  # WebSocket bytes (client → backend, backend → client)
    upstream_address: str  # nginx's $upstream_addr: every try's, comma-separated
    upstream_statuses: "int | str"  # nginx's $upstream_status: after retries "502, 200"
    # The tries passed over's statuses ("502, "), "" after one try: then upstream_statuses is
    # upstream_status (what the access log reads, without the property's call, when it is "").
    upstream_trail: str
    upstream_connected: float  # clock.seconds() when the last try had its connection (0.0: none)
    upstream_headed: float  # … when its response head came (0.0: none)
    response_headers: Any  # the response's header pairs as sent, () before (or without) a head
    protocol: ClientSide
    entry: Any  # the route's RouteEntry (its ``alternatives``: the canaries), None without a route


# A finished exchange as ``Proxy.round_observers`` get it: (the exchange, ``time.time()`` and the
# proxy's ``clock.seconds()`` read when it finished), so a line or a metric made later in the round
# is the one it would have been at once.
FinishedNote = tuple[FinishedExchange, float, float]
# ``Proxy.observers`` and ``Proxy.tls_observers``: called with each finished exchange at once (the
# latter only for an exchange of a TLS client connection: what must be read before the connection
# may close, such as its TLS facts, is read there).
ExchangeObserver = Callable[[FinishedExchange], None]
# ``Proxy.round_observers`` (the metrics' ``observe_round``, the access log's): called once a round
# with the round's finished exchanges, in the order they finished (``Proxy.end_round``). When an
# observer wants each round's end (``Proxy.want_rounds``: the access log), at the reactor's round
# end, or on a reactor without ``call_at_round_end``, such as the tests' Clock, at each exchange's
# end with a batch of one, and sooner when 256 are noted; else (the metrics alone) when 64 are
# noted; and whenever an observer must see every exchange finished so far (``end_round``). The batch is shared by the observers and read-only; a failing
# observer is logged and the others still get it.
RoundObserver = Callable[[Sequence[FinishedNote]], None]


class Subrequests(Protocol):
    """HTTP requests a plugin sends itself (a mirror copy, an auth check): the server's is
    ``BuildContext.subrequests`` (``ingressd.proxy.subrequest.SubrequestClient``)."""

    def fetch(self, method: bytes, url: Any, headers: Sequence[Header] = (), body: bytes | None = None, *,
              max_body: int = 65536, discard: bool = False, connect_timeout: float | None = None,
              read_timeout: float | None = None, send_timeout: float | None = None, tls: Any = None) -> Any:
        """A Deferred of a ``SubResponse`` (status, headers, body up to ``max_body``; none kept
        when ``discard``), or failing with a ``SubrequestError``; ``url``: text or a
        ``TargetURL`` (``parse_url``), ``http``/``https``, its host resolved without blocking.
        Connections are pooled with the backends' (``UpstreamProtocol``)."""


class Drainable(Protocol):
    """A client connection during a graceful drain (``ingressd.drain``)."""

    def drain(self) -> None:
        """Stop taking requests: close now if idle, else after the answers in flight
        (HTTP/1: ``Connection: close``; HTTP/2: GOAWAY with the last stream id)."""

    def shut(self) -> None:
        """The grace is over: close now (tunnels say "going away" first)."""


class DrainableGroup(Protocol):
    """The connections of one listener, as the drain sees them (``drain.ConnectionSet``)."""

    def open_connections(self) -> int: ...

    def drain_connections(self) -> None: ...

    def close_connections(self) -> None: ...


class TLSPassthrough(Protocol):
    """What decides, once a TLS connection's ClientHello is read, whether it is passed through
    unterminated (``ssl-passthrough``, TLSRoutes: ``ingressd.tls.passthrough.PassthroughRouter``)."""

    def divert(self, name: str | None, transport: Any, held: bytes) -> "PassedThrough | None":
        """Take the client's ``transport`` over (``held``: the bytes read so far, the hello
        among them) and return what the connection's events go to; None: terminate it."""


class PassedThrough(Protocol):
    """A connection taken over by a ``TLSPassthrough``: the client side's events."""

    def client_data(self, data: bytes) -> None: ...

    def client_read_lost(self) -> None:
        """The client sent its FIN (half-close)."""

    def client_lost(self) -> None: ...


class RouteSource(Protocol):
    """A source of routes: turns the store's objects into a fragment of the one model.

    Registered in ``ingressd.config.sources.ROUTE_SOURCES`` (the Ingress translator,
    ``config.translate.Translator``); one instance per server, so it may keep a cache between
    builds keyed by the identity of the store's packed objects."""

    name: str  # "ingress"
    # The kinds it reads (``config.kinds.KindSpec``: group/version, kind, plural, namespaced,
    # what the reflector keeps, whether it is watched, whether a status writer writes it): the
    # store, the file provider and the Kubernetes provider (REST paths, RBAC) read these.
    kinds: Sequence[Any]

    def translate(self, objects: Any, settings: Any, annotations: Sequence[Any]) -> Any:
        """``objects`` (a store snapshot: kind → {(namespace, name): packed object}),
        ``settings`` (``config.translate.TranslateSettings``) and the plugins' declared
        annotations → a ``config.model.Config`` holding only what this source contributes:
        routes (with their matches, filters and weighted backends), TLS hosts and Secrets,
        rejections, warnings and per-object status. Pure apart from its cache; an invalid
        object becomes a rejection and never blocks the others."""
