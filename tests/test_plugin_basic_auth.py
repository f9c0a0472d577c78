"""basic_auth: 401 challenge, 503 fail-closed, header removal, the verified-credentials cache."""

import base64

import bcrypt
import pytest
from twisted.internet.defer import Deferred

from fakes import annotation_values, exchange, features_for, header, make_context, run_request, secret
from ingressd.features import AnnotationError, Phase
from ingressd_plugins import basic_auth

APR1_FOO = "$apr1$saltsalt$553eXAj/BD3irf9w9nutz/"  # "pässword"
BCRYPT_BAR = bcrypt.hashpw(b"open sesame", bcrypt.gensalt(rounds=4)).decode()
HTPASSWD = f"foo:{APR1_FOO}\nbar:{BCRYPT_BAR}\n".encode()


def basic(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode()
    return {"authorization": f"Basic {token}"}


def auth_features(raw=None, data=None, secret_type="auth-file"):
    raw = {"auth-type": "basic", "auth-secret": "users", **(raw or {})}
    resolved = {"auth-secret": secret("default", "users", **data) if data is not None else None}
    return features_for(basic_auth, raw, resolved=resolved)


def test_no_auth_type_means_no_feature():
    assert features_for(basic_auth, {}) == []
    # auth-secret alone does not switch auth on (as in ingress-nginx).
    assert features_for(basic_auth, {"auth-secret": "users"}, resolved={"auth-secret": secret("default", "users", auth=HTPASSWD)}) == []


def test_valid_credentials_pass_and_authorization_is_removed():
    [feature] = auth_features(data={"auth": HTPASSWD})
    assert feature.phase == Phase.AUTH
    ex = exchange({**basic("foo", "pässword"), "x-other": "1"})
    assert run_request([feature], ex) is None
    assert ex.headers.get(b"authorization") is None
    assert ex.headers.get(b"x-other") == b"1"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("foo", "wrong"),
        basic("nobody", "pässword"),
        {"authorization": "Bearer abc"},
        {"authorization": "Basic !!!notbase64"},
        {"authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ],
)
def test_missing_or_wrong_credentials_get_401_with_realm(headers):
    [feature] = auth_features({"auth-realm": "Staff only: /admin"}, data={"auth": HTPASSWD})
    ex = exchange(headers)
    answer = run_request([feature], ex)
    assert answer.status == 401
    assert header(answer.headers, b"www-authenticate") == [b'Basic realm="Staff only: /admin"']
    # A refused request keeps its headers; nothing is proxied anyway.
    assert ex.headers.get(b"authorization") == (headers.get("authorization", "").encode() or None)


def test_two_authorization_headers_are_refused():
    [feature] = auth_features(data={"auth": HTPASSWD})
    pairs = list(basic("foo", "pässword").items()) * 2
    assert run_request([feature], exchange(pairs)).status == 401


@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"PROPFIND"])
def test_every_method_is_authenticated(method):
    [feature] = auth_features(data={"auth": HTPASSWD})
    assert run_request([feature], exchange(method=method)).status == 401


def test_bcrypt_and_auth_map():
    [feature] = auth_features({"auth-secret-type": "auth-map"}, data={"bar": BCRYPT_BAR.encode(), "foo": APR1_FOO.encode() + b"\n"})
    assert run_request([feature], exchange(basic("bar", "open sesame"))) is None
    assert run_request([feature], exchange(basic("foo", "pässword"))) is None
    assert run_request([feature], exchange(basic("bar", "open sesamE"))).status == 401


@pytest.mark.parametrize("data", [None, {"other-key": HTPASSWD}])
def test_missing_secret_or_key_fails_closed_with_503(data):
    [feature] = auth_features(data=data)
    assert feature.phase == Phase.AUTH  # where the check it stands for would run
    assert run_request([feature], exchange(basic("foo", "pässword"))).status == 503
    assert run_request([feature], exchange()).status == 503


