"""A compiled ``log_format`` as one Python function: the access log's per-line cost.

``compile_line`` writes the source of one function ``line(ex, now)`` for a template
(``ingressd.logformat`` parses it): a statement per variable, then a single f-string of
simple names. The source is made only of our own text: names we number (``_l3`` for the
literal text before variable 3, ``_g3`` for its getter, ``_a3`` for the header name an
``$http_…`` variable reads) and the fixed expressions of ``logformat._INLINE``. The
template's literal text and header names reach the function as values in its globals,
never as source, so nothing a user wrote is ever compiled or evaluated.

Per variable: an inline expression when there is one (no call), else a call of its getter;
no escaping call for the ``_PLAIN`` variables (digits, a clock); one fast escaping call for
the others that returns the value itself when it holds nothing to escape.

With the C accelerator (``ingressd.logline.accelerated``) the function is one expression
instead: the variables' raw values in a tuple, handed with the template's fixed parts
(``form``) to ``join_line``, which formats, escapes and joins them in C in one call; numbers
are handed over as numbers (a piece's ``raw`` expression and kind: ``logformat._RAW``), so
their formatting is C's too; the headers the line reads (``$http_…``, ``$remote_user``'s
Authorization) are read in one ``header_values`` call, and ``$request`` is read and joined in C
(``logline.REQUEST``). Without it, the f-string above: faster in Python than
``join_line``'s pure-Python twin.

The function is ``line(ex, now, end=None)``: ``end``, when given, is the request's end on the
proxy's clock as read when the exchange finished (the access log formats a round's lines at the
round's end, ``ingressd.accesslog``); without it the clock is read at the call, as before. Beside
it, ``lines(held, out)`` runs the same statements in a loop over a round's ``(ex, now, end)``
triples, in one frame: no call of ``line`` per line at the round's end. Its lines go as bytes into
the access log's ``logline.LineBuffer`` ``out`` (``logline.join_line_into``: no str a line with the
C accelerator; the f-string's str encoded and appended without it).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any, Callable

from ingressd import logline

# The proxy's clock in the inline and raw expressions (``$request_time``); in the compiled line it
# is ``end`` when the caller read the clock already.
_CLOCK = "ex.proxy.clock.seconds()"
_CLOCK_OR_END = "(ex.proxy.clock.seconds() if end is None else end)"


@dataclass(frozen=True)
class CompiledPiece:
    """One variable of a template: the literal text before it and how to get its value."""

    literal: str
    getter: Callable[[Any, float], Any]
    inline: str | None  # an expression of ex and now; "{arg}" is replaced by the argument's name
    argument: bytes | None  # the header name an inline $http_… expression reads
    plain: bool  # the value never holds a byte an escaping changes
    raw: tuple[str, int] | None = None  # for join_line: an expression of the raw value and its kind


def compile_line(pieces: list[CompiledPiece], tail: str, escape: str,
                 helpers: dict[str, Any]) -> tuple[Callable[..., str], Callable[..., int]]:
    """``line(exchange, now)`` for these pieces, and ``lines(held, out)``: a round's lines
    (``_define``). ``escape``: default, json or none; ``helpers`` holds the names the inline
    expressions use and ``_write`` (the escaping of one value, None included) and ``_missing``
    (what a plain variable that is not found writes)."""
    if logline.accelerated:
        return _compile_joined(pieces, tail, escape, helpers)
    namespace: dict[str, Any] = dict(helpers)
    statements = []
    names = []
    for index, piece in enumerate(pieces):
        namespace[f"_l{index}"] = piece.literal
        if piece.inline is not None:
            expression = piece.inline
            if piece.argument is not None:
                namespace[f"_a{index}"] = piece.argument
                expression = expression.replace("{arg}", f"_a{index}")
            expression = expression.replace(_CLOCK, _CLOCK_OR_END)
        else:
            namespace[f"_g{index}"] = piece.getter
            expression = f"_g{index}(ex, now)"
        if piece.plain:
            statements.append(f"    v{index} = {expression}\n"
                              f"    if v{index} is None:\n        v{index} = _missing\n")
        else:
            statements.append(f"    v{index} = _write({expression})\n")
        names.append(f"{{_l{index}}}{{v{index}}}")
    namespace["_tail"] = tail
    body = "".join(statements)
    result = f"f\"{''.join(names)}{{_tail}}\""
    into = f"out.append({result}.encode('utf-8', 'surrogateescape'))"
    return _define(f"def line(ex, now, end=None):\n{body}    return {result}\n", body, into,
                   f"<log_format escape={escape}>", namespace)


def _expression(index: int, piece: CompiledPiece, namespace: dict[str, Any]) -> str:
    """The source of variable ``index``'s raw value; its getter or header name put in ``namespace``."""
    if piece.inline is None:
        namespace[f"_g{index}"] = piece.getter
        return f"_g{index}(ex, now)"
    if piece.argument is not None:
        namespace[f"_a{index}"] = piece.argument
        return piece.inline.replace("{arg}", f"_a{index}")
    return piece.inline.replace(_CLOCK, _CLOCK_OR_END)


