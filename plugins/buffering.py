"""How request and response bodies are buffered on the way through, per location.

As ingress-nginx (internal/ingress/annotations/proxy, clientbodybuffersize; nginx.tmpl):

- ``proxy-request-buffering``: ``on`` (the default) reads the whole request body before the
  backend is asked; ``off`` streams it to the backend as it arrives (chunked when its length
  is not known, as nginx with ``proxy_http_version 1.1``). ``on``/``off`` in any case, spaces
  trimmed; any other value is the default, as ingress-nginx's parser falls back to it.
- ``client-body-buffer-size`` (nginx size): the request body bytes held in memory; beyond
  them, a temporary file (in ``--temp-path``, unlinked at once). An invalid size is the
  default, as the template then leaves the directive out.
- ``proxy-buffering``: ``off`` (ingress-nginx's default) streams the response with
  backpressure to the backend; ``on`` reads it ahead of a slow client: in memory up to
  ``proxy-buffers-number`` (default 4) × ``proxy-buffer-size`` (default ``4k``), then in a
  temporary file up to ``proxy-max-temp-file-size`` (default ``1024m``; ``0``: no file, the
  backend waits instead), so the backend connection is released as soon as the backend is
  done. A backend's ``X-Accel-Buffering: yes|no`` overrides it per response, as in nginx.
  Invalid values are the defaults, as ingress-nginx's parser falls back to them.
- ``limit-rate`` and ``limit-rate-after``: kilobytes (ingress-nginx renders ``limit_rate Nk``)
  per second to the client, after the first ``limit-rate-after`` kilobytes; ``0`` (or less,
  or not a number: the default) is no limit.

Only annotations that are present are applied: the defaults are the core's (request
buffering on, 64 KiB of a body in memory; response buffering off, 16 KiB in memory, 1 GiB in
a file; no rate limit).
"""

from __future__ import annotations

from ingressd import Annotation, AnnotationError, Phase, UpstreamSettings, hookimpl, parse_int, parse_size
from ingressd import same_for_every_path

_BUFFERS_NUMBER = 4  # ingress-nginx's proxy-buffers-number default
_BUFFER_SIZE = 4096  # … and proxy-buffer-size's (4k)


class Buffering:
    """Phase PROXY: the location's buffering, as typed settings of its route entry (the core
    applies them; nothing runs per request)."""

    phase = Phase.PROXY

    def __init__(self, upstream: UpstreamSettings):
        self.upstream = upstream


def _on_off(value: str) -> bool | None:
    """ingress-nginx's ValidateOptions(on, off; any case, trimmed); anything else: the default."""
    word = value.strip().lower()
    return {"on": True, "off": False}.get(word)


def _size(value: str) -> int | None:
    """An nginx size; an invalid one is the default, as the template leaves the directive out
    (``isValidByteSize``)."""
    try:
        return parse_size(value)
    except AnnotationError:
        return None


def _count(value: str) -> int | None:
    """ingress-nginx's GetIntAnnotation (Go's Atoi); an invalid one is the default."""
    try:
        return parse_int()(value)
    except AnnotationError:
        return None


def _kilobytes(value: str) -> int | None:
    """limit-rate and limit-rate-after: an integer of kilobytes; not above 0: no limit."""
    number = _count(value)
    return None if number is None else max(0, number) * 1024


@hookimpl
def ingressd_annotations():
    return [
        Annotation("proxy-request-buffering", _on_off, None,
                   "on (default): the whole request body before the backend; off: streamed"),
        Annotation("client-body-buffer-size", _size, None,
                   "request body bytes kept in memory before a temporary file (nginx size)"),
        Annotation("proxy-buffering", _on_off, None,
                   "on: the response is read ahead of a slow client; off (default): streamed"),
        Annotation("proxy-buffer-size", _size, None, "size of one response buffer (default 4k)"),
        Annotation("proxy-buffers-number", _count, None, "response buffers in memory (default 4)"),
        Annotation("proxy-max-temp-file-size", _size, None,
                   "largest temporary file of a read-ahead response (default 1024m; 0: none)"),
        Annotation("limit-rate", _kilobytes, None, "kilobytes per second to the client (0: no limit)"),
        Annotation("limit-rate-after", _kilobytes, None, "kilobytes sent before limit-rate applies"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    size, number = values.get("proxy-buffer-size"), values.get("proxy-buffers-number")
    memory = None
    if size is not None or (number is not None and number > 0):
        count = number if number is not None and number > 0 else _BUFFERS_NUMBER
        memory = count * (_BUFFER_SIZE if size is None else size)
    rate = values.get("limit-rate")
    upstream = UpstreamSettings(request_buffering=values.get("proxy-request-buffering"),
                                body_buffer_size=values.get("client-body-buffer-size"),
                                response_buffering=values.get("proxy-buffering"),
                                response_memory=memory,
                                max_temp_file_size=values.get("proxy-max-temp-file-size"),
                                limit_rate=rate or None,
                                limit_rate_after=values.get("limit-rate-after") if rate else None)
    return Buffering(upstream) if upstream != UpstreamSettings() else None
