"""no-auth-locations and the ConfigMap's global-auth-* keys: the Ingress paths never
authenticated (external, global, basic), and the global auth configured as the annotations of
the same names configure a route's (ingress-nginx's template and configmap.go)."""

import base64
import dataclasses

import pytest
from twisted.internet.task import Clock

from fakes import secret
from ingressd.compat.configmap_catalogue import IMPLEMENTED, lookup
from ingressd.config.nginx_configmap import read_configmap
from ingressd.features import BuildContext
from ingressd.testing import exchange as fake_exchange, features_for, make_route, run_request
from ingressd_plugins import _no_auth, basic_auth, ext_auth
from test_ext_auth import FakeAuth, answer, auth_feature

APR1_FOO = "$apr1$saltsalt$553eXAj/BD3irf9w9nutz/"  # "pässword"


def _route(path):
    return dataclasses.replace(make_route(), path=path)


def _basic(path, settings=None):
    context = BuildContext(settings=dict(settings or {}), reactor=Clock())
    resolved = {"auth-secret": secret("default", "users", auth=f"foo:{APR1_FOO}\n".encode())}
    return features_for(basic_auth, {"auth-type": "basic", "auth-secret": "users"}, route=_route(path),
                        context=context, resolved=resolved)


@pytest.mark.parametrize("text, items", [
    ("/.well-known/acme-challenge", ("/.well-known/acme-challenge",)),
    ("/public, /health ,, /status", ("/public", "/health", "/status")),
    ("", ()),
    (" , ", ()),
])
def test_the_list_splits_as_ingress_nginx(text, items):
    assert _no_auth.parse_locations(text) == items


def test_the_default_exempts_acme_challenges_only_and_an_empty_list_nothing():
    assert _no_auth.locations({}) == ("/.well-known/acme-challenge",)
    assert _no_auth.exempt("/.well-known/acme-challenge/tok", {})
    assert not _no_auth.exempt("/.well-known/other", {})
    assert not _no_auth.exempt("/.well-known/acme-challenge/tok", {"no_auth_locations": ()})
    assert not _no_auth.exempt("/.well-known/acme-challenge/tok", {"no_auth_locations": ""})


def test_a_listed_path_skips_basic_auth_and_an_unlisted_one_does_not():
    settings = {"no_auth_locations": ("/noauth", "/public")}
    assert _basic("/noauth", settings) == []  # ingress-nginx's e2e: settings/no_auth_locations.go
    assert _basic("/noauthority", settings) == []  # a prefix of the Ingress path, as strings.HasPrefix
    assert _basic("/public/x", settings) == []
    [feature] = _basic("/", settings)
    assert run_request([feature], fake_exchange()).status == 401
    [feature] = _basic("/.well-known/acme-challenge", settings)  # not listed any more
    assert run_request([feature], fake_exchange()).status == 401
    assert _basic("/.well-known/acme-challenge") == []  # the default list
    token = base64.b64encode("foo:pässword".encode()).decode()
    [feature] = _basic("/private", settings)
    assert run_request([feature], fake_exchange({"authorization": f"Basic {token}"})) is None


def test_a_listed_path_skips_external_and_global_auth_and_an_unlisted_one_does_not():
    settings = {"no_auth_locations": ("/public",), "global_auth_url": "http://global.test/"}
    assert auth_feature({"auth-url": "http://auth.test/"}, settings=settings, route=_route("/public"))[0] is None
    assert auth_feature({}, settings=settings, route=_route("/public/x"))[0] is None
    feature, auth = auth_feature({}, settings=settings, route=_route("/private"))
    assert feature is not None
    feature, auth = auth_feature({"auth-url": "http://auth.test/"}, FakeAuth(answer(401)), settings=settings,
                                 route=_route("/"))
    assert run_request([feature], fake_exchange()).status == 401 and len(auth.sent) == 1
    acme = _route("/.well-known/acme-challenge/x")
    assert auth_feature({"auth-url": "http://auth.test/"}, settings=settings, route=acme)[0] is not None


def test_the_option_reads_the_list():
    (option,) = [o for o in ext_auth.ingressd_options() if o.name == "no-auth-locations"]
    assert option.default == ("/.well-known/acme-challenge",)
    assert option.coerce("/a, /b") == ("/a", "/b")


# -- the global auth keys -------------------------------------------------------------------------


GLOBAL = {"global_auth_url": "http://global.test/check", "global_auth_signin": "https://sso.test/start"}