def _raw_expression(index: int, piece: CompiledPiece, namespace: dict[str, Any]) -> str:
    if piece.raw is None:
        return _expression(index, piece, namespace)
    expression = piece.raw[0]
    if "{getter}" in expression:
        namespace[f"_g{index}"] = piece.getter
        expression = expression.replace("{getter}", f"_g{index}")
    return expression.replace(_CLOCK, _CLOCK_OR_END)


# A header read in an inline or raw expression: by the argument's name (``$http_…``) or a literal one.
_HEADER_GET = re.compile(r"ex\.headers\.get\((_a[0-9]+|b'[a-z0-9-]+')\)")


def _headers_read_once(values: str, namespace: dict[str, Any]) -> tuple[str, str]:
    """The headers the line's expressions read, read in one ``header_values`` call: the statement
    that reads them into ``_h`` and the expressions with each ``ex.headers.get(…)`` as ``_h[k]``."""
    names: list[bytes] = []

    def one(match: re.Match) -> str:
        argument = match.group(1)
        name = namespace[argument] if argument.startswith("_a") else ast.literal_eval(argument)
        if name not in names:
            names.append(name)
        return f"_h[{names.index(name)}]"

    values = _HEADER_GET.sub(one, values)
    if not names:
        return "", values
    namespace["_headers"] = logline.header_values
    namespace["_header_names"] = tuple(names)
    return "    _h = _headers(ex.headers, _header_names)\n", values


def _compile_joined(pieces: list[CompiledPiece], tail: str, escape: str,
                    helpers: dict[str, Any]) -> tuple[Callable[..., str], Callable[..., int]]:
    """``line(ex, now)`` as ``join_line(form, (value, …))``: one tuple, one C call (and one for the
    headers it reads, ``header_values``)."""
    namespace: dict[str, Any] = dict(helpers)
    namespace["_join"] = logline.join_line
    namespace["_into"] = logline.join_line_into
    kinds = bytes(piece.raw[1] if piece.raw is not None else logline.PLAIN if piece.plain else logline.ESCAPED
                  for piece in pieces)
    namespace["_form"] = (tuple(piece.literal for piece in pieces), kinds, tail, logline.ESCAPES[escape])
    values = "".join(f"{_raw_expression(index, piece, namespace)}, " for index, piece in enumerate(pieces))
    headers, values = _headers_read_once(values, namespace)
    result = f"_join(_form, ({values}))"
    source = f"def line(ex, now, end=None):\n{headers}    return {result}\n"
    # The round's loop: ``end`` is always given there.
    values = "".join(f"{_raw_expression(index, piece, namespace).replace(_CLOCK_OR_END, 'end')}, "
                     for index, piece in enumerate(pieces))
    headers, values = _headers_read_once(values, namespace)
    return _define(source, headers, f"_into(_form, ({values}), out)", f"<log_format escape={escape} joined>",
                   namespace)


def _define(source: str, body: str, into: str, name: str, namespace: dict[str, Any]) -> tuple[Callable, Callable]:
    """``line`` (``source``) and ``lines``: the same statements (``body``, each indented by four
    spaces) and ``into`` (the statement that appends the line's bytes to ``out``) in a loop over a
    round's held exchanges, in one frame. ``lines(held, out)`` appends each ``(ex, now, end)``'s
    line's bytes to the ``logline.LineBuffer`` ``out``, in order (a line its bound drops is counted
    there); skips a line whose reads fail (nothing of it in ``out``) and returns how many it skipped."""
    inner = "".join(f"        {line}\n" for line in body.splitlines())
    source += ("def lines(held, out):\n    failed = 0\n"
               "    for ex, now, end in held:\n        try:\n"
               f"{inner}"
               f"            {into}\n"
               "        except Exception:  # one odd record must not stop the log\n"
               "            failed += 1\n    return failed\n")
    exec(compile(source, name, "exec"), namespace)  # noqa: S102 - our own source text, see the module docstring
    return namespace["line"], namespace["lines"]
