"""``satisfy: any|all`` in memory: the chain's AnyOf as nginx's ``satisfy any`` (one check letting
the request through is enough; refusals go on; an error is final; the first 401 wins, a sign-in
redirect standing for it winning over a plain one), which features it combines, and the real
plugins together (allow list, basic auth, external auth)."""

from __future__ import annotations

import base64

import pytest
from twisted.internet import defer

from ingressd import LocalResponse, SubResponse
from ingressd.features import BuildContext, Phase
from ingressd.proxy.chain import AnyOf, request_methods
from ingressd.testing import PluginHarness, exchange as fake_exchange, features_for, run_request
from ingressd_plugins import allowlist, basic_auth, ext_auth, satisfy

from test_ext_auth import FakeAuth, answer

# htpasswd line for user / pass ({SHA}: fast to check in memory)
HTPASSWD = "user:{SHA}nU4eI71bcnBGqeO0t9tXvY1u5oQ=\n"
CREDENTIALS = {"authorization": "Basic " + base64.b64encode(b"user:pass").decode()}


class Check:
    phase = Phase.AUTH
    access_check = True

    def __init__(self, result, log):
        self.result, self.log = result, log

    def request(self, exchange):
        self.log.append(self)
        return self.result() if callable(self.result) else self.result


def run(results):
    log = []
    checks = [Check(result, log) for result in results]
    outcome = AnyOf([check.request for check in checks]).request(fake_exchange())
    if isinstance(outcome, defer.Deferred):
        fired = []
        outcome.addBoth(fired.append)
        outcome = fired[0]
    return outcome, [checks.index(check) for check in log]


def test_one_check_letting_through_is_enough_and_the_rest_are_not_asked():
    assert run([LocalResponse(403), None, LocalResponse(401)]) == (None, [0, 1])
    assert run([None, LocalResponse(403)]) == (None, [0])


def test_when_all_refuse_the_first_401_else_the_last_403():
    first, second = LocalResponse(401, [(b"www-authenticate", b"a")]), LocalResponse(401)
    assert run([LocalResponse(403), first, second, LocalResponse(403)]) == (first, [0, 1, 2, 3])
    last = LocalResponse(403, body=b"last")
    assert run([LocalResponse(403), last]) == (last, [0, 1])


def test_a_sign_in_redirect_stands_for_401_and_wins_as_error_page_401():
    redirect = LocalResponse(302, [(b"location", b"https://sso/")], denial=401)
    plain_401 = LocalResponse(401)
    assert run([plain_401, redirect])[0] is redirect
    assert run([redirect, plain_401])[0] is redirect
    assert run([LocalResponse(403), redirect])[0] is redirect


@pytest.mark.parametrize("status", [500, 503, 302, 404])
def test_an_error_is_final_never_a_pass(status):
    error = LocalResponse(status)
    assert run([LocalResponse(401), error, None]) == (error, [0, 1])


def test_deferred_checks():
    assert run([lambda: defer.succeed(LocalResponse(401)), lambda: defer.succeed(None), None]) == (None, [0, 1])
    refused = LocalResponse(403)
    assert run([lambda: defer.succeed(LocalResponse(401)), lambda: defer.succeed(refused)])[0].status == 401
    assert run([lambda: defer.succeed(LocalResponse(500)), None])[0].status == 500


def test_only_access_checks_are_combined_and_only_when_a_feature_says_satisfy_any():
    log = []
    first, second = Check(LocalResponse(403), log), Check(None, log)

    class Other:
        phase = Phase.AUTH

        def request(self, exchange):
            return None

    other = Other()
    assert request_methods([first, other, second]) == (first.request, other.request, second.request)
    combined = request_methods([first, other, second, satisfy.SatisfyAny()])
    assert len(combined) == 2 and combined[1] == other.request
    assert isinstance(combined[0].__self__, AnyOf) and combined[0].__self__.checks == (first.request, second.request)
    assert request_methods([first, other, satisfy.SatisfyAny()]) == (first.request, other.request)  # one: as is


