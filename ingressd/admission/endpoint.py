"""The webhook's HTTPS endpoint: one POST path, a bounded body, a deadline, an AdmissionReview back.

Requests are parsed by ingressd's own strict HTTP/1.1 client side (``http.http1``), which this
module is the request handler of (``interfaces.RequestHandler``). Only ``POST PATH`` (ingress-
nginx's chart calls ``/networking/v1/ingresses``) with a JSON body of at most ``max_body``
bytes is reviewed; the head and the body each have ``timeout`` seconds in all (not per read),
so a slow sender cannot hold a connection. Anything else is answered 404, 405, 413, 415 or
400 in plain text; a review is answered 200 with the AdmissionReview (allowed or not).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from twisted.internet.protocol import Factory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import log

from ingressd.admission.review import BadReview, Decision, Review, answer, parse_review
from ingressd.http.http1 import HTTP1Factory, ServerSettings

PATH = b"/networking/v1/ingresses"
# The API server takes request bodies of up to 3 MiB (its --max-request-bytes default); an
# UPDATE's review carries the object and its old version, with the review's own fields.
MAX_BODY = 7 * 1024 * 1024
TIMEOUT = 10.0  # the API server's default timeoutSeconds for a webhook call (at most 30)

Decide = Callable[[Review], Decision]


class AdmissionHandler:
    """Hands each request to a ``_Call``; ``decide`` judges a parsed review."""

    def __init__(self, decide: Decide, path: bytes = PATH, max_body: int = MAX_BODY,
                 figures: Callable[[], Any] | None = None, timer: Callable[[], float] = time.perf_counter):
        self.decide = decide
        self.path = path
        self.max_body = max_body
        self.figures = figures  # the judge's figures of its last judgement (judge.Figures)
        self.timer = timer
        self.reviews = 0
        self.denied = 0
        self.counts: dict[tuple[str, bool], int] = {}  # (kind, allowed) → reviews answered
        self.last_roundtrip = 0.0  # seconds from the body read to the answer, of the last review

    def __call__(self, protocol, request):
        return _Call(self, protocol, request).start()

    def rejected(self, protocol, request, status: int, bytes_sent: int) -> None:
        """The client side answered a malformed or slow request itself (400, 408…)."""

    def review(self, body: bytes) -> tuple[int, bytes, bytes]:
        """(status, content type, body) for a request body; never raises."""
        started = self.timer()
        try:
            review = parse_review(body)
        except BadReview as exc:
            return 400, b"text/plain; charset=utf-8", f"{exc}\n".encode("utf-8")
        try:
            decision = self.decide(review)
        except Exception:  # noqa: BLE001 - a bug is a 500 for this call, never a crash
            log.err(None, f"ingressd: validating webhook: judging {review.namespace}/{review.name} failed")
            return 500, b"text/plain; charset=utf-8", b"internal error while judging the Ingress\n"
        self.reviews += 1
        if not decision.allowed:
            self.denied += 1
        counted = (review.kind, decision.allowed)
        self.counts[counted] = self.counts.get(counted, 0) + 1
        if review.object is not None:
            verb = "allowed" if decision.allowed else f"refused ({decision.message})"
            log.msg(f"ingressd: validating webhook: {review.operation} {review.kind} {review.namespace}/{review.name}"
                    f"{' (dry run)' if review.dry_run else ''}: {verb}")
        reply = answer(review.uid, decision)
        self.last_roundtrip = self.timer() - started
        return 200, b"application/json", reply


class _Call:
    """One request to the webhook (``interfaces.ExchangeForClient``)."""

    def __init__(self, handler: AdmissionHandler, protocol, request):
        self.handler = handler
        self.protocol = protocol
        self.request = request
        self.body: list[bytes] = []
        self.size = 0
        self.done = False

    def start(self):
        request = self.request
        path = request.target.split(b"?", 1)[0]
        if path != self.handler.path:
            return self._plain(404, b"not found: the webhook's path is " + self.handler.path + b"\n")
        if request.method != b"POST":
            return self._plain(405, b"only POST\n", [(b"allow", b"POST")])
        content_type = dict(request.headers).get(b"content-type", b"application/json")
        if content_type.split(b";", 1)[0].strip().lower() != b"application/json":
            return self._plain(415, b"the body must be application/json\n")
        if (request.content_length or 0) > self.handler.max_body:
            return self._plain(413, b"the review is larger than the webhook takes\n")
        if request.expect_continue:
            self.protocol.send_continue()
        return self

    def _plain(self, status: int, text: bytes, headers=()) -> None:
        self._respond(status, b"text/plain; charset=utf-8", text, headers)
        return None

    def _respond(self, status: int, content_type: bytes, body: bytes, headers=()) -> None:
        self.done = True
        if self.protocol.closed:
            return
        self.protocol.write_head(status, [(b"content-type", content_type), *headers], len(body))
        self.protocol.write_body(body)
        self.protocol.finish_response()

    # -- interfaces.ExchangeForClient ---------------------------------------------------------

    def body_data(self, data: bytes) -> None:
        if self.done:
            return
        self.size += len(data)
        if self.size > self.handler.max_body:  # chunked: the length shows only as it comes
            self.body = []
            self._plain(413, b"the review is larger than the webhook takes\n")
            return
        self.body.append(data)

    def body_done(self) -> None:
        if self.done:
            return
        self.protocol.body_finished()
        body, self.body = b"".join(self.body), []
        self._respond(*self.handler.review(body))

    def client_lost(self) -> None:
        self.done = True

    def client_side_answered(self, status: int, bytes_sent: int) -> None:
        self.done = True  # the body timed out (408)

    def client_paused(self) -> None:
        pass

    def client_resumed(self) -> None:
        pass

    def wants_tunnel(self) -> bool:
        return False

    def tunnel_early_data(self, data: bytes) -> None:
        pass


def webhook_factory(handler: AdmissionHandler, certificate, clock: Any, timeout: float = TIMEOUT) -> Factory:
    """The TLS listener's factory: ``certificate`` an ``IOpenSSLServerConnectionCreator``
    (``ReloadingCertificate``); HTTP/1.1 only, with the deadlines of ``timeout`` seconds."""
    settings = ServerSettings(header_timeout=timeout, body_timeout=timeout, keepalive_timeout=60.0,
                              send_timeout=timeout, max_pipelined=1)
    factory = TLSMemoryBIOFactory(certificate, False, HTTP1Factory(handler, settings, clock, scheme="https"))
    factory.noisy = False
    return factory
