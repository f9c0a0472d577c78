"""Session affinity (affinity: cookie, session-cookie-*): the sticky balancers of ingress-nginx, in memory."""

from __future__ import annotations

import random
from collections import Counter
from hashlib import md5

import pytest

from ingressd.config.model import Endpoint
from ingressd.testing import PluginHarness
from ingressd_plugins import affinity, rewrite
from ingressd_plugins._chash import Ring

N = "nginx.ingress.kubernetes.io/"
ENDPOINTS = (("10.0.0.1", 8080), ("10.0.0.2", 8080), ("10.0.0.3", 8080))


def harness(annotations=None, endpoints=ENDPOINTS, plugins=(), **kwargs):
    values = {"affinity": "cookie", **(annotations or {})}
    return PluginHarness([affinity, *plugins], {N + k: v for k, v in values.items()}, endpoints=endpoints, **kwargs)


def visit(h, cookie=None, *, path="/", scheme="http", headers=(), exclude=()):
    """One request: (the endpoint chosen, the Set-Cookie values the client gets)."""
    extra = list(headers) + ([("Cookie", cookie)] if cookie else [])
    outcome = h.request(path=path, headers=extra, scheme=scheme)
    assert outcome.proxied
    endpoint = outcome.exchange.balancer.pick(exclude)
    response = outcome.response(200)
    return endpoint, response.get_all("set-cookie")


def cookie_of(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0]


# -- stickiness -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["balanced", "persistent"])
def test_the_first_answer_sets_the_cookie_and_it_keeps_the_client_on_its_endpoint(mode):
    with harness({"affinity-mode": mode}) as h:
        endpoint, cookies = visit(h)
        assert len(cookies) == 1 and cookies[0].startswith("INGRESSCOOKIE=")
        for _ in range(30):
            again, more = visit(h, cookie_of(cookies[0]))
            assert again == endpoint and more == []  # set only when the client has none


@pytest.mark.parametrize("mode", ["balanced", "persistent"])
def test_new_clients_are_spread_over_the_endpoints(mode):
    with harness({"affinity-mode": mode}) as h:
        counts = Counter(visit(h)[0] for _ in range(300))
        assert set(counts) == {Endpoint(a, p) for a, p in ENDPOINTS}
        assert min(counts.values()) > 40  # each about a third


@pytest.mark.parametrize("mode", ["balanced", "persistent"])
def test_the_cookie_means_the_same_endpoint_to_another_replica_and_after_a_restart(mode):
    with harness({"affinity-mode": mode}) as first:
        issued = [visit(first) for _ in range(20)]
    reordered = tuple(reversed(ENDPOINTS))  # another process may list them in another order
    with harness({"affinity-mode": mode}, endpoints=reordered) as second:
        for endpoint, cookies in issued:
            assert visit(second, cookie_of(cookies[0])) == (endpoint, [])


def test_the_value_is_the_key_and_the_backend_as_ingress_nginx_and_no_address_in_clear():
    with harness({"affinity-mode": "persistent"}) as h:
        endpoint, (cookie,) = visit(h)
    value = cookie_of(cookie).partition("=")[2]
    key, _, backend = value.partition("|")
    name = "default-web-80"  # ingress-nginx's upstream name
    assert backend == md5((md5(name.encode()).hexdigest() + name).encode()).hexdigest()
    # util/nodemap.lua: md5(upstream name .. "address:port")
    assert key == md5(f"{name}{endpoint.address}:{endpoint.port}".encode()).hexdigest()
    assert "10.0.0" not in cookie


def test_a_cookie_ingress_nginx_issued_in_persistent_mode_keeps_its_endpoint():
    name = "default-web-80"
    key = md5(f"{name}10.0.0.2:8080".encode()).hexdigest()
    with harness({"affinity-mode": "persistent"}) as h:
        for _ in range(10):
            assert visit(h, f"INGRESSCOOKIE={key}|whatever") == (Endpoint("10.0.0.2", 8080), [])


def test_the_cookie_is_found_among_others_and_by_its_own_name_only():
    with harness({"session-cookie-name": "SERVERID"}) as h:
        endpoint, (cookie,) = visit(h)
        assert cookie.startswith("SERVERID=")
        for _ in range(10):
            assert visit(h, f"a=1; INGRESSCOOKIE=zzz; {cookie_of(cookie)}; b=2") == (endpoint, [])
        _, cookies = visit(h, "INGRESSCOOKIE=" + cookie_of(cookie).partition("=")[2])
        assert len(cookies) == 1  # another name is no cookie of ours


# -- endpoints that go away -----------------------------------------------------------------