def test_the_annotation():
    assert satisfy.parse_satisfy(" any ") == "any" and satisfy.parse_satisfy("all") == "all"
    for bad in ("ANY", "some", "", "any all"):
        with pytest.raises(ValueError):
            satisfy.parse_satisfy(bad)
    with PluginHarness(plugins=[satisfy], annotations={"satisfy": "some"}) as harness:
        assert "satisfy" in harness.rejection and "any or all" in harness.rejection


# -- the real plugins together --------------------------------------------------------------------


def _harness(value):
    annotations = {"allowlist-source-range": "10.0.0.0/8", "auth-type": "basic", "auth-secret": "users"}
    if value:
        annotations["satisfy"] = value
    return PluginHarness(plugins=[allowlist, basic_auth, satisfy], annotations=annotations,
                         secrets={"users": {"auth": HTPASSWD}})


def test_satisfy_any_with_an_allow_list_and_basic_auth():
    with _harness("any") as harness:
        inside = harness.request(client_ip="10.1.2.3", headers={"authorization": "Basic Zm9vOmJhcg=="})
        assert inside.proxied  # the list lets it through: no credentials needed
        assert "authorization" not in dict(inside.upstream_headers)  # never to the backend
        outside = harness.request(client_ip="192.0.2.1")
        assert outside.status == 401  # the first 401 (basic auth's), not the list's 403
        assert harness.request(client_ip="192.0.2.1", headers=CREDENTIALS).proxied


@pytest.mark.parametrize("value", [None, "all"])
def test_satisfy_all_needs_every_check(value):
    with _harness(value) as harness:
        assert harness.request(client_ip="192.0.2.1", headers=CREDENTIALS).status == 403
        assert harness.request(client_ip="10.1.2.3").status == 401
        assert harness.request(client_ip="10.1.2.3", headers=CREDENTIALS).proxied


def test_basic_auth_never_lets_authorization_reach_the_backend():
    (feature,) = features_for(basic_auth, {"auth-type": "basic", "auth-secret": "users"},
                              resolved={"auth-secret": _secret()})
    lines = [(b"host", b"a"), (b"authorization", b"Basic x"), (b"x", b"1"), (b"authorization", b"y")]
    feature.upstream_request(fake_exchange(), lines)
    assert lines == [(b"host", b"a"), (b"x", b"1")]


def _secret():
    from ingressd.testing import secret
    return secret("default", "users", auth=HTPASSWD.encode())


def test_satisfy_any_with_basic_and_external_auth_as_ingress_nginx_e2e():
    """test/e2e/annotations/satisfy.go: with basic credentials 200; without, the sign-in redirect."""
    auth = FakeAuth(answer(401))
    context = BuildContext(settings={}, reactor=None, subrequests=auth)
    features = [
        *features_for(basic_auth, {"auth-type": "basic", "auth-secret": "users"},
                      resolved={"auth-secret": _secret()}, context=context),
        *features_for(ext_auth, {"auth-url": "http://auth.test/", "auth-signin": "http://$host/auth/start"},
                      context=context),
        *features_for(satisfy, {"satisfy": "any"}, context=context),
    ]
    assert run_request(features, fake_exchange(CREDENTIALS)) is None
    assert auth.sent == []  # basic auth let it through: the auth service is not asked
    redirect = run_request(features, fake_exchange({"host": "auth"}, request_uri=b"/?a=b&c=d"))
    assert redirect.status == 302
    assert dict(redirect.headers)[b"location"] == b"http://example.com/auth/start?rd=http://auth%2F%3Fa%3Db%26c%3Dd"
    auth.answer = answer(500)
    assert run_request(features, fake_exchange()).status == 500  # a failing auth service: never a pass
    auth.answer = answer(200)
    assert run_request(features, fake_exchange()) is None
    assert auth.sent[-1][0] == b"GET" and SubResponse  # the auth service let it through
