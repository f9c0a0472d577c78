"""Reading a request cookie, as nginx's ``$cookie_NAME``: the first ``NAME=value`` pair of the
``Cookie`` headers (a pair without ``=`` is no cookie of that name)."""

from __future__ import annotations

from typing import Any


def cookie(headers: Any, name: bytes) -> bytes | None:
    """The value of the request cookie ``name`` (case-sensitive), or None when it is absent."""
    for line in headers.get_all(b"cookie"):
        for pair in line.split(b";"):
            key, equals, value = pair.strip().partition(b"=")
            if equals and key == name:
                return value
    return None