def test_balanced_a_removed_endpoint_moves_only_its_own_clients_and_sets_no_cookie():
    with harness() as h:
        clients = [visit(h) for _ in range(120)]
        gone = ("10.0.0.3", 8080)
        h.rebuild(_with_endpoints(h, ENDPOINTS[:2]))
        moved = 0
        for endpoint, cookies in clients:
            now, more = visit(h, cookie_of(cookies[0]))
            assert more == []  # the key still maps (the same way in every replica): not set again
            if (endpoint.address, endpoint.port) == gone:
                assert (now.address, now.port) != gone
                moved += 1
            else:
                assert now == endpoint
        assert moved


def test_persistent_a_removed_endpoint_gets_its_clients_a_new_endpoint_and_cookie():
    with harness({"affinity-mode": "persistent"}) as h:
        clients = [visit(h) for _ in range(60)]
        h.rebuild(_with_endpoints(h, ENDPOINTS[:2]))
        for endpoint, cookies in clients:
            now, more = visit(h, cookie_of(cookies[0]))
            if endpoint.address == "10.0.0.3":
                assert now.address != "10.0.0.3" and len(more) == 1
                assert visit(h, cookie_of(more[0])) == (now, [])
            else:
                assert (now, more) == (endpoint, [])


def test_persistent_an_added_endpoint_moves_nobody_balanced_moves_about_its_share():
    for mode, most in (("persistent", 0), ("balanced", 0.45)):
        with harness({"affinity-mode": mode}, endpoints=ENDPOINTS[:2]) as h:
            clients = [visit(h) for _ in range(400)]
            h.rebuild(_with_endpoints(h, ENDPOINTS))
            moved = sum(visit(h, cookie_of(cookies[0]))[0] != endpoint for endpoint, cookies in clients)
            assert moved <= most * len(clients), (mode, moved)
            if mode == "balanced":
                assert moved > 0.2 * len(clients)  # about a third goes to the new endpoint


def _with_endpoints(h, endpoints):
    from ingressd.testing import one_route_objects

    return one_route_objects(h.host, endpoints, path=h.path, annotations=h.annotations)


# -- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["balanced", "persistent"])
def test_a_retry_goes_back_to_the_cookies_endpoint_without_change_on_failure(mode):
    with harness({"affinity-mode": mode}) as h:
        endpoint, (cookie,) = visit(h)
        assert visit(h, cookie_of(cookie), exclude=(endpoint,)) == (endpoint, [])


@pytest.mark.parametrize("mode", ["balanced", "persistent"])
def test_change_on_failure_moves_a_retry_elsewhere_and_the_cookie_with_it(mode):
    with harness({"affinity-mode": mode, "session-cookie-change-on-failure": "true"}) as h:
        endpoint, (cookie,) = visit(h)
        for _ in range(10):
            other, (moved,) = visit(h, cookie_of(cookie), exclude=(endpoint,))
            assert other != endpoint
            assert visit(h, cookie_of(moved)) == (other, [])
        assert visit(h, cookie_of(cookie)) == (endpoint, [])  # the first try still follows the cookie


def test_the_retry_of_a_new_client_avoids_the_failed_endpoint_and_sets_one_cookie():
    with harness() as h:
        outcome = h.request()
        first = outcome.exchange.balancer.pick(())
        second = outcome.exchange.balancer.pick((first,))
        assert second != first
        (cookie,) = outcome.response(200).get_all("set-cookie")
        assert visit(h, cookie_of(cookie)) == (second, [])


# -- the cookie's attributes ----------------------------------------------------------------


def test_the_default_attributes_path_of_the_location_and_httponly():
    with harness(path="/something") as h:
        _, (cookie,) = visit(h, path="/something/else")
        assert cookie.split("; ")[1:] == ["Path=/something", "HttpOnly"]


def test_every_attribute_in_lua_resty_cookie_order():
    with harness({"session-cookie-expires": "172800", "session-cookie-max-age": "259200",
                  "session-cookie-domain": "foo.bar", "session-cookie-path": "/foo/bar",
                  "session-cookie-secure": "true", "session-cookie-samesite": "Strict"}) as h:
        h.clock.advance(1_700_000_000)  # Tue, 14-Nov-23 22:13:20 GMT
        _, (cookie,) = visit(h)
        assert cookie.split("; ")[1:] == ["Expires=Thu, 16-Nov-23 22:13:20 GMT", "Max-Age=259200", "Domain=foo.bar",
                                          "Path=/foo/bar", "Secure", "HttpOnly", "SameSite=Strict"]


def test_a_regex_path_is_copied_as_is_unless_session_cookie_path_is_given():
    with harness({"use-regex": "true"}, path="/foo/.*", path_type="ImplementationSpecific", plugins=[rewrite]) as h:
        _, (cookie,) = visit(h, path="/foo/bar")
        assert "; Path=/foo/.*;" in cookie
    with harness({"use-regex": "true", "session-cookie-path": "/foo/bar"}, path="/foo/.*",
                 path_type="ImplementationSpecific", plugins=[rewrite]) as h:
        _, (cookie,) = visit(h, path="/foo/bar")
        assert "; Path=/foo/bar;" in cookie


