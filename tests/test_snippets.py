"""The snippet parser (ingressd.snippets): nginx's lexical rules for a small subset, every refusal with its line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ingressd.snippets import (
    Access, AddHeader, ClearHeaders, If, Return, Rewrite, SetHeaders, SetInputHeaders, SnippetError,
    Template, Variable, parse_snippet, tokens,
)


def words(text):
    return [(tok.kind, tok.text, tok.line) for tok in tokens(text)][:-1]


@pytest.mark.parametrize("text, expected", [
    ("a b;", [("word", "a", 1), ("word", "b", 1), (";", ";", 1)]),
    ('a "b c" \'d\';', [("word", "a", 1), ("word", "b c", 1), ("word", "d", 1), (";", ";", 1)]),
    ('a "x\\"y\\n";', [("word", "a", 1), ("word", 'x"y\n', 1), (";", ";", 1)]),
    ("# comment ; {\na b#c;", [("word", "a", 2), ("word", "b#c", 2), (";", ";", 2)]),
    ("a ${host}x;", [("word", "a", 1), ("word", "${host}x", 1), (";", ";", 1)]),
    ("if ($a = \"b\") {}", [("word", "if", 1), ("word", "($a", 1), ("word", "=", 1), ("word", "b", 1),
                            ("word", ")", 1), ("{", "{", 1), ("}", "}", 1)]),
    ("a\n\n  b;", [("word", "a", 1), ("word", "b", 3), (";", ";", 3)]),
])
def test_tokens(text, expected):
    assert words(text) == expected


def test_directives_as_data():
    snippet = parse_snippet(
        'more_set_headers "X-A: $host" "X-B:";\n'
        "add_header X-C c always;\n"
        'if ($http_x_y ~* "^a(b)") {\n'
        "  return 301 https://$host$request_uri;\n"
        "}\n"
        "rewrite ^/old/(.*)$ /new/$1 break;\n"
        "deny 10.0.0.0/8; allow all;\n"
        'more_set_input_headers -r "X-In: $cookie_s";\n'
        "more_clear_headers -s 404 X-Powered-*;\n")
    d = snippet.directives
    assert d[0] == SetHeaders(1, (("x-a", Template((Variable("host"),))), ("x-b", None)), None, None)
    assert d[1] == AddHeader(2, "x-c", Template(("c",)), True)
    assert isinstance(d[2], If) and d[2].line == 3 and d[2].condition.operator == "~*"
    assert d[2].body == (Return(4, 301, Template(("https://", Variable("host"), Variable("request_uri")))),)
    assert isinstance(d[3], Rewrite) and d[3].flag == "break" and d[3].line == 6
    assert d[3].replacement == Template(("/new/", Variable("1")))
    assert isinstance(d[4], Access) and not d[4].allow and str(d[4].network) == "10.0.0.0/8"
    assert d[5] == Access(7, True, None)
    assert d[6] == SetInputHeaders(8, (("x-in", Template((Variable("cookie_s"),))),), True, None)
    assert d[7] == ClearHeaders(9, ("x-powered-*",), frozenset({404}), None)


@pytest.mark.parametrize("text, line, message", [
    ("content_by_lua_block { ngx.say('x') }", 1, "directive content_by_lua_block is not supported"),
    ("add_header X a;\nset $x 1;", 2, "directive set is not supported"),
    ("location /x { return 200; }", 1, "directive location is not supported"),
    ("return 200 $foo;", 1, "the variable $foo is not supported"),
    ('more_set_headers "X: a', 1, 'unclosed " quote'),
    ('add_header X "a"b;', 1, 'unexpected "b" after a quoted string'),
    ("add_header X a", 1, 'expecting ";" after add_header'),
    ("if ($host = a) {\n return 403;", 2, 'expecting "}"'),
    ("}", 1, 'unexpected "}"'),
    ("if ($host = a) {\n  deny all;\n}", 2, 'directive deny is not allowed inside "if"'),
    ("if (-f /etc/passwd) { return 403; }", 1, "must start with one variable"),
    ("if ($host) { if ($uri) { return 403; } }", 1, 'directive if is not allowed inside "if"'),
    ("rewrite ^/(?=x) /y;", 1, "not a regular expression ingressd can match in linear time"),
    ("if ($uri ~ (a)\\1) { return 403; }", 1, "linear time"),
    ("return 444;", 1, "closes the connection"),
    ("return 700;", 1, "not a status code"),
    ("return /relative;", 1, "neither a status code nor an http(s) URL"),
    ("rewrite ^ /x sideways;", 1, "unknown flag"),
    ("deny 10.0.0.300;", 1, "not an address, a CIDR or all"),
    ("proxy_set_header Host evil;", 1, "the Host header is ingressd's own"),
    ("more_set_headers 'Content-Length: 1';", 1, "ingressd's own"),
    ('add_header X "a\\nb";', 1, "control character"),
    ("add_header X{ a;", 1, 'takes no "{" block'),
    ("if ($host = a) return 403;", 1, 'has no "{" block'),
    ("more_set_headers -x 'A: b';", 1, "option -x is not supported"),
])
def test_refusals_name_the_directive_and_line(text, line, message):
    with pytest.raises(SnippetError) as caught:
        parse_snippet(text)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: ")
    assert message in str(caught.value)


def test_a_server_level_if_takes_only_rewrite_directives():
    parse_snippet("if ($host = a) { more_set_headers 'X: y'; }")
    with pytest.raises(SnippetError, match='line 1: directive more_set_headers is not allowed inside "if"'):
        parse_snippet("if ($host = a) { more_set_headers 'X: y'; }", "server")


def test_a_snippet_too_long_is_refused():
    with pytest.raises(SnippetError, match="line 1: the snippet is"):
        parse_snippet("#" * 70000)


_ALPHABET = st.sampled_from(list("ab$(){};#'\"\\ \n\t=~*!/^.") + ["if", "return", "rewrite", "add_header",
                                                                  "$host", "$1", "deny", "all", "301", "more_set_headers",
                                                                  "allow", "'X: y'", "lua"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_fuzz_no_crash_every_refusal_names_a_line(text):
    try:
        parse_snippet(text)
    except SnippetError as exc:
        assert 1 <= exc.line <= text.count("\n") + 1
        assert str(exc).startswith(f"line {exc.line}: ")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_any_text(text):
    try:
        parse_snippet(text, "server")
    except SnippetError as exc:
        assert 1 <= exc.line <= text.count("\n") + 1
