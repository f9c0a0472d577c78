"""One rewritten request target: the path (and query) the backend is sent after a rewrite — the
same code for ``rewrite-target`` (``rewrite``) and the Gateway API's ``URLRewrite`` path and
``RequestRedirect`` path (``gateway_filters``).

Each plugin computes the new path its own way (``rewrite-target``: nginx's regular-expression
rewrite with ``$1``…``$9``; the Gateway API: ``ReplaceFullPath`` / ``ReplacePrefixMatch``,
``gateway_filters.modified_path``); what is made of it is done here once: the path
percent-encoded where it must be (nginx escapes less), then the query — the request's kept
(after ``?``, or after the target's own arguments with ``&``), unless the target drops it.
"""

from __future__ import annotations

from urllib.parse import quote

_PATH_SAFE = "/:@!$&'()*+,;=-._~%"  # what stays as it is in a rewritten path (nginx escapes less)
_ARGS_SAFE = _PATH_SAFE + "?"


def encode_path(path: str) -> bytes:
    """A path as it is sent after a rewrite: percent-encoded where it must be (nginx escapes less)."""
    return quote(path, safe=_PATH_SAFE).encode("ascii")


def with_args(uri: bytes, args: str | None, query: bytes, keep_query: bool = True, quote_args: bool = True) -> bytes:
    """``uri`` with the target's own ``args`` (if any) and the request's ``query`` (if kept)."""
    if args:
        encoded = quote(args, safe=_ARGS_SAFE).encode("ascii") if quote_args else args.encode("utf-8")
        uri += b"?" + encoded
        if keep_query and query:
            uri += b"&" + query
    elif keep_query and query:
        uri += b"?" + query
    return uri


def rewritten_target(path: str, query: bytes, args: str | None = None, keep_query: bool = True) -> bytes:
    """The request target the backend is sent for the new ``path``."""
    return with_args(encode_path(path), args, query, keep_query)
