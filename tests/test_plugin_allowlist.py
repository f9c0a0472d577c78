"""allowlist: allow/deny source ranges → 403, and bad CIDRs rejecting the Ingress."""

import pytest

from fakes import annotation_values, exchange, features_for, run_request
from ingressd.features import AnnotationError, Phase
from ingressd_plugins import allowlist


def status(feature, ip):
    answer = run_request([feature], exchange(client_ip=ip, peer_ip="203.0.113.1"))
    return 200 if answer is None else answer.status


def test_nothing_configured_means_no_feature():
    assert features_for(allowlist, {}) == []


@pytest.mark.parametrize("name", ["allowlist-source-range", "whitelist-source-range"])
def test_allowlist(name):
    [feature] = features_for(allowlist, {name: "10.0.0.0/24, 172.10.0.1, 2001:db8::/32"})
    assert feature.phase == Phase.ACCESS
    assert status(feature, "10.0.0.200") == 200
    assert status(feature, "172.10.0.1") == 200
    assert status(feature, "2001:db8:1::5") == 200
    assert status(feature, "::ffff:10.0.0.7") == 200
    assert status(feature, "10.0.1.1") == 403
    assert status(feature, "172.10.0.2") == 403
    assert status(feature, "2001:db9::1") == 403
    assert status(feature, "not-an-ip") == 403  # fail closed


def test_decision_uses_the_client_ip_not_the_peer():
    [feature] = features_for(allowlist, {"allowlist-source-range": "203.0.113.1"})
    assert status(feature, "198.51.100.1") == 403


def test_denylist_first():
    [feature] = features_for(allowlist, {"allowlist-source-range": "10.0.0.0/8", "denylist-source-range": "10.1.0.0/16"})
    assert status(feature, "10.2.0.1") == 200
    assert status(feature, "10.1.0.1") == 403
    [deny_only] = features_for(allowlist, {"denylist-source-range": "10.1.0.0/16"})
    assert status(deny_only, "192.0.2.1") == 200
    assert status(deny_only, "10.1.2.3") == 403


def test_new_name_wins():
    [feature] = features_for(allowlist, {"allowlist-source-range": "10.0.0.1", "whitelist-source-range": "10.0.0.2"})
    assert status(feature, "10.0.0.1") == 200
    assert status(feature, "10.0.0.2") == 403


def test_host_bits_are_ignored_as_in_nginx():
    [feature] = features_for(allowlist, {"allowlist-source-range": "10.0.0.1/24"})
    assert status(feature, "10.0.0.99") == 200


@pytest.mark.parametrize("value", ["10.0.0.0/33", "10.0.0.256", "example.com", "10.0.0.0/8;deny all", "*"])
def test_invalid_cidr_rejects_the_ingress(value):
    for name in ("allowlist-source-range", "whitelist-source-range", "denylist-source-range"):
        with pytest.raises(AnnotationError, match="not an IP address"):
            annotation_values(allowlist, {name: value})


# (allowlist, denylist, client address, status): the edges of each range, both address
# families, IPv4-mapped IPv6 clients (matched as the IPv4 address they carry, in both
# lists: a mapped address must not slip past a deny), and clients no list can place.
DECISIONS = [
    ("10.0.0.0/8", "", "10.0.0.0", 200),
    ("10.0.0.0/8", "", "10.255.255.255", 200),
    ("10.0.0.0/8", "", "9.255.255.255", 403),
    ("10.0.0.0/8", "", "11.0.0.0", 403),
    ("192.0.2.7", "", "192.0.2.7", 200),
    ("192.0.2.7", "", "192.0.2.6", 403),
    ("192.0.2.7", "", "192.0.2.8", 403),
    ("0.0.0.0/0", "", "203.0.113.9", 200),
    ("0.0.0.0/0", "", "2001:db8::1", 403),  # an IPv4 list says nothing for IPv6 clients
    ("::/0", "", "203.0.113.9", 403),
    ("::/0", "", "2001:db8::1", 200),
    ("2001:db8::/32", "", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 200),
    ("2001:db8::/32", "", "2001:db9::", 403),
    ("2001:db8::/32", "", "2001:db7:ffff::1", 403),
    ("10.0.0.0/8", "", "::ffff:10.1.2.3", 200),
    ("10.0.0.0/8", "", "::ffff:11.1.2.3", 403),
    ("::ffff:0:0/96", "", "10.1.2.3", 403),  # mapped clients are IPv4 clients
    ("", "10.1.0.0/16", "::ffff:10.1.2.3", 403),
    ("", "10.1.0.0/16", "::ffff:10.2.2.3", 200),
    ("", "2001:db8::/32", "2001:db8::1", 403),
    ("", "2001:db8::/32", "10.0.0.1", 200),
    ("", "10.0.0.0/8", "", 200),  # no address: nothing to deny
    ("10.0.0.0/8", "", "", 403),  # nor to allow
    ("10.0.0.0/8", "", "10.0.0.1:443", 403),
    ("10.0.0.0/8, 2001:db8::/32", "10.9.0.0/16, 2001:db8:9::/48", "10.8.1.1", 200),
    ("10.0.0.0/8, 2001:db8::/32", "10.9.0.0/16, 2001:db8:9::/48", "10.9.1.1", 403),
    ("10.0.0.0/8, 2001:db8::/32", "10.9.0.0/16, 2001:db8:9::/48", "2001:db8:8::1", 200),
    ("10.0.0.0/8, 2001:db8::/32", "10.9.0.0/16, 2001:db8:9::/48", "2001:db8:9::1", 403),
]


@pytest.mark.parametrize("allow, deny, client, expected", DECISIONS)
def test_decisions(allow, deny, client, expected):
    raw = {"allowlist-source-range": allow, "denylist-source-range": deny}
    [feature] = features_for(allowlist, {name: value for name, value in raw.items() if value})
    assert status(feature, client) == expected