def test_global_signin_redirect_param_names_the_parameter():
    feature, _ = auth_feature({}, FakeAuth(answer(401)), settings={**GLOBAL,
                                                                  "global_auth_signin_redirect_param": "orig"})
    local = run_request([feature], fake_exchange({"host": "shop.test"}, scheme="https", request_uri=b"/x"))
    assert dict(local.headers)[b"location"] == b"https://sso.test/start?orig=https://shop.test%2Fx"
    feature, _ = auth_feature({}, FakeAuth(answer(401)), settings=GLOBAL)
    local = run_request([feature], fake_exchange({"host": "shop.test"}, scheme="https", request_uri=b"/x"))
    assert dict(local.headers)[b"location"] == b"https://sso.test/start?rd=https://shop.test%2Fx"


def test_global_request_redirect_is_sent_to_the_auth_service():
    feature, auth = auth_feature({}, settings={**GLOBAL, "global_auth_request_redirect": "https://shop.test/home"})
    run_request([feature], fake_exchange(request_uri=b"/x"))
    assert auth.headers()[b"x-auth-request-redirect"] == b"https://shop.test/home"
    feature, auth = auth_feature({}, settings=GLOBAL)
    run_request([feature], fake_exchange(request_uri=b"/x"))
    assert auth.headers()[b"x-auth-request-redirect"] == b"/x"


def test_global_cache_key_and_duration_cache_the_global_answers():
    clock = Clock()
    settings = {**GLOBAL, "global_auth_cache_key": "$http_authorization", "global_auth_cache_duration": "200 1m"}
    feature, auth = auth_feature({}, settings=settings, clock=clock)
    assert run_request([feature], fake_exchange({"authorization": "a"})) is None
    assert run_request([feature], fake_exchange({"authorization": "a"})) is None
    assert len(auth.sent) == 1  # a hit
    run_request([feature], fake_exchange({"authorization": "b"}))
    assert len(auth.sent) == 2  # another key
    clock.advance(61)
    run_request([feature], fake_exchange({"authorization": "a"}))
    assert len(auth.sent) == 3  # one minute, not the default five
    uncached, auth = auth_feature({}, settings=GLOBAL, clock=clock)
    run_request([uncached], fake_exchange({"authorization": "a"}))
    run_request([uncached], fake_exchange({"authorization": "a"}))
    assert len(auth.sent) == 2  # without a key nothing is cached


@pytest.mark.parametrize("name, bad", [
    ("global-auth-signin-redirect-param", "a=b"),
    ("global-auth-request-redirect", "http://x/<script>"),
    ("global-auth-cache-key", "$(rm)"),
    ("global-auth-cache-duration", "200 forever"),
])
def test_global_keys_are_checked_as_their_annotations(name, bad):
    (option,) = [o for o in ext_auth.ingressd_options() if o.name == name]
    with pytest.raises(ValueError):
        option.coerce(bad)


# -- the ConfigMap ---------------------------------------------------------------------------------


def _reading(data):
    options = {option.name: option.coerce for option in ext_auth.ingressd_options()}
    return read_configmap("ingress-nginx/ingress-nginx-controller", data, ext_auth.ingressd_annotations(), options)


def test_the_configmap_keys_become_settings():
    reading = _reading({"no-auth-locations": "/public,/health", "global-auth-url": "http://g.test/",
                        "global-auth-signin-redirect-param": "orig", "global-auth-request-redirect": "/home",
                        "global-auth-cache-key": "$remote_addr", "global-auth-cache-duration": "200 1m"})
    assert reading.usable, reading.refusals
    assert not reading.warnings
    settings = dict(reading.settings)
    assert settings["no-auth-locations"] == ("/public", "/health")
    assert settings["global-auth-signin-redirect-param"] == "orig"
    assert settings["global-auth-cache-duration"] == "200 1m"
    for key in ("no-auth-locations", "global-auth-signin-redirect-param", "global-auth-request-redirect",
                "global-auth-cache-key", "global-auth-cache-duration"):
        assert lookup(key).status == IMPLEMENTED


def test_an_empty_no_auth_locations_exempts_nothing_and_a_bad_global_key_refuses_the_configmap():
    reading = _reading({"no-auth-locations": ""})
    assert reading.usable and dict(reading.settings)["no-auth-locations"] == ()
    reading = _reading({"global-auth-cache-duration": "200 forever"})
    assert not reading.usable and "global-auth-cache-duration" in reading.refusals[0]