def test_no_auth_secret_annotation_fails_closed():
    [feature] = features_for(basic_auth, {"auth-type": "basic"})
    assert run_request([feature], exchange()).status == 503


@pytest.mark.parametrize(
    "name,value",
    [
        ("auth-type", "digest"),
        ("auth-type", "bearer"),
        ("auth-secret-type", "auth-json"),
        ("auth-realm", 'x" onerror="'),
        ("auth-realm", "tab\there"),
        ("auth-secret", "../etc/passwd"),
        ("auth-secret", "a/b/c"),
        ("auth-secret", "UPPER"),
    ],
)
def test_bad_values_reject_the_ingress(name, value):
    with pytest.raises((AnnotationError, ValueError)):
        annotation_values(basic_auth, {name: value})


def test_secret_ref_forms_accepted():
    for ref in ("users", "other-ns/users", "my.users-1"):
        assert annotation_values(basic_auth, {"auth-secret": ref})["auth-secret"] == ref


def test_success_is_cached_so_the_hash_is_checked_once(monkeypatch):
    calls = []
    real = basic_auth.htpasswd.verify

    def counting(password, hashed):
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(basic_auth.htpasswd, "verify", counting)
    [feature] = auth_features(data={"auth": HTPASSWD})
    for _ in range(3):
        assert run_request([feature], exchange(basic("bar", "open sesame"))) is None
    assert calls == [b"open sesame"]
    # Failures are not cached, and a cached success does not admit another password.
    for _ in range(2):
        assert run_request([feature], exchange(basic("bar", "open sesame!"))).status == 401
    assert calls == [b"open sesame", b"open sesame!", b"open sesame!"]


def test_cache_holds_no_password_and_is_bounded():
    # a password too long to turn up by chance in a 32-byte digest (two bytes like "pw" did, 1 run in 500)
    password = "open sesame, said the long password"
    feature = basic_auth.BasicAuth({b"u%d" % i: "{PLAIN}" + password for i in range(10)}, cache_size=4)
    for i in range(10):
        assert run_request([feature], exchange(basic(f"u{i}", password))) is None
    assert len(feature._cache) == 4
    for key in feature._cache:
        assert password.encode() not in key and len(key) == 32


def test_cache_key_differs_between_features():
    # A fresh feature (rebuilt when the Secret changes) starts with an empty cache under a new key.
    one = basic_auth.BasicAuth({b"u": "{PLAIN}pw"})
    two = basic_auth.BasicAuth({b"u": "{PLAIN}pw"})
    run_request([one], exchange(basic("u", "pw")))
    run_request([two], exchange(basic("u", "pw")))
    assert set(one._cache).isdisjoint(two._cache)


def test_slow_hashes_run_through_run_slow_and_answer_by_deferred():
    pending: list[Deferred] = []

    def run_slow(function, *args):
        d = Deferred()
        pending.append((d, function, args))
        return d

    feature = basic_auth.BasicAuth({b"bar": BCRYPT_BAR, b"foo": APR1_FOO}, run_slow=run_slow)
    ex = exchange(basic("bar", "open sesame"))
    answer = feature.request(ex)
    assert isinstance(answer, Deferred) and not answer.called
    d, function, args = pending.pop()
    d.callback(function(*args))
    assert answer.result is None and ex.headers.get(b"authorization") is None
    # apr1 is cheap: checked inline.
    assert feature.request(exchange(basic("foo", "pässword"))) is None
    assert not pending
    # A failing check answers 401, not an error.
    answer = feature.request(exchange(basic("bar", "other")))
    pending.pop()[0].errback(RuntimeError("thread pool broke"))
    assert answer.result.status == 401


def test_route_features_uses_the_reactor_thread_pool():
    from twisted.internet import reactor

    [feature] = features_for(basic_auth, {"auth-type": "basic", "auth-secret": "users"}, context=make_context(reactor=reactor),
                             resolved={"auth-secret": secret("default", "users", auth=HTPASSWD)})
    assert feature._run_slow is not None


