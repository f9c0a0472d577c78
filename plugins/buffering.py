"""How request and response bodies are buffered on the way through, per location.

As ingress-nginx (internal/ingress/annotations/proxy, clientbodybuffersize; nginx.tmpl):

- ``proxy-request-buffering``: ``on`` (the default) reads the whole request body before the
  backend is asked; ``off`` streams it to the backend as it arrives (chunked when its length
  is not known, as nginx with ``proxy_http_version 1.1``). ``on``/``off`` in any case, spaces
  trimmed; any other value is the default, as ingress-nginx's parser falls back to it.
- ``client-body-buffer-size`` (nginx size): the request body bytes held in memory; beyond
  them, a temporary file (in ``--temp-path``, unlinked at once). An invalid size is the
  default, as the template then leaves the directive out.

Only annotations that are present are applied: the defaults are the core's (request
buffering on, 64 KiB of a body in memory).
"""

from __future__ import annotations

from ingressd import Annotation, AnnotationError, Phase, UpstreamSettings, hookimpl, parse_size


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


@hookimpl
def ingressd_annotations():
    return [
        Annotation("proxy-request-buffering", _on_off, None,
                   "on (default): the whole request body before the backend; off: streamed"),
        Annotation("client-body-buffer-size", _size, None,
                   "request body bytes kept in memory before a temporary file (nginx size)"),
    ]


@hookimpl
def ingressd_route_features(route, values, context):
    upstream = UpstreamSettings(request_buffering=values.get("proxy-request-buffering"),
                                body_buffer_size=values.get("client-body-buffer-size"))
    return Buffering(upstream) if upstream != UpstreamSettings() else None
