"""The HTTP/1.1 parser of the request path, on both sides (clients and backends).

On CPython it is llhttp, Node's strict parser, through httptools. On PyPy httptools runs
through the C-API emulation layer (cpyext), which makes it several times slower than on
CPython; there the default is ``ingressd.http.pyparser``, a pure-Python parser with the same
interface and the same strictness (tested against llhttp). ``INGRESSD_HTTP_PARSER``
(``llhttp`` or ``python``) overrides the choice, for tests and benchmarks.

Interface (httptools'): ``HttpRequestParser(protocol)`` / ``HttpResponseParser(protocol)``
call the protocol's ``on_message_begin``, ``on_url``, ``on_header``, ``on_headers_complete``,
``on_body`` and ``on_message_complete`` when it has them; ``feed_data`` raises
``HttpParserUpgrade`` (offset of the first byte after the head in ``args[0]``) and
``HttpParserError`` (raised while handling a callback's exception, when one raised).
"""

from __future__ import annotations

import os
import platform

NAME = os.environ.get("INGRESSD_HTTP_PARSER") or (
    "python" if platform.python_implementation() == "PyPy" else "llhttp"
)

if NAME == "python":
    from ingressd.http.pyparser import HttpParserError, HttpParserUpgrade, HttpRequestParser, HttpResponseParser
elif NAME == "llhttp":
    from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser, HttpResponseParser
else:
    raise ImportError(f"INGRESSD_HTTP_PARSER must be llhttp or python, not {NAME!r}")

__all__ = ["NAME", "HttpParserError", "HttpParserUpgrade", "HttpRequestParser", "HttpResponseParser",
           "one_call_head_pays"]


def one_call_head_pays(accelerated: bool) -> bool:
    """Whether a one-call plain head (``request_head``, ``response_head``) should run before
    this parser: with its C accelerator, or where this parser is pure Python too (PyPy's
    default), which its Python twin beats. On CPython without the accelerator llhttp alone
    is faster than the twin (docs/benchmarks.md), so there it is off."""
    return accelerated or NAME == "python"
