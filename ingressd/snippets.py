"""Reading ``configuration-snippet`` and ``server-snippet`` as data: a strict parser of a small nginx subset.

A snippet is never handed to anything that interprets text. It is read here, once, when
routes are built, into frozen directives; ``plugins/snippets.py`` runs them. The lexical rules
are nginx's (``ngx_conf_read_token``): words separated by white space, ``;`` ending a
directive, ``{ }`` around a block, ``"…"`` and ``'…'`` quoting (``\\"``, ``\\'``, ``\\\\``, ``\\t``,
``\\r``, ``\\n`` escapes; any other ``\\x`` is kept as written), ``#`` starting a comment where a
token starts, ``${name}`` inside a word. This is the one nginx tokenizer of the codebase
(``ingressd.compat`` judges snippets with ``parse_snippet`` too).

The subset (``SUPPORTED``): ``more_set_headers``, ``more_clear_headers``, ``add_header``,
``proxy_set_header``, ``more_set_input_headers``, ``more_clear_input_headers``,
``proxy_hide_header``, ``return``, ``rewrite``, ``allow``, ``deny`` and ``if (COND) { … }``.
Values may use the variables of ``VARIABLES`` (and ``$1``…``$9`` after a regular expression);
regular expressions are compiled by RE2 (linear time). Anything else raises ``SnippetError``
naming the line and the directive.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Iterator

import re2

from ingressd.features import re2_reason

MAX_LENGTH = 65536  # characters; longer snippets are refused (Kubernetes caps annotations at 256 KiB)

# The variables a value or condition may use; ``http_``, ``cookie_`` and ``arg_`` take a name.
VARIABLES = frozenset(("host", "scheme", "request_uri", "uri", "args", "remote_addr", "request_method",
                       "server_port", "request_id", "req_id",  # $req_id: ingress-nginx's name for $request_id
                       # what ingress-nginx's template sets in every location of an Ingress path
                       "namespace", "ingress_name", "service_name", "service_port", "location_path"))
PREFIXED_VARIABLES = ("http_", "cookie_", "arg_")

HEADER_DIRECTIVES = ("more_set_headers", "more_clear_headers", "add_header", "proxy_set_header",
                     "more_set_input_headers", "more_clear_input_headers", "proxy_hide_header")
SUPPORTED = HEADER_DIRECTIVES + ("return", "rewrite", "allow", "deny", "if")
# Directives whose effect ingressd already has, with the arguments that say so: read and
# honoured by doing nothing. ``server_tokens``: ingress-nginx clears the Server header
# (``more_clear_headers Server``) unless its global server-tokens is on, and ingressd sends
# none unless --server-tokens; ``proxy_ssl_verify off``: nginx's default, and ingressd's.
NO_EFFECT: dict[str, tuple[tuple[str, ...], ...]] = {"server_tokens": (("on",), ("off",)),
                                                     "proxy_ssl_verify": (("off",),)}

# What nginx allows inside ``if`` (each directive's documented context "if in location";
# a server-level if takes only the rewrite module's directives).
_IN_LOCATION_IF = frozenset(("return", "rewrite", "add_header", "more_set_headers", "more_clear_headers",
                             "more_set_input_headers", "more_clear_input_headers"))
_IN_SERVER_IF = frozenset(("return", "rewrite"))

# Response headers ingressd's own HTTP layer writes or frames: a snippet cannot set them.
_OWN_RESPONSE = frozenset(("server", "date", "content-length", "transfer-encoding", "connection",
                           "keep-alive", "upgrade", "trailer", "proxy-connection"))
# Request headers ingressd's proxy sets itself (as ingress-nginx's template sets them in every
# location) or frames: a snippet setting them would be overridden or would smuggle.
_OWN_REQUEST = frozenset(("host", "connection", "upgrade", "keep-alive", "proxy-connection", "te", "trailer",
                          "transfer-encoding", "content-length", "expect", "x-forwarded-for",
                          "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-forwarded-scheme",
                          "x-real-ip", "x-request-id", "x-scheme", "x-original-forwarded-for",
                          "x-original-forwarded-host", "proxy"))

REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NAME = re.compile(r"[A-Za-z0-9_]+")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class SnippetError(ValueError):
    """A snippet ingressd does not honour: ``line`` (1-based) and why."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


