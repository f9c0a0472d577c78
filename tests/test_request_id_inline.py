"""``ForwardingPolicy.decide`` takes a new request ID with ``new_request_id``'s steps inline:
pinned against the generator it replaces (the module's one ``_RequestIds``), shared in one
sequence with it, for an absent, empty, oversize and forged client ID, on both of decide's paths."""

from __future__ import annotations

import binascii
import os

import pytest

from ingressd.http.headers import Headers
from ingressd.proxy import forwarding
from ingressd.proxy.forwarding import ForwardingPolicy, _RequestIds

GOOD = b"0123456789abcdef0123456789abcdef"


@pytest.fixture
def reads(monkeypatch):
    """The OS's random bytes made known, and the module's generator started afresh."""
    got = []

    def urandom(size):
        got.append(bytes((len(got) * 11 + i * 3) % 256 for i in range(size)))
        return got[-1]

    monkeypatch.setattr(os, "urandom", urandom)
    monkeypatch.setattr(forwarding._request_ids, "_hex", b"")
    monkeypatch.setattr(forwarding._request_ids, "_at", 0)
    return got


def _decide(policy, rid, forwarded=False):
    pairs = [(b"host", b"a.test")] + ([(b"x-forwarded-for", b"1.2.3.4")] if forwarded else [])
    request_id, _, _, upstream = policy.decide(Headers(pairs), b"a.test", rid, False, forwarded, "10.1.1.1",
                                               "http", 80, False)
    return request_id, dict(upstream)


def test_the_inline_generator_is_the_modules_one():
    assert forwarding._request_ids is forwarding.new_request_id.__self__
    assert isinstance(forwarding._request_ids, _RequestIds)


@pytest.mark.parametrize("forwarded", [False, True])
@pytest.mark.parametrize("rid", [None, b"", b"x" * 129, b"bad id", b"a\x00b", b"\xff" * 4])
def test_decide_takes_the_next_ids_of_the_shared_sequence(reads, rid, forwarded):
    policy = ForwardingPolicy()
    got = []
    for n in range(300):  # past one 4 KiB read: the 257th ID starts the next
        if n % 3 == 0:
            got.append(forwarding.new_request_id())
        else:
            request_id, upstream = _decide(policy, rid, forwarded)
            assert upstream[b"x-request-id"] == request_id.encode("ascii")
            got.append(request_id.encode("ascii"))
    assert [len(read) for read in reads] == [4096, 4096]
    expected = binascii.b2a_hex(reads[0]) + binascii.b2a_hex(reads[1])
    assert got == [expected[at:at + 32] for at in range(0, 300 * 32, 32)]


def test_decide_takes_the_same_ids_as_a_generator_of_its_own(reads):
    policy = ForwardingPolicy()
    mine = [_decide(policy, None)[0].encode("ascii") for _ in range(513)]
    first = list(reads)
    reads.clear()
    ids = _RequestIds()
    assert [ids() for _ in range(513)] == mine
    assert reads == first and len(first) == 3


def test_a_valid_client_id_is_kept_and_takes_none(reads):
    policy = ForwardingPolicy()
    assert _decide(policy, GOOD)[0] == GOOD.decode()
    assert reads == [] and forwarding._request_ids._at == 0


@pytest.mark.parametrize("forwarded", [False, True])
def test_without_generation_no_id_is_taken(reads, forwarded):
    policy = ForwardingPolicy(generate_request_id=False)
    request_id, upstream = _decide(policy, None, forwarded)
    assert request_id == "" and b"x-request-id" not in upstream
    assert reads == [] and forwarding._request_ids._at == 0