def test_secure_over_https_even_when_the_annotation_says_false():
    with harness({"session-cookie-secure": "false"}) as h:
        assert "; Secure" in visit(h, scheme="https")[1][0]
        assert "; Secure" not in visit(h, scheme="http")[1][0]


@pytest.mark.parametrize("value, agent, expected", [
    ("None", None, "SameSite=None"),
    ("None", "Mozilla/5.0 Chrome/51.0.2704.103 Safari/537.36", None),
    ("None", "Mozilla/5.0 (iPhone; CPU iPhone OS 12_0 like Mac OS X)", None),
    ("None", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_0) AppleWebKit Version/12.0 Safari/605.1.15", None),
    ("None", "Mozilla/5.0 Chrome/120.0 Safari/537.36", "SameSite=None"),
    ("Lax", "Mozilla/5.0 Chrome/51.0 Safari/537.36", "SameSite=Lax"),
])
def test_conditional_samesite_none_leaves_none_out_for_browsers_that_refuse_it(value, agent, expected):
    with harness({"session-cookie-samesite": value, "session-cookie-conditional-samesite-none": "true"}) as h:
        _, (cookie,) = visit(h, headers=[("User-Agent", agent)] if agent else [])
        found = [part for part in cookie.split("; ") if part.startswith("SameSite")]
        assert found == ([expected] if expected else [])


def test_samesite_spelled_otherwise_is_left_out_as_lua_resty_cookie_does():
    with harness({"session-cookie-samesite": "lax"}) as h:
        assert "SameSite" not in visit(h)[1][0]


def test_a_negative_max_age_and_expires_are_kept():
    with harness({"session-cookie-max-age": "-1", "session-cookie-expires": "0"}) as h:
        _, (cookie,) = visit(h)
        assert "; Max-Age=-1;" in cookie and "Expires=Thu, 01-Jan-70 00:00:00 GMT" in cookie


def test_nginx_cookie_time_four_digit_years_after_2037():
    assert affinity.cookie_time(2**31 + 86400 * 366) == "Thu, 20-Jan-2039 03:14:08 GMT"


# -- what is not affinity -------------------------------------------------------------------


def test_without_affinity_cookie_nothing_changes():
    with PluginHarness([affinity], {N + "session-cookie-name": "X"}) as h:
        assert h.features == ()


def test_a_request_answered_before_the_backend_gets_no_cookie():
    with harness() as h:
        outcome = h.request()
        assert outcome.response(200).get_all("set-cookie") == []  # no endpoint was picked


def test_a_route_without_endpoints_is_left_to_the_other_features():
    with harness(endpoints=()) as h:
        outcome = h.request()
        assert getattr(outcome.exchange, "balancer", None) is None


@pytest.mark.parametrize("annotation, value", [
    ("affinity", "ip"), ("affinity", "Cookie"), ("affinity-mode", "sticky"), ("session-cookie-name", "a b"),
    ("session-cookie-name", "a;b"), ("session-cookie-path", "/a;b"), ("session-cookie-domain", "a,b"),
    ("session-cookie-samesite", "sometimes"), ("session-cookie-max-age", "1h"), ("session-cookie-expires", "01"),
    ("session-cookie-secure", "yes"), ("session-cookie-change-on-failure", "on"),
])
def test_a_value_ingress_nginx_would_not_accept_rejects_the_ingress(annotation, value):
    with harness({annotation: value}) as h:
        assert h.rejection is not None and annotation in h.rejection


# -- the ring -------------------------------------------------------------------------------


def test_the_ring_moves_about_one_key_in_n_plus_one_when_an_endpoint_is_added():
    endpoints = [Endpoint(f"10.1.0.{i}", 8080) for i in range(1, 11)]
    before, after = Ring(endpoints), Ring(endpoints + [Endpoint("10.1.0.11", 8080)])
    rng = random.Random(7)
    keys = [f"{rng.getrandbits(64):x}".encode() for _ in range(20000)]
    moved = [key for key in keys if before.find(key) != after.find(key)]
    assert all(after.find(key) == Endpoint("10.1.0.11", 8080) for key in moved)  # only to the new one
    assert 0.05 < len(moved) / len(keys) < 0.13  # ideal: 1/11 = 0.091


def test_use_regex_without_session_cookie_path_warns_as_ingress_nginx_does():
    from twisted.logger import globalLogPublisher

    seen: list = []
    observer = seen.append
    globalLogPublisher.addObserver(observer)
    try:
        with harness({"use-regex": "true"}, path="/foo/.*", path_type="ImplementationSpecific", plugins=[rewrite]):
            pass
    finally:
        globalLogPublisher.removeObserver(observer)
    assert any("session-cookie-path should be set when use-regex is true" in event.get("log_format", "")
               for event in seen)