# -- values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Variable:
    """``$name`` in a value: ``name`` one of VARIABLES, ``http_x``/``cookie_x``/``arg_x``, or a capture ``1``…``9``."""

    name: str


@dataclass(frozen=True, slots=True)
class Template:
    """A value with variables: literal strings and ``Variable``s, in order."""

    parts: tuple

    @property
    def literal(self) -> str | None:
        """The text when there is no variable, else None."""
        if all(isinstance(part, str) for part in self.parts):
            return "".join(self.parts)
        return None


# -- directives -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Directive:
    """One directive as written: its name, arguments (quotes removed) and line."""

    name: str
    args: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class SetHeaders:
    """``more_set_headers [-s STATUSES] [-t TYPES] 'Name: value'…`` (a value of None clears)."""

    line: int
    headers: tuple[tuple[str, Template | None], ...]  # lower-case names
    statuses: frozenset[int] | None
    types: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class ClearHeaders:
    """``more_clear_headers [-s STATUSES] [-t TYPES] Name…`` (``Name*``: every name with that prefix)."""

    line: int
    names: tuple[str, ...]
    statuses: frozenset[int] | None
    types: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class AddHeader:
    """``add_header Name value [always]``."""

    line: int
    name: str
    value: Template
    always: bool


@dataclass(frozen=True, slots=True)
class ProxySetHeader:
    """``proxy_set_header Name value`` (an empty value: not sent)."""

    line: int
    name: str
    value: Template


@dataclass(frozen=True, slots=True)
class SetInputHeaders:
    """``more_set_input_headers [-r] [-t TYPES] 'Name: value'…``."""

    line: int
    headers: tuple[tuple[str, Template | None], ...]
    replace_only: bool
    types: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class ClearInputHeaders:
    """``more_clear_input_headers [-t TYPES] Name…``."""

    line: int
    names: tuple[str, ...]
    types: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class HideHeader:
    """``proxy_hide_header Name``: the backend's header is not passed to the client."""

    line: int
    name: str


@dataclass(frozen=True, slots=True)
class Return:
    """``return CODE [TEXT]``, ``return CODE URL`` (301, 302, 303, 307, 308) or ``return URL`` (302)."""

    line: int
    status: int
    text: Template | None  # the body, or the Location for a redirect code


@dataclass(frozen=True, slots=True)
class Rewrite:
    """``rewrite REGEX REPLACEMENT [redirect|permanent|break|last]``."""

    line: int
    pattern: str
    regex: Any  # compiled by RE2
    replacement: Template
    flag: str  # "", "redirect", "permanent", "break" or "last"

    @property
    def redirects(self) -> bool:
        """A redirect (302 or 301) rather than a new URI for the backend."""
        return self.flag in ("redirect", "permanent") or _is_url(self.replacement)


@dataclass(frozen=True, slots=True)
class Access:
    """``allow`` / ``deny`` an address, a CIDR or ``all`` (network None)."""

    line: int
    allow: bool
    network: Any


@dataclass(frozen=True, slots=True)
class Condition:
    """``$var``, or ``$var OP operand`` with OP in ``=``, ``!=``, ``~``, ``~*``, ``!~``, ``!~*``."""

    variable: Variable
    operator: str  # "" for a bare variable
    operand: Template | None  # for = and !=
    regex: Any  # compiled, for the regex operators


@dataclass(frozen=True, slots=True)
class If:
    """``if (COND) { … }``."""

    line: int
    condition: Condition
    body: tuple


@dataclass(frozen=True, slots=True)
class Snippet:
    """A parsed snippet: its directives in order (``If`` bodies nested)."""

    directives: tuple
    context: str  # "location" or "server"

    def of(self, *kinds: type) -> tuple:
        """The top-level directives of these kinds, in order."""
        return tuple(d for d in self.directives if isinstance(d, kinds))


