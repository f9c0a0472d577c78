"""Which ingress-nginx annotations ingressd honours, ignores harmlessly, or will not serve without."""

from __future__ import annotations

import pytest

from ingressd.compat import assess as compat
from ingressd.compat.catalogue import (
    BOOL,
    CATALOGUE,
    CHANGES_TRAFFIC,
    HARMLESS,
    IMPLEMENTED,
    NARROWS_ACCESS,
    PARTIAL,
    WORD,
    Entry,
)
from ingressd.compat.assess import Problem, assess, ignore_list
from ingressd.snippets import NO_EFFECT, SUPPORTED, Access, SnippetError, parse_snippet
from ingressd.plugin_manager import load_plugins

N = "nginx.ingress.kubernetes.io/"
OWNED = frozenset(load_plugins().annotation_owners)


def outcome(annotations, ignored=(), owned=OWNED):
    """"served" / "warned" / "blocked", and the problems' annotation names."""
    problems = assess({k if "/" in k else N + k: v for k, v in annotations.items()}, owned, frozenset(ignored))
    if any(p.blocking for p in problems):
        return "blocked", sorted(p.name for p in problems if p.blocking)
    if problems:
        return "warned", sorted(p.name for p in problems)
    return "served", []


CASES = [
    # (annotations, controller-wide ignores, outcome, the annotations named)
    ({}, (), "served", []),
    ({"kubernetes.io/ingress.class": "nginx"}, (), "served", []),
    # the hole: ModSecurity and secure-backends are not implemented
    ({"enable-modsecurity": "true", "enable-owasp-core-rules": "true", "secure-backends": "true"}, (), "blocked",
     ["enable-modsecurity", "secure-backends"]),
    ({"enable-modsecurity": "true", "ingressd.io/ignore-annotations": "enable-modsecurity"}, (), "warned",
     ["enable-modsecurity"]),
    ({"enable-modsecurity": "true", "ingressd.io/ignore-annotations": f"{N}enable-modsecurity, satisfy"}, (),
     "warned", ["enable-modsecurity"]),
    ({"enable-modsecurity": "true"}, ("enable-modsecurity",), "warned", ["enable-modsecurity"]),
    ({"enable-modsecurity": "true"}, ("satisfy",), "blocked", ["enable-modsecurity"]),
    # the Ingress's own list adds to the operator's, never replaces it
    ({"enable-modsecurity": "true", "ingressd.io/ignore-annotations": "satisfy"}, ("enable-modsecurity",),
     "warned", ["enable-modsecurity"]),
    # one annotation of each class
    ({"satisfy": "any"}, (), "served", []),  # a plugin owns it
    ({"enable-modsecurity": "true"}, (), "blocked", ["enable-modsecurity"]),
    ({"secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"global-rate-limit": "100"}, (), "served", []),  # a plugin owns it (with --redis)
    ({"upstream-hash-by": "$request_uri"}, (), "served", []),  # a plugin owns it
    ({"ssl-passthrough": "true"}, (), "warned", ["ssl-passthrough"]),  # a plugin owns it, with its differences
    ({"affinity": "cookie"}, (), "served", []),  # a plugin owns it
    ({"http2-push-preload": "true"}, (), "served", []),  # not needed: ingress-nginx's nginx ignores it
    ({"mirror-target": "https://mirror.example/$request_uri"}, (), "warned", ["mirror-target"]),  # partial
    ({"upstream-hash-by": "$remote_addr", "upstream-hash-by-subset": "true"}, (), "served", []),
    ({"affinity": "cookie", "session-cookie-name": "route"}, (), "served", []),
    ({"affinity": "cookie", "session-cookie-hash": "sha1"}, (), "served", []),  # ingress-nginx ignores it too
    ({"canary": "true", "affinity-canary-behavior": "legacy"}, (), "warned", ["canary"]),  # canary's own note
    ({"enable-opentelemetry": "true"}, (), "served", []),  # a plugin owns it
    ({"load-balance": "ewma"}, (), "served", []),  # a plugin owns it
    # a canary is served as ingress-nginx serves it (attached to its main Ingress), with its difference
    ({"canary": "true", "canary-weight": "10"}, (), "warned", ["canary"]),
    ({"canary": "false", "canary-weight": "10"}, (), "served", []),
    # ingress-nginx's own defaults ask for nothing, in every spelling it reads
    ({"backend-protocol": "HTTP"}, (), "served", []),
    ({"backend-protocol": " http "}, (), "served", []),
    ({"proxy-buffering": "off", "proxy-request-buffering": "on", "load-balance": "round_robin"}, (), "served", []),
    ({"proxy-http-version": "1.1", "proxy-buffer-size": "4K", "client-body-buffer-size": "8k"}, (), "served", []),
    ({"ssl-passthrough": "false"}, (), "served", []),
    ({"ssl-passthrough": "F"}, (), "served", []),
    ({"ssl-passthrough": "0"}, (), "served", []),
    ({"enable-modsecurity": "FALSE", "satisfy": "all", "limit-rate": "0"}, (), "served", []),
    ({"ssl-redirect": "True", "force-ssl-redirect": "t"}, (), "served", []),
    ({"enable-opentelemetry": "false"}, (), "served", []),
    ({"enable-influxdb": "true"}, (), "warned", ["enable-influxdb"]),
    ({"enable-modsecurity": "yes"}, (), "blocked", ["enable-modsecurity"]),  # a value ingress-nginx cannot read asks for something
    ({"global-rate-limit": "-0"}, (), "served", []),  # read as a number, as ingress-nginx's Atoi does
    ({"global-rate-limit": "X0"}, (), "served", []),  # owned: its plugin rejects the value
    ({"proxy-next-upstream": " error   timeout "}, (), "served", []),  # text: spacing does not count
    ({"proxy-next-upstream": "error timeout http_502"}, (), "warned", ["proxy-next-upstream"]),  # partial: its note
    # an empty value is no value, to ingress-nginx
    ({"auth-url": "", "upstream-hash-by": "  "}, (), "served", []),
    # a dependent annotation without its switch asks for nothing
    ({"auth-signin": "https://a/start"}, (), "served", []),
    ({"session-cookie-name": "route", "canary-weight": "50"}, (), "served", []),
    ({"auth-snippet": "deny all;"}, (), "served", []),
    # nothing to do: ingressd already behaves so
    ({"proxy-buffer-size": "16k", "enable-global-auth": "false"}, (), "served", []),
    ({"service-upstream": "true"}, (), "served", []),  # a plugin owns it
    # configuration- and server-snippets: read as data; honoured (with the subset's note) or blocked
    ({"configuration-snippet": 'more_set_headers "X-Frame-Options: DENY";\nadd_header X-A b;'}, (), "warned",
     ["configuration-snippet"]),
    ({"configuration-snippet": "deny all;"}, (), "warned", ["configuration-snippet"]),
    ({"configuration-snippet": "if ($host = a) { return 301 https://b; }"}, (), "warned",
     ["configuration-snippet"]),
    ({"configuration-snippet": 'more_set_headers "X-A: b'}, (), "blocked", ["configuration-snippet"]),
    ({"configuration-snippet": "gzip on;"}, (), "blocked", ["configuration-snippet"]),
    ({"server-snippet": "location /x { proxy_pass http://evil; }"}, (), "blocked", ["server-snippet"]),
    ({"configuration-snippet": "set $x 1;"}, ("configuration-snippet",), "warned", ["configuration-snippet"]),
    ({"modsecurity-snippet": "SecRuleEngine On"}, (), "blocked", ["modsecurity-snippet"]),
    # auth- and modsecurity-snippets guard access whatever they say
    ({"modsecurity-snippet": "add_header X y;"}, (), "blocked", ["modsecurity-snippet"]),
    ({"stream-snippet": "add_header X y;"}, (), "blocked", ["stream-snippet"]),
    ({"auth-url": "https://a/", "auth-snippet": "x"}, (), "blocked", ["auth-snippet"]),
    # implemented by a plugin: parsed there
    ({"limit-rps": "5", "enable-cors": "true"}, (), "served", []),
    ({"custom-http-errors": "404,503"}, (), "warned", ["custom-http-errors"]),
    # names ingress-nginx never had
    ({"made-up": "1"}, (), "warned", ["made-up"]),
    ({"ingressd.io/made-up": "1"}, (), "warned", ["made-up"]),
    # removed from ingress-nginx
    ({"secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"enable-influxdb": "true"}, (), "warned", ["enable-influxdb"]),
    # whatever comes first, every annotation is judged: a blocking one after each kind of skipped one
    ({"kubernetes.io/ingress.class": "nginx", "secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"ingressd.io/made-up": "1", "secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"ingressd.io/ignore-annotations": "x", "secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"auth-url": "", "secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"limit-rps": "5", "secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"custom-http-errors": "404", "secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"made-up": "1", "secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"proxy-buffer-size": "16k", "secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"backend-protocol": "HTTP", "secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"auth-signin": "https://a/start", "secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"proxy-busy-buffers-size": "16k", "secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"enable-modsecurity": "false", "secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"configuration-snippet": 'more_set_headers "X-A: b";', "secure-backends": "true"}, (), "blocked",
     ["secure-backends"]),
    ({"configuration-snippet": "content_by_lua_block { ngx.exit(200) }", "secure-backends": "true"}, (), "blocked",
     ["configuration-snippet", "secure-backends"]),
]


@pytest.mark.parametrize("annotations, ignored, expected, names", CASES)
def test_assess(annotations, ignored, expected, names):
    assert outcome(annotations, ignored) == (expected, names)


# Without some plugin, the annotations it owns are judged by the catalogue: their defaults and
# their switches (which may be spelt with either prefix) decide whether they ask for anything.
WITHOUT_BODY_SIZE = OWNED - {"proxy-body-size"}
WITHOUT_CORS_ORIGIN = OWNED - {"cors-allow-origin"}
WITHOUT_AUTH_SECRET = OWNED - {"auth-secret"}
OWNED_CASES = [
    # (annotations, the plugins' annotations, outcome, the annotations named)
    ({"proxy-body-size": "1m"}, WITHOUT_BODY_SIZE, "served", []),
    ({"proxy-body-size": " 1M "}, WITHOUT_BODY_SIZE, "served", []),
    ({"proxy-body-size": "1024k"}, WITHOUT_BODY_SIZE, "served", []),
    ({"proxy-body-size": "1048576"}, WITHOUT_BODY_SIZE, "served", []),
    ({"proxy-body-size": "2m"}, WITHOUT_BODY_SIZE, "blocked", ["proxy-body-size"]),
    ({"proxy-body-size": "1g"}, WITHOUT_BODY_SIZE, "blocked", ["proxy-body-size"]),
    ({"proxy-body-size": "1024"}, WITHOUT_BODY_SIZE, "blocked", ["proxy-body-size"]),
    ({"proxy-body-size": "big"}, WITHOUT_BODY_SIZE, "blocked", ["proxy-body-size"]),
    ({"proxy-body-size": "m"}, WITHOUT_BODY_SIZE, "blocked", ["proxy-body-size"]),
    ({"cors-allow-origin": "https://a"}, WITHOUT_CORS_ORIGIN, "served", []),
    ({"cors-allow-origin": "https://a", "enable-cors": "true"}, WITHOUT_CORS_ORIGIN, "warned",
     ["cors-allow-origin"]),
    ({"cors-allow-origin": "https://a", "ingressd.io/enable-cors": "true"}, WITHOUT_CORS_ORIGIN, "warned",
     ["cors-allow-origin"]),
    ({"cors-allow-origin": "*", "enable-cors": "true"}, WITHOUT_CORS_ORIGIN, "served", []),
    ({"cors-allow-origin": "https://a", "enable-cors": "false"}, WITHOUT_CORS_ORIGIN, "served", []),
    ({"cors-allow-origin": "https://a", "enable-cors": " "}, WITHOUT_CORS_ORIGIN, "served", []),
    ({"auth-secret": "users"}, WITHOUT_AUTH_SECRET, "served", []),
    ({"auth-secret": "users", "auth-type": "basic"}, WITHOUT_AUTH_SECRET, "blocked", ["auth-secret"]),
    # without its plugin, service-upstream would send to the pods instead of the cluster IP
    ({"service-upstream": "true"}, OWNED - {"service-upstream"}, "blocked", ["service-upstream"]),
    ({"service-upstream": "false"}, OWNED - {"service-upstream"}, "served", []),
]


@pytest.mark.parametrize("annotations, owned, expected, names", OWNED_CASES)
def test_assess_without_some_plugins(annotations, owned, expected, names):
    assert outcome(annotations, owned=owned) == (expected, names)


def test_a_partial_annotation_asking_for_nothing_is_not_reported(monkeypatch):
    """A plugin that differs from ingress-nginx is silent when the annotation asks for the default
    or its switch is off (no catalogue row is like this yet: a made-up one)."""
    table = {
        "x-switch": Entry("x-switch", IMPLEMENTED, HARMLESS, "false", BOOL),
        "x-partial": Entry("x-partial", PARTIAL, HARMLESS, "off", WORD, requires="x-switch", note="it differs"),
    }
    monkeypatch.setattr(compat, "lookup", table.get)
    owned = frozenset(table)
    assert outcome({"x-partial": "on", "x-switch": "true"}, owned=owned) == ("warned", ["x-partial"])
    assert outcome({"x-partial": "OFF", "x-switch": "true"}, owned=owned) == ("served", [])
    assert outcome({"x-partial": "on"}, owned=owned) == ("served", [])


def _note(name):
    return CATALOGUE[name].note


_SUBSET = ('(ingressd reads snippets as data and honours only a subset of nginx: see docs/migrating.md, '
           '"Snippets")')
_NOT_SUPPORTED = "it is not supported by ingressd"


def _blocked(name, what, consequence):
    return (f"annotation {N}{name}: {what}, and serving the Ingress without it would {consequence}; not served "
            f'(accept that with --ignore-annotation {name} or the Ingress annotation '
            f'ingressd.io/ignore-annotations: "{name}")')


REASONS = [
    # (annotations, controller-wide ignores, the one problem: annotation, reason, blocking)
    ({"ingressd.io/made-up": "1"}, (),
     ("ingressd.io/made-up", "annotation ingressd.io/made-up is not known to ingressd and is ignored", False)),
    ({"made-up": "1"}, (),
     (N + "made-up", f"annotation {N}made-up is not an ingress-nginx annotation; ignored", False)),
    ({"custom-http-errors": "404"}, (),
     (N + "custom-http-errors",
      f"annotation {N}custom-http-errors is served with a difference: {_note('custom-http-errors')}", False)),
    ({"configuration-snippet": "gzip on;"}, (),
     (N + "configuration-snippet",
      f"annotation {N}configuration-snippet is not honoured: line 1: directive gzip is not supported by "
      f"ingressd's snippet reader (supported: {', '.join(SUPPORTED + tuple(NO_EFFECT))}) {_SUBSET}; not served (accept ignoring "
      f'it with --ignore-annotation configuration-snippet or the Ingress annotation '
      f'ingressd.io/ignore-annotations: "configuration-snippet")', True)),
    ({"enable-influxdb": "true"}, (),
     (N + "enable-influxdb",
      f"annotation {N}enable-influxdb is not supported by ingressd and is ignored; ignoring it is harmless",
      False)),
    ({"configuration-snippet": "deny all;\nallow $x;"}, ("configuration-snippet",),
     (N + "configuration-snippet", f"annotation {N}configuration-snippet is ignored as the operator asked "
                                   f"(--ignore-annotation or ingressd.io/ignore-annotations): line 2: allow: "
                                   f"'$x' is not an address, a CIDR or all {_SUBSET}", False)),
    ({"enable-modsecurity": "true"}, ("enable-modsecurity",),
     (N + "enable-modsecurity", f"annotation {N}enable-modsecurity is ignored as the operator asked (--ignore-annotation or "
                      f"ingressd.io/ignore-annotations): {_NOT_SUPPORTED} ({_note('enable-modsecurity')}), and serving "
                      "without it may let in clients it keeps out", False)),
    ({"enable-modsecurity": "true"}, (),
     (N + "enable-modsecurity", _blocked("enable-modsecurity", f"{_NOT_SUPPORTED} ({_note('enable-modsecurity')})",
                               "let in clients it keeps out"), True)),
    ({"secure-backends": "true"}, (),
     (N + "secure-backends", _blocked("secure-backends", f"{_NOT_SUPPORTED} ({_note('secure-backends')})",
                                    "send traffic elsewhere, or otherwise, than it asks"), True)),
    ({"stream-snippet": "return 301 https://b;"}, (),
     (N + "stream-snippet", _blocked("stream-snippet", f"stream-snippet is never supported ({_note('stream-snippet')})",
                                     "send traffic elsewhere, or otherwise, than it asks"), True)),
]


@pytest.mark.parametrize("annotations, ignored, expected", REASONS)
def test_each_problem_names_its_annotation_and_says_why(annotations, ignored, expected):
    """The reason is what an operator reads (translator rejections, ``ingressd check``)."""
    raw = {k if "/" in k else N + k: v for k, v in annotations.items()}
    key, reason, blocking = expected
    name = key.rpartition("/")[2]
    assert assess(raw, OWNED, frozenset(ignored)) == (Problem(key, name, reason, blocking),)


def test_a_blocking_reason_names_the_annotation_and_how_to_accept_it():
    (problem,) = assess({N + "enable-modsecurity": "true"}, OWNED)
    assert problem.blocking and problem.annotation == N + "enable-modsecurity"
    assert "let in clients it keeps out" in problem.reason
    assert "--ignore-annotation enable-modsecurity" in problem.reason and 'ingressd.io/ignore-annotations: "enable-modsecurity"' in problem.reason
    (problem,) = assess({N + "secure-backends": "true"}, OWNED)
    assert "send traffic elsewhere" in problem.reason


def test_without_its_plugin_an_implemented_annotation_is_judged_like_any_other():
    without_auth = OWNED - {"auth-type", "auth-secret", "auth-secret-type", "auth-realm"}
    problems = assess({N + "auth-type": "basic", N + "auth-secret": "s"}, without_auth)
    assert [(p.name, p.blocking) for p in problems] == [("auth-type", True)]
    problems = assess({N + "enable-cors": "true", N + "cors-allow-origin": "https://a"}, OWNED - {"enable-cors"})
    assert [(p.name, p.blocking) for p in problems] == [("enable-cors", False)]


def test_ignore_list():
    assert ignore_list(f" {N}auth-url, satisfy,,ingressd.io/x ") == {"auth-url", "satisfy", "x"}


def test_only_the_snippets_not_read_as_data_are_refused():
    refused = {name for name in CATALOGUE if name.endswith("-snippet") and CATALOGUE[name].status == "refused"}
    assert refused == {"auth-snippet", "stream-snippet", "modsecurity-snippet"}


# nginx starts a comment or a quoted string only at the start of a word (ngx_conf_read_token:
# "#", '"' and "'" are special only after a separator); read anywhere, the directives after them
# would disappear and a snippet that denies access would look harmless (fail open).
@pytest.mark.parametrize("snippet", [
    "add_header X-Debug a#; deny all;",
    'add_header X-A a"b; deny all; add_header X-B c"d;',
    'deny"x" all;',  # an unknown directive to nginx: ingress-nginx will not load it
    '"deny" all;',  # a quoted directive name is still that directive
    'add_header "X-A" "b"c;',  # a character right after a closing quote: nginx refuses it
])
def test_a_comment_or_quote_inside_a_word_hides_nothing(snippet):
    try:
        parsed = parse_snippet(snippet)
    except SnippetError:
        assert outcome({"configuration-snippet": snippet}) == ("blocked", ["configuration-snippet"])
    else:
        assert parsed.of(Access)  # the deny is read, and applied
        assert outcome({"configuration-snippet": snippet}) == ("warned", ["configuration-snippet"])


def test_an_annotation_the_catalogue_says_cannot_be_ignored_blocks_even_when_ignored(monkeypatch):
    """No entry is non-ignorable today (canary was, until it was implemented); the rule stays."""
    import dataclasses

    entries = {"secure-backends": dataclasses.replace(compat.lookup("secure-backends"), ignorable=False, note=""),
               "enable-modsecurity": dataclasses.replace(compat.lookup("enable-modsecurity"), ignorable=False)}
    monkeypatch.setattr(compat, "lookup", lambda name: entries.get(name) or entry_of(name))
    for ignored in ((), ("secure-backends",)):
        (problem,) = assess({N + "secure-backends": "true"}, OWNED, frozenset(ignored))
        assert (problem.annotation, problem.name, problem.blocking) == (N + "secure-backends", "secure-backends", True)
        assert problem.reason == (f"annotation {N}secure-backends: it is not supported by ingressd; "
                                  "the Ingress is not served until it is")
    (problem,) = assess({N + "enable-modsecurity": "true"}, OWNED, frozenset())
    assert problem.reason == (f"annotation {N}enable-modsecurity: it is not supported by ingressd "
                              "(ModSecurity web application firewall); the Ingress is not served until it is")


def entry_of(name):
    from ingressd.compat.catalogue import lookup

    return lookup(name)


def test_a_snippet_is_read_in_its_own_context():
    """server-snippet is a server block: add_header inside its `if` is not nginx (location `if` only)."""
    snippet = 'if ($host = "a.example") { add_header X-A b; }'
    (problem,) = assess({N + "server-snippet": snippet}, OWNED, frozenset())
    assert problem.blocking and problem.name == "server-snippet"
    assert not any(problem.blocking for problem in assess({N + "configuration-snippet": snippet}, OWNED, frozenset()))


def test_a_refused_annotation_without_a_note_says_only_that(monkeypatch):
    import dataclasses

    bare = dataclasses.replace(compat.lookup("auth-snippet"), note="")
    monkeypatch.setattr(compat, "lookup", lambda name: bare if name == "auth-snippet" else entry_of(name))
    (problem,) = assess({N + "auth-url": "https://a/", N + "auth-snippet": "x"}, OWNED, frozenset())
    assert f"annotation {N}auth-snippet: auth-snippet is never supported, and serving" in problem.reason
