"""Whether ingressd can honour one Ingress's ingress-nginx annotations: served, served with
differences, or not served.

``assess`` reads the annotations as written against the catalogue (``ingressd.compat.catalogue``) and
the names the loaded plugins own. An annotation ingressd does not honour is a *difference* when
ignoring it is harmless (or when the operator accepted that, by ``--ignore-annotation`` or the
Ingress's own ``ingressd.io/ignore-annotations``), and *blocking* otherwise: ignoring it would
widen access or send traffic elsewhere, so the Ingress is not served (never fail open). The
translator and ``ingressd check`` both call it, so they give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Mapping

from ingressd.compat.catalogue import (
    BOOL,
    CHANGES_TRAFFIC,
    HARMLESS,
    INT,
    NARROWS_ACCESS,
    NOT_NEEDED,
    PARTIAL,
    REFUSED,
    SIZE,
    WORD,
    Entry,
    lookup,
)
from ingressd.features import INGRESSD_PREFIX, NGINX_PREFIX, parse_bool, parse_size

IGNORE_ANNOTATION = INGRESSD_PREFIX + "ignore-annotations"


@dataclass(frozen=True, slots=True)
class Problem:
    """One annotation of an Ingress that ingressd does not do exactly as ingress-nginx."""

    annotation: str  # the key as written, e.g. "nginx.ingress.kubernetes.io/auth-url"
    name: str  # without the prefix
    reason: str  # a sentence naming the annotation
    blocking: bool  # True: the Ingress is not served

    def __str__(self) -> str:
        return self.reason


def ignore_list(value: str) -> frozenset[str]:
    """The names in ``ingressd.io/ignore-annotations`` or ``--ignore-annotation``: with or without a prefix."""
    names = set()
    for item in value.split(","):
        item = item.strip()
        for prefix in (NGINX_PREFIX, INGRESSD_PREFIX):
            if item.startswith(prefix):
                item = item[len(prefix):]
        if item:
            names.add(item)
    return frozenset(names)


def assess(raw: Mapping[str, str], owned: Collection[str], ignored: Collection[str] = ()) -> tuple[Problem, ...]:
    """The problems with one Ingress's annotations ``raw``.

    ``owned``: the annotation names a loaded plugin declares (they are parsed and validated
    by their plugin, not here); ``ignored``: names the operator accepts ignoring controller-wide.
    """
    if not any(key.startswith((NGINX_PREFIX, INGRESSD_PREFIX)) for key in raw):
        return ()
    accepted = set(ignored)
    own_ignores = raw.get(IGNORE_ANNOTATION)
    if own_ignores is not None:
        accepted |= ignore_list(own_ignores)
    problems: list[Problem] = []
    for key in sorted(raw):
        if key.startswith(NGINX_PREFIX):
            name = key[len(NGINX_PREFIX):]
        elif key.startswith(INGRESSD_PREFIX):
            name = key[len(INGRESSD_PREFIX):]
            if key == IGNORE_ANNOTATION or name in owned:
                continue
            problems.append(Problem(key, name, f"annotation {key} is not known to ingressd and is ignored", False))
            continue
        else:
            continue
        if not raw[key].strip():
            continue  # ingress-nginx reads an empty value as absent
        entry = lookup(name)
        if name in owned:
            if entry is not None and entry.status == PARTIAL and not _asks_nothing(entry, raw, raw[key]):
                problems.append(Problem(key, name, f"annotation {key} is served with a difference: {entry.note}",
                                        False))
            continue
        if entry is None:
            problems.append(Problem(key, name, f"annotation {key} is not an ingress-nginx annotation; ignored", False))
            continue
        if entry.status == NOT_NEEDED or _asks_nothing(entry, raw, raw[key]):
            continue
        if entry.requires is not None and entry.requires not in owned:
            continue  # its switch is on and not honoured either: that one problem covers both
        problems.append(_unhonoured(key, entry, raw[key], accepted))
    return tuple(problems)


def _unhonoured(key: str, entry: Entry, value: str, accepted: Collection[str]) -> Problem:
    name = entry.name
    if entry.status == REFUSED:
        effect = snippet_effect(value) if name in _FREE_SNIPPETS else entry.effect
        what = "snippets are never supported (ingressd pastes no annotation into text something interprets)"
    else:
        effect = entry.effect
        what = "it is not supported by ingressd" + (f" ({entry.note})" if entry.note else "")
    if effect == HARMLESS:
        if entry.status == REFUSED:
            return Problem(key, name, f"annotation {key} is ignored: {what}; it only sets headers, compression, "
                                      "logging or buffers, so ignoring it is harmless", False)
        return Problem(key, name, f"annotation {key} is not supported by ingressd and is ignored"
                                  + (f" ({entry.note})" if entry.note else "") + "; ignoring it is harmless", False)
    consequence = ("let in clients it keeps out" if effect == NARROWS_ACCESS
                   else "send traffic elsewhere, or otherwise, than it asks")
    if not entry.ignorable:
        return Problem(key, name, f"annotation {key}: {what}; the Ingress is not served until it is", True)
    if name in accepted:
        return Problem(key, name, f"annotation {key} is ignored as the operator asked (--ignore-annotation or "
                                  f"{IGNORE_ANNOTATION}): {what}, and serving without it may {consequence}",
                       False)
    return Problem(key, name, f"annotation {key}: {what}, and serving the Ingress without it would "
                              f"{consequence}; not served (accept that with --ignore-annotation {name} "
                              f"or the Ingress annotation {IGNORE_ANNOTATION}: \"{name}\")", True)


def _asks_nothing(entry: Entry, raw: Mapping[str, str], value: str) -> bool:
    """True when the value is ingress-nginx's default or the annotation's switch is off."""
    if entry.default is not None and same_value(entry, value, entry.default):
        return True
    if entry.requires is not None:
        switch = lookup(entry.requires)
        text = raw.get(INGRESSD_PREFIX + entry.requires, raw.get(NGINX_PREFIX + entry.requires))
        if text is None or switch is None or not text.strip():
            return True
        if switch.default is not None and same_value(switch, text, switch.default):
            return True
    return False


def same_value(entry: Entry, value: str, default: str) -> bool:
    """Whether ``value`` means the same as ``default`` to ingress-nginx (an unreadable value does not)."""
    value, default = value.strip(), default.strip()
    if entry.kind == BOOL:
        return _read(parse_bool, value) is not None and _read(parse_bool, value) == _read(parse_bool, default)
    if entry.kind == INT:
        return value.lstrip("-").isdigit() and int(value) == int(default)
    if entry.kind == SIZE:
        return _read(parse_size, value) is not None and _read(parse_size, value) == _read(parse_size, default)
    if entry.kind == WORD:
        return value.lower() == default.lower()
    return " ".join(value.split()) == " ".join(default.split())


def _read(parse, text: str):
    """What ``parse`` (features' readers of annotation values) makes of ``text``; None when it
    cannot read it."""
    try:
        return parse(text)
    except ValueError:  # AnnotationError included
        return None


# -- snippets -----------------------------------------------------------------------------

# Snippets whose effect depends on what they say; auth-snippet and modsecurity-snippet always
# guard access.
_FREE_SNIPPETS = frozenset(("configuration-snippet", "server-snippet", "stream-snippet"))

# Directives whose absence changes no access decision and no destination: headers added to
# responses, compression, logging, buffers and timeouts. A snippet of only these is ignored
# with a warning; any other directive keeps the Ingress from being served.
_HARMLESS_DIRECTIVES = frozenset((
    "more_set_headers", "more_clear_headers", "add_header", "add_trailer", "expires", "etag",
    "charset", "source_charset", "gzip", "gzip_types", "gzip_proxied", "gzip_comp_level",
    "gzip_min_length", "gzip_vary", "gzip_disable", "gzip_http_version", "brotli", "brotli_types",
    "brotli_comp_level", "access_log", "error_log", "log_not_found", "server_tokens",
    "chunked_transfer_encoding", "sendfile", "tcp_nodelay", "tcp_nopush", "keepalive_timeout",
    "keepalive_requests", "send_timeout", "proxy_read_timeout", "proxy_send_timeout",
    "proxy_connect_timeout", "proxy_buffering", "proxy_buffer_size", "proxy_buffers",
    "proxy_busy_buffers_size", "proxy_max_temp_file_size", "proxy_request_buffering",
    "client_body_buffer_size", "client_body_timeout", "client_header_timeout", "proxy_http_version",
    "proxy_hide_header", "proxy_pass_header", "proxy_ignore_client_abort",
))
_ACCESS_DIRECTIVES = frozenset((
    "allow", "deny", "auth_basic", "auth_basic_user_file", "auth_request", "auth_request_set",
    "satisfy", "limit_req", "limit_conn", "limit_rate", "limit_rate_after", "limit_except",
    "valid_referers", "access_by_lua", "access_by_lua_block", "access_by_lua_file",
    "ssl_verify_client", "ssl_client_certificate", "modsecurity", "modsecurity_rules",
))


def snippet_effect(text: str) -> str:
    """What ignoring an nginx snippet would do, judged by its directives (``HARMLESS`` only
    when every one is known harmless; a snippet we cannot read is never harmless)."""
    directives = snippet_directives(text)
    if directives is None:
        return CHANGES_TRAFFIC
    if any(d in _ACCESS_DIRECTIVES for d in directives):
        return NARROWS_ACCESS
    if all(d in _HARMLESS_DIRECTIVES for d in directives):
        return HARMLESS
    return CHANGES_TRAFFIC


def snippet_directives(text: str) -> list[str] | None:
    """The directive names of an nginx configuration fragment, blocks included, read as nginx
    reads tokens (ngx_conf_read_token); None when it cannot be read (an unclosed quote, a
    character right after a closing quote)."""
    directives: list[str] = []
    word: str | None = None  # the token being read, None between tokens
    quote, expect_name, escaped, closed = "", True, False, False
    i = 0
    while i < len(text):
        char = text[i]
        i += 1
        if quote:
            if escaped:
                word += char
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote, closed = "", True
            else:
                word += char
            continue
        if closed:  # a quoted token ends at its closing quote: only a separator (or ")") may follow
            if not (char.isspace() or char in ";{})"):
                return None
            closed = False
            if char == ")":
                char = " "  # as nginx: it ends the quoted token like a space (an if's condition)
        # A quote or a # starts a quoted token or a comment only where a token starts; inside
        # one they are ordinary characters.
        if word is None and char in "\"'":
            quote, word = char, ""
            continue
        if word is None and char == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        if char.isspace() or char in ";{}":
            if word is not None and expect_name:
                directives.append(word)
                expect_name = False
            word = None
            if char in ";{}":
                expect_name = True
            continue
        word = char if word is None else word + char
    if quote:
        return None
    if word is not None and expect_name:
        directives.append(word)
    return directives
