"""Request mirroring: ``mirror-target``, ``mirror-request-body`` and ``mirror-host``.

A copy of each request a route forwards to its backend is sent to the mirror target through
the server's sub-request client (``context.subrequests``), and its answer is discarded.

What ingress-nginx renders (nginx.tmpl, template.go ``buildMirrorLocations``) and so what
ingressd does:

- ``mirror-target: URL`` → ``mirror "/_mirror-<Ingress UID>"`` in every location of the Ingress
  and ``location = /_mirror-<UID> { proxy_set_header Host <mirror-host>; proxy_pass <URL>; }``.
  The value passes ingress-nginx's ``ValidateServerName`` (letters, digits, ``-._~/:`` and
  ``^$[](){}*+?|&=\\``); ingressd also requires a URL it can send to: ``http`` or ``https``, a
  literal host (a name or an IP) and port, no user information; anything else rejects the
  Ingress (ingress-nginx logs a warning and renders a mirror that never answers). What the
  mirror is asked for follows nginx's ``proxy_pass``: a URL with variables (``$request_uri``,
  ``$host``, ``$scheme``, ``$remote_addr``, ``$request_id``) is sent as expanded, nothing
  appended (``https://m/$request_uri`` asks for ``//path?query``, as nginx does); a URL with a
  path and no variable asks for that path, the request's query appended (``?args``); a URL
  without a path asks for the request's own URI (nginx would ask for its internal location
  ``/_mirror-<UID>?args``; ingressd does not know the Ingress's UID).
- ``mirror-request-body: on|off`` (default on; spaces dropped): off sends no body. Any other
  value rejects the Ingress (ingress-nginx falls back to on).
- ``mirror-host``: the Host header of the copy (variables as above); by default the target's
  host name without its port (Go's ``url.Hostname()``), as ingress-nginx.

The copy carries the method, the target as above, and the headers the backend is sent
(ingressd's forwarding headers and the header annotations' changes included). It never slows
or fails the real request: it leaves when the request leaves for its backend (the body read
whole), on its own connection, and the client's answer never waits for it (nginx keeps the
client's keep-alive connection until its mirror sub-requests end; ingressd does not). At
most ``--mirror-max-in-flight`` copies (default 64) are outstanding per mirror target: beyond
that a copy is dropped and counted, so a slow or dead mirror costs bounded memory and sockets
instead of piling up requests. A body over ``--mirror-max-body-size`` (default 1m) is not
copied: that request is not mirrored (a copy without its body would mislead the mirror).
Timeouts are the server's ``--proxy-*-timeout`` (nginx's mirror location has no others).
The copies are sent by ``_mirroring.Mirror``, the code the Gateway API's RequestMirror uses.
"""

from __future__ import annotations

import re
from typing import Any

from ingressd import (
    Annotation,
    AnnotationError,
    Option,
    SubrequestError,
    check_plain_text,
    hookimpl,
    parse_size,
    parse_url,
)
from ingressd import same_for_every_path

from ._header_values import parse_value
from ._mirroring import MAX_BODY, MAX_IN_FLIGHT, Limit, Mirror, Target, mirror_to  # noqa: F401 (re-exported)

# ingress-nginx's IsValidRegex, which ValidateServerName applies (parser/validators.go).
_SERVER_NAME = re.compile(r"[/\-._~a-zA-Z0-9:^$\[\](){}*+?|&=\\]*")


def parse_target(text: str) -> Target:
    value = check_plain_text(text.strip())
    if not _SERVER_NAME.fullmatch(value):
        raise AnnotationError(f"{value!r} is not a valid mirror target (ingress-nginx allows letters, digits, "
                              "-._~/: and ^$[](){}*+?|&=\\)")
    dollar = value.find("$")
    literal = value if dollar < 0 else value[:dollar]
    scheme_end = literal.find("://")
    if dollar >= 0 and (scheme_end < 0 or not re.search(r"[/?]", literal[scheme_end + 3:])):
        raise AnnotationError(f"{value!r}: variables may only be used in the path of the mirror target, "
                              "after a literal scheme and host")
    authority = literal
    if dollar >= 0:
        cut = min(i for i in (literal.find("/", scheme_end + 3), literal.find("?", scheme_end + 3)) if i >= 0)
        authority = literal[:cut]
    try:
        url = parse_url(authority if dollar >= 0 else value)
    except SubrequestError as exc:
        raise AnnotationError(str(exc)) from None
    if dollar < 0:
        return Target(url, None, value)
    path = parse_value(value[len(authority):], "mirror-target: ")
    return Target(url, path, value)


def parse_request_body(text: str) -> bool:
    value = text.replace(" ", "")
    if value not in ("on", "off"):
        raise AnnotationError(f"expected on or off, got {text!r}")
    return value == "on"


def parse_host(text: str) -> Any:
    value = check_plain_text(text.strip())
    if not value or not _SERVER_NAME.fullmatch(value):
        raise AnnotationError(f"{value!r} is not a valid host name")
    return parse_value(value, "mirror-host: ")


@hookimpl
def ingressd_options():
    return [
        Option("mirror-max-in-flight", MAX_IN_FLIGHT, "mirror copies outstanding per mirror target; more are dropped",
               int),
        Option("mirror-max-body-size", "1m", "largest request body copied to a mirror (a larger request is not "
               "mirrored)", parse_size),
    ]


@hookimpl
def ingressd_annotations():
    return [
        Annotation("mirror-target", parse_target, None, "sends a copy of each request to this URL"),
        Annotation("mirror-request-body", parse_request_body, True, "on: the copy carries the request body"),
        Annotation("mirror-host", parse_host, None, "the Host header of the copies (default: the target's host)"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    target = values.get("mirror-target")
    if target is None:
        return None
    host = values.get("mirror-host") or parse_value(target.url.host)
    limits = context.plugin_state("mirror").setdefault("limits", {})
    return mirror_to(target, values.get("mirror-request-body", True), host, context, limits)
