"""limit-conn-zone-variable: what the limits count by (ingress-nginx maps each Ingress's
``$limit_ID`` to it for its limit_conn and limit_req zones; default ``$binary_remote_addr``)."""

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from fakes import exchange, features_for, make_context, make_route, run_request
from ingressd.compat.configmap_catalogue import IMPLEMENTED, lookup
from ingressd.config.nginx_configmap import read_configmap
from ingressd.features import AnnotationError
from ingressd_plugins import rate_limit


def limited(raw, variable=None, clock=None, redis=None):
    settings = {} if variable is None else {"limit_conn_zone_variable": variable}
    if redis is not None:
        settings["redis"] = "redis://127.0.0.1:6379"
    context = make_context(settings, reactor=clock or Clock(), state={}, redis=redis)
    [feature] = features_for(rate_limit, raw, route=make_route(namespace="ns", ingress="shop"), context=context)
    return feature


def send(feature, ip="192.0.2.1", headers=(), finish=True):
    ex = exchange(headers, client_ip=ip)
    answer = run_request([feature], ex)
    if finish:
        ex.finish()
    return answer


@pytest.mark.parametrize("variable", [None, "$binary_remote_addr", "${binary_remote_addr}", " $binary_remote_addr ",
                                      "$remote_addr", ""])
def test_the_default_counts_each_client_address(variable):
    feature = limited({"limit-connections": "1"}, variable)
    assert send(feature, "192.0.2.1", finish=False) is None
    assert send(feature, "192.0.2.1").status == 503  # the same address: over
    assert send(feature, "192.0.2.2") is None  # another address: its own count


def test_a_header_variable_counts_per_header_value_whatever_the_address():
    feature = limited({"limit-connections": "1"}, "$http_x_api_key")
    assert send(feature, "192.0.2.1", {"x-api-key": "k1"}, finish=False) is None
    assert send(feature, "192.0.2.2", {"x-api-key": "k1"}).status == 503  # the same key from elsewhere
    assert send(feature, "192.0.2.1", {"x-api-key": "k2"}) is None  # another key from the same address
    for _ in range(3):
        assert send(feature, "192.0.2.1", finish=False) is None  # no key: not counted, as nginx


def test_keys_are_the_values_as_sent_never_escaped_into_another_key():
    feature = limited({"limit-connections": "1"}, "$http_x_api_key")
    assert send(feature, "192.0.2.1", {"x-api-key": "a b"}, finish=False) is None
    assert send(feature, "192.0.2.1", {"x-api-key": "a%20b"}, finish=False) is None  # not the same key
    redis = Buckets()
    cluster = limited({"limit-rps": "2", "limit-scope": "global"}, "$http_x_api_key", redis=redis)
    send(cluster, "192.0.2.9", {"x-api-key": "a b"})
    assert redis.asked == [(b"limit:ns/shop:rps:a b",)]


def test_request_rates_count_by_it_too():
    clock = Clock()
    feature = limited({"limit-rps": "1", "limit-burst-multiplier": "1"}, "$binary_remote_addr$http_x_user", clock)
    assert send(feature, "192.0.2.1", {"x-user": "a"}) is None
    assert send(feature, "192.0.2.1", {"x-user": "a"}) is None  # burst 1 + the first
    assert send(feature, "192.0.2.1", {"x-user": "a"}).status == 503
    assert send(feature, "192.0.2.1", {"x-user": "b"}) is None  # the address with another user
    assert send(feature, "192.0.2.2", {"x-user": "a"}) is None  # the user from another address


def test_the_allowlist_still_checks_the_client_address():
    feature = limited({"limit-connections": "1", "limit-allowlist": "10.0.0.0/8"}, "$http_x_api_key")
    for _ in range(3):
        assert send(feature, "10.1.2.3", {"x-api-key": "k"}, finish=False) is None
    assert send(feature, "192.0.2.1", {"x-api-key": "k"}, finish=False) is None
    assert send(feature, "192.0.2.1", {"x-api-key": "k"}).status == 503


class Buckets:
    def __init__(self):
        self.asked = []

    def check_buckets(self, keys, buckets):
        self.asked.append(keys)
        return defer.succeed((True, 0))


def test_cluster_wide_limits_count_by_it_too():
    redis = Buckets()
    feature = limited({"limit-rps": "2", "limit-scope": "global"}, "$http_x_api_key", redis=redis)
    assert send(feature, "192.0.2.9", {"x-api-key": "k1"}) is None
    assert redis.asked == [(b"limit:ns/shop:rps:k1",)]
    assert send(feature, "192.0.2.9") is None and len(redis.asked) == 1  # no key: not counted
    default = limited({"limit-rps": "2", "limit-scope": "global"}, redis=redis)
    send(default, "192.0.2.9", {"x-api-key": "k1"})
    assert redis.asked[-1] == (b"limit:ns/shop:rps:192.0.2.9",)


def test_a_variable_ingressd_cannot_evaluate_is_refused():
    with pytest.raises(AnnotationError, match=r"limit-conn-zone-variable: \$connection is not a variable"):
        rate_limit.zone_key("$connection")
    (option,) = [o for o in rate_limit.ingressd_options() if o.name == "limit-conn-zone-variable"]
    assert option.default == "$binary_remote_addr"
    assert option.coerce("$http_x_api_key") == "$http_x_api_key"
    with pytest.raises(ValueError, match=r"\$server_addr"):
        option.coerce("$server_addr")
    assert rate_limit.zone_key("$binary_remote_addr") is None and rate_limit.zone_key("") is None
    assert rate_limit.zone_key("${binary_remote_addr}:$host").text == "$remote_addr:$host"


def test_the_configmap_key_is_a_live_setting_and_a_bad_one_refuses_the_configmap():
    options = {option.name: option.coerce for option in rate_limit.ingressd_options()}
    reading = read_configmap("a/b", {"limit-conn-zone-variable": "$http_x_api_key"},
                             rate_limit.ingressd_annotations(), options)
    assert reading.usable and not reading.warnings
    assert dict(reading.settings) == {"limit-conn-zone-variable": "$http_x_api_key"}
    refused = read_configmap("a/b", {"limit-conn-zone-variable": "$ssl_client_s_dn"},
                             rate_limit.ingressd_annotations(), options)
    assert not refused.usable and "limit-conn-zone-variable" in refused.refusals[0]
    assert lookup("limit-conn-zone-variable").status == IMPLEMENTED
