"""The short local answers built-in plugins give (401, 403, 429, 503…), built fresh each time.

A new LocalResponse per answer, because ``response`` hooks mutate the header list they get.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Iterable

from ingressd import LocalResponse

_TEXT = (b"content-type", b"text/plain; charset=utf-8")


def plain(status: int, headers: Iterable[tuple[bytes, bytes]] = ()) -> LocalResponse:
    """``<status> <reason>`` as a text/plain body, with ``headers`` added."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return LocalResponse(status, [_TEXT, *headers], f"{status} {reason}\n".encode("ascii"))
