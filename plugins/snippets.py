"""``configuration-snippet`` and ``server-snippet``, run as data: the nginx subset ``ingressd.snippets`` reads.

A snippet is parsed once when routes are built (``parse_snippet``); per request only the
parsed directives run, at nginx's phases:

- REWRITE: ``rewrite``, ``return`` and ``if`` in order, as nginx's rewrite module runs them
  (the server-snippet's first, as nginx's server-rewrite phase comes before the location's).
- ACCESS: ``allow`` / ``deny``, first match wins, ``deny`` → 403; no match lets the client in.
- PROXY: ``more_set_input_headers`` / ``more_clear_input_headers`` (headers-more runs them at
  the end of nginx's rewrite phase; here after access control, so authentication sees the
  client's own headers) and ``proxy_set_header`` (an empty value: the header is not sent).
- response: ``proxy_hide_header``, ``add_header`` (only for 200, 201, 204, 206, 301, 302,
  303, 304, 307, 308 unless ``always``; an empty value adds nothing), then
  ``more_set_headers`` (replaces, for every status unless ``-s``/``-t`` narrow it) and
  ``more_clear_headers``.

Levels merge as nginx merges them: the server-snippet's directives are the server block's,
the configuration-snippet's the location's, an ``if`` block's its own level. ``add_header``,
``proxy_hide_header`` and ``allow``/``deny`` of an inner level replace the outer level's
(nginx's array inheritance); headers-more directives of both levels run, outer first.
``proxy_set_header`` in a server-snippet has no effect, as in ingress-nginx, whose every
location sets its own. When an ``if`` holds, its directives apply (the last ``if`` that
holds wins, as in nginx). ``rewrite … last`` and a rewrite without flag do not search the
routes again: the route matched first serves the new URI.

A server-snippet applies to every route of its host (ingress-nginx renders it in the
server block); when several Ingresses of one host set one, the oldest Ingress's is used and
the others' are skipped, as ingress-nginx does (its controller keeps the first it meets).

A snippet outside the subset is not parsed here: ``ingressd.compat.assess`` judges it with
the same parser and refuses its Ingress, naming the directive and the line, unless the
operator accepted ignoring it (then this plugin ignores it too).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ingressd import (
    Annotation,
    LocalResponse,
    Phase,
    SnippetError,
    hookimpl,
    parse_snippet,
)
from ingressd import same_for_every_path
from ingressd import snippets as t

from ._cidr import CidrMatcher
from ._cookies import cookie
from ._responses import absolute_location, plain

_ADD_HEADER_STATUSES = frozenset((200, 201, 204, 206, 301, 302, 303, 304, 307, 308))
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_ARGS_SAFE = _PATH_SAFE + "?"
_HTML = (b"content-type", b"text/html")  # ingress-nginx's default_type
_STATE = "snippets"  # the plugin_state key


def _parse(context: str):
    def parse(value: str):
        try:
            return parse_snippet(value, context)
        except SnippetError:
            return None  # not honoured: assess refuses the Ingress, or the operator accepted ignoring it

    return parse


# -- levels ---------------------------------------------------------------------------------


class _Headers:
    """The header and access directives in force at one level (after nginx's merge)."""

    __slots__ = ("more_out", "more_in", "add", "hide", "proxy", "access")

    def __init__(self, more_out=(), more_in=(), add=(), hide=(), proxy=(), access=None):
        self.more_out, self.more_in, self.add, self.hide, self.proxy = more_out, more_in, add, hide, proxy
        self.access = access  # None: no allow/deny at this level

    @classmethod
    def of(cls, directives: tuple, parent: "_Headers | None", server: bool) -> "_Headers":
        parent = parent or _Headers()
        own_add = tuple(d for d in directives if isinstance(d, t.AddHeader))
        own_hide = tuple(d for d in directives if isinstance(d, t.HideHeader))
        own_access = tuple(d for d in directives if isinstance(d, t.Access))
        return cls(
            parent.more_out + tuple(d for d in directives if isinstance(d, (t.SetHeaders, t.ClearHeaders))),
            parent.more_in + tuple(d for d in directives if isinstance(d, (t.SetInputHeaders, t.ClearInputHeaders))),
            own_add or parent.add,
            own_hide or parent.hide,
            () if server else (tuple(d for d in directives if isinstance(d, t.ProxySetHeader)) or parent.proxy),
            _access(own_access) if own_access else parent.access,
        )


def _access(rules: tuple) -> tuple:
    return tuple((rule.allow, None if rule.network is None else CidrMatcher((rule.network,))) for rule in rules)


class _Level:
    """One snippet (server or location): its rewrite program and its headers, merged per ``if``."""

    def __init__(self, snippet: Any, server: bool, parent: "_Level | None" = None,
                 redirects: tuple[bool, bool] = (False, False)):
        self.server = server
        # (relative-redirects, use-port-in-redirects): how this Ingress's redirects to a path look
        self.redirects = redirects
        self.program = tuple(d for d in snippet.directives if isinstance(d, (t.Return, t.Rewrite, t.If)))
        self.headers = _Headers.of(snippet.directives, None, server)
        self.directives = snippet.directives
        # An if's level, by the If's identity (merged over this level's headers when the request runs).
        self.ifs = {id(d): d.body for d in snippet.directives if isinstance(d, t.If)}

    def merged(self, parent: _Headers | None, chosen_if: Any) -> _Headers:
        mine = _Headers.of(self.directives, parent, self.server)
        if chosen_if is not None:
            mine = _Headers.of(chosen_if.body, mine, self.server)
        return mine


class _State:
    """One request's rewrite state: the URI and arguments as the directives left them."""

    __slots__ = ("uri", "args", "request_uri", "captures", "changed", "headers", "final")

    def __init__(self, exchange: Any):
        self.uri = exchange.path
        self.args = exchange.query.decode("latin-1")
        target = exchange.target.decode("latin-1")
        self.request_uri = target if target.startswith("/") else exchange.path
        self.captures: tuple = ()
        self.changed = False
        self.headers: _Headers | None = None
        self.final: Any = None  # the level whose headers and access rules the request gets


# -- variables ------------------------------------------------------------------------------


_LOCATION_VARIABLES = {
    "namespace": lambda route: route.ingress.namespace,
    "ingress_name": lambda route: route.ingress.name,
    "service_name": lambda route: route.backend.service,
    "service_port": lambda route: str(route.backend.port),
    "location_path": lambda route: route.path,
}


def _value(name: str, exchange: Any, state: _State) -> str:
    if name.isdigit():
        index = int(name)
        return (state.captures[index - 1] or "") if index <= len(state.captures) else ""
    if name == "host":
        return exchange.host
    if name == "scheme":
        return exchange.scheme
    if name == "uri":
        return state.uri
    if name == "args":
        return state.args
    if name == "request_uri":
        return state.request_uri
    if name == "remote_addr":
        return exchange.client_ip
    if name == "request_method":
        return exchange.method.decode("latin-1")
    if name in ("request_id", "req_id"):
        return exchange.request_id
    if name == "server_port":
        return str(getattr(exchange, "server_port", ""))
    if name in _LOCATION_VARIABLES:  # what ingress-nginx's template sets for the Ingress path served
        route = exchange.route
        return _LOCATION_VARIABLES[name](route) if route is not None else ""
    if name.startswith("http_"):
        found = exchange.headers.get_all(name[5:].replace("_", "-").encode("latin-1"))
        if name == "http_cookie":
            return "; ".join(v.decode("latin-1") for v in found)
        return found[0].decode("latin-1") if found else ""
    if name.startswith("cookie_"):
        value = cookie(exchange.headers, name[7:].encode("latin-1"))
        return value.decode("latin-1") if value is not None else ""
    if name.startswith("arg_"):
        wanted = name[4:].lower()
        for item in state.args.split("&"):
            key, _, value = item.partition("=")
            if key.lower() == wanted:
                return value
        return ""
    raise AssertionError(name)  # the parser admits no other


def _expand(template: Any, exchange: Any, state: _State) -> str:
    return "".join(part if isinstance(part, str) else _value(part.name, exchange, state)
                   for part in template.parts)


def _holds(condition: Any, exchange: Any, state: _State) -> bool:
    value = _value(condition.variable.name, exchange, state)
    operator = condition.operator
    if not operator:
        return value not in ("", "0")
    if operator in ("=", "!="):
        return (value == _expand(condition.operand, exchange, state)) == (operator == "=")
    found = condition.regex.search(value)
    if found is not None and not operator.startswith("!"):
        state.captures = found.groups()
    return (found is not None) != operator.startswith("!")


# -- the rewrite program --------------------------------------------------------------------

_STOP = object()


def _run(program: tuple, exchange: Any, state: _State, level: _Level, chosen: list) -> Any:
    """nginx's rewrite module over ``program``: a LocalResponse, _STOP (break/last) or None."""
    for directive in program:
        if isinstance(directive, t.Return):
            return _answer(directive, exchange, state, level)
        if isinstance(directive, t.Rewrite):
            found = directive.regex.search(state.uri)
            if found is None:
                continue
            state.captures = found.groups()
            answer = _rewrite(directive, exchange, state, level)
            if answer is not None:
                return answer
            if directive.flag in ("break", "last"):
                return _STOP
            continue
        if isinstance(directive, t.If) and _holds(directive.condition, exchange, state):
            chosen[0] = directive
            result = _run(directive.body, exchange, state, level, chosen)
            if result is not None:
                return result
    return None


def _answer(directive: Any, exchange: Any, state: _State, level: _Level) -> LocalResponse:
    status, text = directive.status, directive.text
    if status in t.REDIRECT_CODES and text is not None:
        return _redirect(status, _expand(text, exchange, state).encode("utf-8"), exchange, level)
    if text is not None:
        return LocalResponse(status, [_HTML], _expand(text, exchange, state).encode("utf-8"))
    if status >= 300:
        return plain(status)
    return LocalResponse(status, [_HTML], b"")


def _redirect(status: int, location: bytes, exchange: Any, level: _Level) -> LocalResponse:
    """nginx's redirect: a path made absolute (``absolute_redirect on``, ingress-nginx's default)
    unless the Ingress says ``relative-redirects``; the port with ``use-port-in-redirects``."""
    absolute = absolute_location(exchange, location, *level.redirects)
    if absolute is None:
        return plain(400)
    return plain(status, [(b"location", absolute)])


def _rewrite(directive: Any, exchange: Any, state: _State, level: _Level) -> LocalResponse | None:
    replacement = _expand(directive.replacement, exchange, state)
    uri, mark, args = replacement.partition("?")
    keep = not (mark and not args)  # a final "?" drops the request's arguments
    old_args = state.args
    if mark:
        new_args = args + ("&" + old_args if keep and old_args else "")
    else:
        new_args = old_args
    if directive.redirects:
        location = uri + ("?" + new_args if new_args else "")
        return _redirect(301 if directive.flag == "permanent" else 302, location.encode("utf-8"), exchange, level)
    state.uri, state.args, state.changed = uri, new_args, True
    return None


# -- features -------------------------------------------------------------------------------


class SnippetRewrite:
    """REWRITE: a level's rewrite program (``rewrite``, ``return``, ``if``)."""

    def __init__(self, level: _Level, states: dict):
        self.level = level
        self.phase = Phase.REWRITE - 1 if level.server else Phase.REWRITE
        self.host_wide = level.server
        self._states = states

    def request(self, exchange: Any) -> LocalResponse | None:
        states, key = self._states, id(exchange)
        state = states.get(key)
        if state is None:
            state = states[key] = _State(exchange)
            exchange.on_finish(lambda: states.pop(key, None))
        parent = state.headers
        chosen = [None]
        result = _run(self.level.program, exchange, state, self.level, chosen)
        state.headers = self.level.merged(parent, chosen[0])
        state.final = self.level
        if state.changed:
            exchange.target = _target(state)
        return result if isinstance(result, LocalResponse) else None


def _target(state: _State) -> bytes:
    path = quote(state.uri, safe=_PATH_SAFE).encode("ascii")
    if state.args:
        path += b"?" + quote(state.args, safe=_ARGS_SAFE).encode("ascii")
    return path


def _input_headers(directives: tuple, exchange: Any, state: _State) -> None:
    headers = exchange.headers
    content_type = (headers.get(b"content-type") or b"").split(b";")[0].strip().lower().decode("latin-1")
    for directive in directives:
        if directive.types is not None and content_type not in directive.types:
            continue
        if isinstance(directive, t.ClearInputHeaders):
            _remove(headers, directive.names)
            continue
        for name, template in directive.headers:
            raw = name.encode("latin-1")
            if directive.replace_only and headers.get(raw) is None:
                continue
            headers.remove(raw)
            value = _expand(template, exchange, state) if template is not None else ""
            if value:
                headers.add(raw, value.encode("latin-1", "replace"))


def _remove(headers: Any, names: tuple) -> None:
    for name in names:
        if name.endswith("*"):
            prefix = name[:-1].encode("latin-1")
            for key in {key for key, _ in headers if key.lower().startswith(prefix)}:
                headers.remove(key)
        else:
            headers.remove(name.encode("latin-1"))


class _Later:
    """A level's feature that acts only when that level is the request's last (its merged rules)."""

    def __init__(self, level: _Level, states: dict):
        self.level = level
        self.host_wide = level.server
        self._states = states

    def _state(self, exchange: Any) -> _State | None:
        state = self._states.get(id(exchange))
        if state is None or state.final is not self.level:
            return None
        return state


class SnippetAccess(_Later):
    """ACCESS: ``allow`` / ``deny``, first match wins."""

    phase = Phase.ACCESS

    def request(self, exchange: Any) -> LocalResponse | None:
        state = self._state(exchange)
        if state is None or state.headers.access is None:
            return None
        ip = exchange.client_ip
        for allow, network in state.headers.access:
            if network is None or ip in network:
                return None if allow else plain(403)
        return None


class SnippetHeaders(_Later):
    """PROXY: input headers and ``proxy_set_header``; response: hidden, added and set response headers."""

    phase = Phase.PROXY

    def request(self, exchange: Any) -> None:
        state = self._state(exchange)
        if state is None:
            return None
        _input_headers(state.headers.more_in, exchange, state)
        for directive in state.headers.proxy:
            raw = directive.name.encode("latin-1")
            exchange.headers.remove(raw)
            value = _expand(directive.value, exchange, state)
            if value:
                exchange.headers.add(raw, value.encode("latin-1", "replace"))
        return None

    def response(self, exchange: Any, status: int, headers: list) -> None:
        state = self._state(exchange)
        if state is None:
            return
        rules = state.headers
        for hidden in rules.hide:
            raw = hidden.name.encode("latin-1")
            headers[:] = [(k, v) for k, v in headers if k.lower() != raw]
        for added in rules.add:
            if added.always or status in _ADD_HEADER_STATUSES:
                value = _expand(added.value, exchange, state)
                if value:
                    headers.append((added.name.encode("latin-1"), value.encode("latin-1", "replace")))
        content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        content_type = content_type.split(b";")[0].strip().lower().decode("latin-1")
        for directive in rules.more_out:
            if directive.statuses is not None and status not in directive.statuses:
                continue
            if directive.types is not None and content_type not in directive.types:
                continue
            if isinstance(directive, t.ClearHeaders):
                headers[:] = [(k, v) for k, v in headers if not _named(k, directive.names)]
                continue
            for name, template in directive.headers:
                raw = name.encode("latin-1")
                headers[:] = [(k, v) for k, v in headers if k.lower() != raw]
                value = _expand(template, exchange, state) if template is not None else ""
                if value:
                    headers.append((raw, value.encode("latin-1", "replace")))


def _named(key: bytes, names: tuple) -> bool:
    lowered = key.lower().decode("latin-1")
    return any(lowered.startswith(n[:-1]) if n.endswith("*") else lowered == n for n in names)


def _features(snippet: Any, server: bool, states: dict, redirects: tuple[bool, bool] = (False, False)) -> list:
    level = _Level(snippet, server, redirects=redirects)
    return [SnippetRewrite(level, states), SnippetAccess(level, states), SnippetHeaders(level, states)]


@hookimpl
def ingressd_annotations():
    return [
        Annotation("configuration-snippet", _parse("location"), None,
                   "nginx directives for the location, read as data (a documented subset)", multiline=True),
        Annotation("server-snippet", _parse("server"), None,
                   "nginx directives for the host's server block, read as data (a documented subset)",
                   multiline=True),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    location = values.get("configuration-snippet")
    server = values.get("server-snippet")
    if location is None and server is None:
        return None
    states = context.plugin_state(_STATE).setdefault("requests", {})
    features: list = []
    # relative-redirects and use-port-in-redirects (read by the redirect plugin) shape the
    # location's redirects; a server-snippet's run in the server block, where they do not apply.
    redirects = (bool(values.get("relative-redirects")), bool(values.get("use-port-in-redirects")))
    if server is not None:
        features += _features(server, True, states)
    if location is not None:
        features += _features(location, False, states, redirects)
    return features
