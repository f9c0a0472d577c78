"""Adds ``X-Example: <value>`` to the responses of Ingresses annotated ``ingressd.io/example-header``."""

from __future__ import annotations

import re

from ingressd import Annotation, AnnotationError, Phase, hookimpl

# Printable ASCII without control characters: the value goes verbatim into a header.
_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]{0,254}[\x21-\x7e])?")


def parse_value(text: str) -> str:
    if not _VALUE.fullmatch(text):
        raise AnnotationError("expected 1 to 256 printable ASCII characters, no leading or trailing space")
    return text


class ExampleHeader:
    """The per-route feature: appends its header to every response (proxied or local)."""

    phase = Phase.PROXY

    def __init__(self, value: str):
        self._header = (b"x-example", value.encode("ascii"))

    def response(self, exchange, status: int, headers: list) -> None:
        headers.append(self._header)


@hookimpl
def ingressd_annotations():
    return [Annotation("example-header", parse_value, None, "adds X-Example: <value> to responses")]


@hookimpl
def ingressd_route_features(route, values, context):
    value = values.get("example-header")
    return ExampleHeader(value) if value is not None else None