def test_auth_map_secret_through_the_public_harness():
    from ingressd.testing import PluginHarness

    harness = PluginHarness(
        plugins=[basic_auth],
        annotations={"auth-type": "basic", "auth-secret": "users", "auth-secret-type": "auth-map"},
        secrets={"users": {"bar": BCRYPT_BAR}},
    )
    assert harness.request(headers=basic("bar", "wrong")).status == 401
    outcome = harness.request(headers=basic("bar", "open sesame"))
    assert outcome.proxied and "authorization" not in dict(outcome.upstream_headers)


# -- what a client reads: nginx's wording (test/e2e/annotations/auth.go) ------------------


@pytest.mark.parametrize(
    "annotations,secrets,headers,status,body",
    [
        # auth.go: Body().Contains("401 Authorization Required"), for no and for wrong credentials
        ({"auth-secret": "users"}, {"users": {"auth": HTPASSWD}}, {}, 401, b"401 Authorization Required\n"),
        ({"auth-secret": "users"}, {"users": {"auth": HTPASSWD}}, basic("foo", "wrong"), 401,
         b"401 Authorization Required\n"),
        # auth.go: an invalid secret, Body().Contains("503 Service Temporarily Unavailable")
        ({"auth-secret": "nosuch"}, {}, basic("foo", "pässword"), 503, b"503 Service Temporarily Unavailable\n"),
        ({"auth-secret": "users"}, {"users": {"other": HTPASSWD}}, {}, 503, b"503 Service Temporarily Unavailable\n"),
        ({}, {}, {}, 503, b"503 Service Temporarily Unavailable\n"),
    ],
)
def test_denials_carry_nginx_s_titles(annotations, secrets, headers, status, body):
    from ingressd.testing import PluginHarness

    harness = PluginHarness(plugins=[basic_auth], annotations={"auth-type": "basic", **annotations}, secrets=secrets)
    answer = harness.request(headers=headers).local
    assert (answer.status, answer.body) == (status, body)
    assert answer.get("content-type") == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    "status,body",
    [
        # nginx's page titles (src/http/ngx_http_special_response.c), where Python's differ
        (401, b"401 Authorization Required\n"),
        (405, b"405 Not Allowed\n"),
        (408, b"408 Request Time-out\n"),
        (413, b"413 Request Entity Too Large\n"),
        (414, b"414 Request-URI Too Large\n"),
        (416, b"416 Requested Range Not Satisfiable\n"),
        (503, b"503 Service Temporarily Unavailable\n"),
        (504, b"504 Gateway Time-out\n"),
        # and where they agree
        (400, b"400 Bad Request\n"),
        (403, b"403 Forbidden\n"),
        (429, b"429 Too Many Requests\n"),
        (308, b"308 Permanent Redirect\n"),
        # no nginx page, no body: the core answers these its own way
        (418, b""),
        (422, b""),
        (506, b""),
    ],
)
def test_plain_answers_in_nginx_s_words(status, body):
    from ingressd_plugins._responses import plain

    answer = plain(status, [(b"retry-after", b"1")])
    assert (answer.status, answer.body) == (status, body)
    content_type = [(b"content-type", b"text/plain; charset=utf-8")] if body else []
    assert answer.headers == content_type + [(b"retry-after", b"1")]
    assert plain(status).headers is not plain(status).headers  # a fresh list each time


# -- which Authorization headers are credentials (nginx's ngx_http_auth_basic_user) -------

USERS = {b"foo": APR1_FOO, b"colon": "{PLAIN}pa:ss:word", b"empty": "{PLAIN}"}