# -- tokens ---------------------------------------------------------------------------------

_WORD, _END, _OPEN, _CLOSE, _EOF = "word", ";", "{", "}", "eof"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    line: int
    quoted: bool = False


_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def _unescape(raw: str) -> str:
    out = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw) and raw[i + 1] in _ESCAPES:
            out.append(_ESCAPES[raw[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def tokens(text: str) -> Iterator[_Token]:
    """nginx's tokens of ``text``, each with the line it starts on; raises SnippetError."""
    i, line, length = 0, 1, len(text)
    need_space = False
    while i < length:
        char = text[i]
        if need_space:
            if char in " \t\r\n":
                need_space = False
            elif char == ")":
                need_space = False  # as nginx: ends a quoted token (an if's condition)
            elif char not in ";{":
                raise SnippetError(line, f'unexpected "{char}" after a quoted string')
        if char == "\n":
            line += 1
            i += 1
            continue
        if char in " \t\r":
            i += 1
            continue
        if char == ";":
            yield _Token(_END, ";", line)
            i += 1
            continue
        if char == "{":
            yield _Token(_OPEN, "{", line)
            i += 1
            continue
        if char == "}":
            yield _Token(_CLOSE, "}", line)
            i += 1
            continue
        if char == "#":
            while i < length and text[i] != "\n":
                i += 1
            continue
        start_line = line
        if char in "\"'":
            quote = char
            i += 1
            begin = i
            while True:
                if i >= length:
                    raise SnippetError(start_line, f"unclosed {quote} quote (the snippet ends inside it)")
                if text[i] == "\\":
                    if i + 1 < length and text[i + 1] == "\n":
                        line += 1
                    i += 2
                    continue
                if text[i] == "\n":
                    line += 1
                if text[i] == quote:
                    break
                i += 1
            raw = text[begin:i]
            i += 1
            need_space = True
            yield _Token(_WORD, _unescape(raw), start_line, True)
            continue
        begin = i
        variable = False
        while i < length:
            char = text[i]
            if char == "{" and variable:
                i += 1
                continue
            variable = False
            if char == "\\":
                if i + 1 < length and text[i + 1] == "\n":
                    line += 1
                i += 2
                continue
            if char == "$":
                variable = True
                i += 1
                continue
            if char in " \t\r\n;{":
                break
            i += 1
        yield _Token(_WORD, _unescape(text[begin:i]), start_line)
    yield _Token(_EOF, "", line)


# -- parsing --------------------------------------------------------------------------------


def parse_snippet(text: str, context: str = "location") -> Snippet:
    """The directives of a snippet in a ``location`` (configuration-snippet) or ``server``
    (server-snippet) block; raises ``SnippetError`` at the first thing outside the subset."""
    if len(text) > MAX_LENGTH:
        raise SnippetError(1, f"the snippet is {len(text)} characters long (at most {MAX_LENGTH})")
    stream = tokens(text)
    directives = _block(stream, context, inside_if=False)
    return Snippet(tuple(directives), context)


def _block(stream: Iterator[_Token], context: str, inside_if: bool) -> list:
    out: list = []
    while True:
        token = next(stream)
        if token.kind == _EOF:
            if inside_if:
                raise SnippetError(token.line, 'unexpected end of the snippet, expecting "}"')
            return out
        if token.kind == _CLOSE:
            if not inside_if:
                raise SnippetError(token.line, 'unexpected "}"')
            return out
        if token.kind != _WORD:
            raise SnippetError(token.line, f'unexpected "{token.text}"')
        name = token.text
        if name not in SUPPORTED and name not in NO_EFFECT:
            raise SnippetError(token.line, f"directive {name} is not supported by ingressd's snippet reader "
                                           f"(supported: {', '.join(SUPPORTED + tuple(NO_EFFECT))})")
        if inside_if and name not in (_IN_SERVER_IF if context == "server" else _IN_LOCATION_IF):
            raise SnippetError(token.line, f'directive {name} is not allowed inside "if" (as in nginx)')
        args: list[_Token] = []
        while True:
            item = next(stream)
            if item.kind == _WORD:
                args.append(item)
                continue
            if item.kind == _EOF:
                raise SnippetError(item.line, f'unexpected end of the snippet, expecting ";" after {name}')
            if item.kind == _CLOSE:
                raise SnippetError(item.line, f'unexpected "}}" in {name} (missing ";"?)')
            break
        if name == "if":
            if item.kind != _OPEN:
                raise SnippetError(token.line, 'directive if has no "{" block')
            condition = _condition(args, token.line)
            body = _block(stream, context, inside_if=True)
            out.append(If(token.line, condition, tuple(body)))
            continue
        if item.kind == _OPEN:
            raise SnippetError(token.line, f'directive {name} takes no "{{" block')
        out.append(_directive(Directive(name, tuple(a.text for a in args), token.line), context))


def _directive(d: Directive, context: str):
    builder = _BUILDERS[d.name]
    return builder(d)


def _count(d: Directive, low: int, high: int) -> None:
    if not low <= len(d.args) <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        raise SnippetError(d.line, f"directive {d.name} takes {wanted} arguments, got {len(d.args)}")


def _header_name(d: Directive, name: str, own: frozenset, wildcard: bool = False) -> str:
    plain = name[:-1] if wildcard and name.endswith("*") else name
    if not plain or not _TOKEN.fullmatch(plain):
        raise SnippetError(d.line, f"{d.name}: {name!r} is not a header name")
    lowered = name.lower()
    if plain.lower() in own:
        raise SnippetError(d.line, f"{d.name}: the {plain} header is ingressd's own (it sets or frames it "
                                   "itself); a snippet cannot change it")
    return lowered


def _options(d: Directive, allowed: str) -> tuple[dict, list[str]]:
    """headers-more's -s / -t / -r options, then the remaining arguments."""
    options: dict = {}
    rest: list[str] = []
    args = list(d.args)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-s", "-t") and arg[1] in allowed:
            if i + 1 >= len(args):
                raise SnippetError(d.line, f"{d.name}: option {arg} takes a value")
            options.setdefault(arg, []).extend(args[i + 1].split())
            i += 2
            continue
        if arg == "-r" and "r" in allowed:
            options["-r"] = True
            i += 1
            continue
        if arg.startswith("-") and len(arg) == 2 and not rest:
            raise SnippetError(d.line, f"{d.name}: option {arg} is not supported")
        rest.append(arg)
        i += 1
    if not rest:
        raise SnippetError(d.line, f"directive {d.name} names no header")
    return options, rest


def _statuses(d: Directive, values: list[str] | None) -> frozenset[int] | None:
    if values is None:
        return None
    codes = set()
    for value in values:
        if not value.isdigit() or not 100 <= int(value) <= 999:
            raise SnippetError(d.line, f"{d.name}: {value!r} is not a status code")
        codes.add(int(value))
    return frozenset(codes)


def _types(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(v.lower() for v in values)


def _pairs(d: Directive, items: list[str], own: frozenset) -> tuple:
    pairs = []
    for item in items:
        name, colon, value = item.partition(":")
        name = name.strip()
        value = value.strip()
        lowered = _header_name(d, name, own)
        pairs.append((lowered, _template(d, value, header=True) if colon and value else None))
    return tuple(pairs)


def _more_set_headers(d: Directive) -> SetHeaders:
    options, rest = _options(d, "st")
    return SetHeaders(d.line, _pairs(d, rest, _OWN_RESPONSE), _statuses(d, options.get("-s")),
                      _types(options.get("-t")))


def _more_clear_headers(d: Directive) -> ClearHeaders:
    options, rest = _options(d, "st")
    names = tuple(_header_name(d, n, _OWN_RESPONSE, wildcard=True) for n in rest)
    return ClearHeaders(d.line, names, _statuses(d, options.get("-s")), _types(options.get("-t")))


def _more_set_input_headers(d: Directive) -> SetInputHeaders:
    options, rest = _options(d, "rt")
    return SetInputHeaders(d.line, _pairs(d, rest, _OWN_REQUEST), bool(options.get("-r")),
                           _types(options.get("-t")))


def _more_clear_input_headers(d: Directive) -> ClearInputHeaders:
    options, rest = _options(d, "t")
    names = tuple(_header_name(d, n, _OWN_REQUEST, wildcard=True) for n in rest)
    return ClearInputHeaders(d.line, names, _types(options.get("-t")))


def _add_header(d: Directive) -> AddHeader:
    _count(d, 2, 3)
    if len(d.args) == 3 and d.args[2] != "always":
        raise SnippetError(d.line, f"add_header: the third argument must be always, got {d.args[2]!r}")
    name = _header_name(d, d.args[0], _OWN_RESPONSE)
    return AddHeader(d.line, name, _template(d, d.args[1], header=True), len(d.args) == 3)


def _proxy_set_header(d: Directive) -> ProxySetHeader:
    _count(d, 2, 2)
    name = _header_name(d, d.args[0], _OWN_REQUEST)
    return ProxySetHeader(d.line, name, _template(d, d.args[1], header=True))


def _proxy_hide_header(d: Directive) -> HideHeader:
    _count(d, 1, 1)
    return HideHeader(d.line, _header_name(d, d.args[0], frozenset()))


def _return(d: Directive) -> Return:
    _count(d, 1, 2)
    first = d.args[0]
    if len(d.args) == 1 and not first.isdigit():
        text = _template(d, first)
        if not _is_url(text):
            raise SnippetError(d.line, f"return: {first!r} is neither a status code nor an http(s) URL")
        return Return(d.line, 302, text)
    if not first.isdigit() or not 200 <= int(first) <= 599:
        raise SnippetError(d.line, f"return: {first!r} is not a status code ingressd answers (200 to 599)")
    status = int(first)
    if status == 444:
        raise SnippetError(d.line, "return 444 closes the connection without an answer; ingressd does not")
    text = _template(d, d.args[1], header=status in REDIRECT_CODES) if len(d.args) == 2 else None
    return Return(d.line, status, text)


def _rewrite(d: Directive) -> Rewrite:
    _count(d, 2, 3)
    flag = d.args[2] if len(d.args) == 3 else ""
    if flag not in ("", "redirect", "permanent", "break", "last"):
        raise SnippetError(d.line, f"rewrite: unknown flag {flag!r} (redirect, permanent, break or last)")
    regex = _regex(d, d.args[0], case_insensitive=False)
    replacement = _template(d, d.args[1], header=True)
    return Rewrite(d.line, d.args[0], regex, replacement, flag)


def _access(d: Directive) -> Access:
    _count(d, 1, 1)
    value = d.args[0]
    if value == "all":
        network = None
    else:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise SnippetError(d.line, f"{d.name}: {value!r} is not an address, a CIDR or all") from None
    return Access(d.line, d.name == "allow", network)


@dataclass(frozen=True)
class NoEffect:
    """A directive whose effect ingressd already has (``NO_EFFECT``): honoured by doing nothing."""

    line: int
    name: str


def _no_effect(d: Directive) -> NoEffect:
    args = tuple(arg.lower() for arg in d.args)
    if args not in NO_EFFECT[d.name]:
        accepted = " or ".join(" ".join(option) for option in NO_EFFECT[d.name])
        raise SnippetError(d.line, f"{d.name} {' '.join(d.args)}: only {d.name} {accepted} is honoured "
                                   "(it is what ingressd does)")
    return NoEffect(d.line, d.name)


_BUILDERS = {
    "server_tokens": _no_effect,
    "proxy_ssl_verify": _no_effect,
    "more_set_headers": _more_set_headers,
    "more_clear_headers": _more_clear_headers,
    "add_header": _add_header,
    "proxy_set_header": _proxy_set_header,
    "more_set_input_headers": _more_set_input_headers,
    "more_clear_input_headers": _more_clear_input_headers,
    "proxy_hide_header": _proxy_hide_header,
    "return": _return,
    "rewrite": _rewrite,
    "allow": _access,
    "deny": _access,
}

_OPERATORS = ("=", "!=", "~", "~*", "!~", "!~*")


def _condition(args: list[_Token], line: int) -> Condition:
    """nginx's ``ngx_http_rewrite_if_condition``: "(" opens the first word, ")" closes the last."""
    words = [(a.text, a.quoted) for a in args]
    if not words or words[0][1] or not words[0][0].startswith("("):
        raise SnippetError(line, 'if: the condition must be in parentheses, as "if ($var = value)"')
    first = words[0][0][1:]
    words = ([(first, False)] if first else []) + words[1:]
    if not words or words[-1][1] or not words[-1][0].endswith(")"):
        raise SnippetError(line, 'if: the condition must end with ")"')
    last = words[-1][0][:-1]
    words = words[:-1] + ([(last, False)] if last else [])
    if not words:
        raise SnippetError(line, "if: the condition is empty")
    variable = _single_variable(words[0][0], line)
    if len(words) == 1:
        return Condition(variable, "", None, None)
    if len(words) != 3 or words[1][0] not in _OPERATORS or words[1][1]:
        raise SnippetError(line, "if: the condition must be $var, or $var followed by =, !=, ~, ~*, !~ or !~* "
                                 "and one value (file tests such as -f are not supported)")
    operator, operand = words[1][0], words[2][0]
    d = Directive("if", tuple(w for w, _ in words), line)
    if operator in ("=", "!="):
        return Condition(variable, operator, _template(d, operand), None)
    return Condition(variable, operator, None, _regex(d, operand, case_insensitive=operator.endswith("*")))


def _single_variable(word: str, line: int) -> Variable:
    d = Directive("if", (word,), line)
    template = _template(d, word)
    if len(template.parts) != 1 or not isinstance(template.parts[0], Variable):
        raise SnippetError(line, f"if: the condition must start with one variable, got {word!r}")
    return template.parts[0]


def _regex(d: Directive, pattern: str, case_insensitive: bool) -> Any:
    try:
        return re2.compile(("(?i)" if case_insensitive else "") + pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = re2_reason(exc)
        raise SnippetError(d.line, f"{d.name}: {pattern!r} is not a regular expression ingressd can match in "
                                   f"linear time ({reason}; look-around and back-references are not "
                                   "supported)") from None


_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]*)\}|([0-9])|([A-Za-z_][A-Za-z0-9_]*))")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _template(d: Directive, text: str, header: bool = False) -> Template:
    """``text`` with its variables; an unknown variable, or a control character in a header
    value, raises SnippetError."""
    if header:
        found = _CONTROL.search(text)
        if found:
            raise SnippetError(d.line, f"{d.name}: the value contains the control character {found.group()!r}")
    parts: list = []
    position = 0
    for found in _VARIABLE.finditer(text):
        if found.start() > position:
            parts.append(text[position:found.start()])
        name = found.group(1) if found.group(1) is not None else (found.group(2) or found.group(3))
        parts.append(_variable(d, name))
        position = found.end()
    rest = text[position:]
    if "$" in rest:
        raise SnippetError(d.line, f"{d.name}: a $ that starts no variable name in {text!r}")
    if rest:
        parts.append(rest)
    return Template(tuple(parts))


def _variable(d: Directive, name: str) -> Variable:
    if name.isdigit() and len(name) == 1 and name != "0":
        return Variable(name)
    if name in VARIABLES:
        return Variable(name)
    for prefix in PREFIXED_VARIABLES:
        if name.startswith(prefix) and len(name) > len(prefix) and _NAME.fullmatch(name):
            return Variable(name.lower() if prefix != "arg_" else name)
    supported = ", ".join("$" + v for v in sorted(VARIABLES))
    raise SnippetError(d.line, f"{d.name}: the variable ${name} is not supported (supported: {supported}, "
                               "$http_NAME, $cookie_NAME, $arg_NAME, $1…$9)")


def _is_url(template: Template) -> bool:
    head = template.parts[0] if template.parts else ""
    if isinstance(head, Variable):
        return head.name == "scheme"
    return head.startswith(("http://", "https://"))