def _token(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode()


@pytest.mark.parametrize(
    "authorization,admitted",
    [
        ("Basic " + _token("foo:pässword"), True),
        ("bAsIc " + _token("foo:pässword"), True),  # the scheme is case-insensitive
        ("Basic   " + _token("foo:pässword"), True),  # nginx skips the spaces before the token
        ("  Basic " + _token("foo:pässword") + "  ", True),
        ("Basic " + _token("colon:pa:ss:word"), True),  # the user ends at the first colon
        ("Basic " + _token("colon:ss:word"), False),
        ("Basic " + _token("empty:"), True),  # an empty password, with its colon
        ("Basic " + _token("empty"), False),  # no colon: not credentials, even for an empty password
        ("Basic " + _token(":"), False),
        ("Basic " + _token("foo:pässword")[:8] + "*" + _token("foo:pässword")[8:], False),  # strict base-64
        ("Basic " + _token("foo:pässword") + " x", False),
        ("Basic" + _token("foo:pässword"), False),
        ("Bearer " + _token("foo:pässword"), False),
    ],
)
def test_which_headers_are_credentials(authorization, admitted):
    feature = basic_auth.BasicAuth(USERS, realm="r")
    answer = run_request([feature], exchange({"authorization": authorization}))
    assert (answer is None) == admitted
    if not admitted:
        assert answer.status == 401


# -- what reaches the backend: never the Authorization header, first or cached success ----


@pytest.mark.parametrize("slow", [False, True])
def test_authorization_never_reaches_the_backend(slow):
    def run_slow(function, *args):
        d = Deferred()
        d.callback(function(*args))
        return d

    feature = basic_auth.BasicAuth({b"bar": BCRYPT_BAR}, run_slow=run_slow if slow else None)
    for _ in range(3):  # the first check, then cached successes
        ex = exchange({**basic("bar", "open sesame"), "x-other": "1"})
        assert run_request([feature], ex) is None
        assert list(ex.headers) == [(b"x-other", b"1")]


def test_a_success_checked_off_the_reactor_is_cached_too():
    calls = []

    def run_slow(function, *args):
        calls.append(args)
        d = Deferred()
        d.callback(function(*args))
        return d

    feature = basic_auth.BasicAuth({b"bar": BCRYPT_BAR}, run_slow=run_slow)
    for _ in range(3):
        assert run_request([feature], exchange(basic("bar", "open sesame"))) is None
    assert calls == [(b"open sesame", BCRYPT_BAR)]


@pytest.mark.parametrize(
    "logins,checked",
    [
        # cache_size 2: the least recently used success is forgotten, never the newest one
        (["u0", "u1", "u2", "u2"], ["u0", "u1", "u2"]),
        (["u0", "u1", "u2", "u0"], ["u0", "u1", "u2", "u0"]),
        (["u0", "u1", "u2", "u1"], ["u0", "u1", "u2"]),
        # a cache hit makes that success the most recent
        (["u0", "u1", "u0", "u2", "u0", "u1"], ["u0", "u1", "u2", "u1"]),
    ],
)
def test_cache_forgets_the_least_recently_used_success(monkeypatch, logins, checked):
    calls = []
    real = basic_auth.htpasswd.verify

    def counting(password, hashed):
        calls.append(hashed[len("{PLAIN}"):])
        return real(password, hashed)

    monkeypatch.setattr(basic_auth.htpasswd, "verify", counting)
    feature = basic_auth.BasicAuth({b"u%d" % i: "{PLAIN}u%d" % i for i in range(3)}, cache_size=2)
    for user in logins:
        assert run_request([feature], exchange(basic(user, user))) is None
    assert calls == checked


@pytest.mark.parametrize(
    "cached,other",
    [
        (("a", "bc"), ("ab", "c")),
        (("ab", "c"), ("a", "bc")),
        (("a", "b"), ("a", "B")),
        (("a", "b\0c"), ("a\0b", "c")),  # both may hold NUL: the key is not a NUL-joined pair
    ],
)
def test_a_cached_success_admits_only_that_user_and_password(cached, other):
    user, password = cached
    feature = basic_auth.BasicAuth({user.encode(): "{PLAIN}" + password})
    assert run_request([feature], exchange(basic(user, password))) is None
    answer = run_request([feature], exchange(basic(*other)))
    assert answer is not None and answer.status == 401


def test_realm_defaults_to_empty():
    answer = run_request([basic_auth.BasicAuth({})], exchange())
    assert header(answer.headers, b"www-authenticate") == [b'Basic realm=""']
    [feature] = auth_features(data={"auth": HTPASSWD})
    answer = run_request([feature], exchange())
    assert header(answer.headers, b"www-authenticate") == [b'Basic realm=""']


# -- annotations and Secrets ------------------------------------------------------------


@pytest.mark.parametrize(
    "value,message",
    [
        ("digest", "digest is not supported"),
        (" Digest ", "digest is not supported"),
        ("bearer", "expected basic, got 'bearer'"),
        ("basic digest", "expected basic"),
    ],
)
def test_auth_type_errors_say_what_is_wrong(value, message):
    with pytest.raises(AnnotationError, match=message):
        annotation_values(basic_auth, {"auth-type": value})


@pytest.mark.parametrize(
    "name,value,parsed",
    [
        ("auth-type", "basic", "basic"),
        ("auth-type", " Basic ", "basic"),
        ("auth-secret-type", "auth-file", "auth-file"),
        ("auth-secret-type", " auth-map ", "auth-map"),
        ("auth-realm", "", ""),
        ("auth-realm", "Staff only: /admin-1.2_~", "Staff only: /admin-1.2_~"),
    ],
)
def test_good_values_parse(name, value, parsed):
    assert annotation_values(basic_auth, {name: value})[name] == parsed


@pytest.mark.parametrize("secret_type", ["auth-file", "auth-map"])
def test_a_non_ascii_hash_refuses_that_user_only(secret_type):
    # A hash is ASCII; other bytes cannot be part of one, and must not break the other users.
    odd = "$apr1$saltsalt$553eXAj/BD3irf9w9nutzé".encode()
    if secret_type == "auth-file":
        data = {"auth": b"odd:" + odd + b"\nbar:" + BCRYPT_BAR.encode() + b"\n"}
    else:
        data = {"odd": odd, "bar": BCRYPT_BAR.encode()}
    [feature] = auth_features({"auth-secret-type": secret_type}, data=data)
    assert run_request([feature], exchange(basic("odd", "pässword"))).status == 401
    assert run_request([feature], exchange(basic("bar", "open sesame"))) is None


@pytest.mark.parametrize("secret_type", ["auth-file", "auth-map"])
def test_plain_password_with_non_ascii_characters(secret_type):
    plain_hash = "{PLAIN}pässword".encode()
    data = {"auth": b"foo:" + plain_hash + b"\n"} if secret_type == "auth-file" else {"foo": plain_hash}
    [feature] = auth_features({"auth-secret-type": secret_type}, data=data)
    assert run_request([feature], exchange(basic("foo", "pässword"))) is None


@pytest.mark.parametrize("data", [None, {"other-key": HTPASSWD}])
def test_the_503_feature_says_why(data):
    [feature] = auth_features(data=data)
    assert isinstance(feature, basic_auth.DeniedLocation)
    assert "auth-secret" in feature.reason


def test_the_backend_request_loses_every_authorization_line_and_only_those():
    """nginx.tmpl: ``proxy_set_header Authorization ""`` under auth_basic — also when another
    check let the request through (``satisfy: any``)."""
    [feature] = auth_features(data={"auth": HTPASSWD})
    lines = [(b"host", b"a"), (b"authorization", b"Basic eA=="), (b"x-authorization", b"authorization"),
             (b"authorization", b"Bearer y")]
    feature.upstream_request(exchange({}), lines)
    assert lines == [(b"host", b"a"), (b"x-authorization", b"authorization")]
