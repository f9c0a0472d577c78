"""The held request body: memory up to a bound, a temporary file beyond, refused over the limit."""

from ingressd.proxy import request_body
from ingressd.proxy.request_body import BufferedBody


def _drain(body: BufferedBody) -> list[bytes]:
    pieces = []
    for _ in range(1000):  # bounded
        piece = body.next_piece()
        if not piece:
            return pieces
        pieces.append(piece)
    raise AssertionError("never ended")


def test_a_small_body_stays_in_memory_and_comes_back_in_order():
    body = BufferedBody(limit=100)
    assert body.add(b"abc") and body.add(b"def")
    assert not body.spilled and body.size == 6
    assert _drain(body) == [b"abc", b"def"]
    assert body.next_piece() == b""


def test_beyond_the_memory_bound_the_rest_goes_to_a_file(monkeypatch, tmp_path):
    monkeypatch.setattr(request_body, "MEMORY_BOUND", 4)
    monkeypatch.setattr(request_body, "PIECE", 3)
    body = BufferedBody(directory=str(tmp_path))
    for piece in (b"ab", b"cd", b"efg", b"hij"):
        assert body.add(piece)
    assert body.spilled and body.size == 10
    assert b"".join(_drain(body)) == b"abcdefghij"
    assert body.spilled  # kept until discarded: a retry sends it again (proxy-next-upstream)
    body.rewind()
    assert b"".join(_drain(body)) == b"abcdefghij"
    body.discard()
    assert not body.spilled


def test_over_the_limit_nothing_is_kept():
    body = BufferedBody(limit=5)
    assert body.add(b"12345")
    assert not body.over_limit
    assert not body.add(b"6")
    assert body.over_limit and _drain(body) == []


def test_no_limit_is_unlimited(monkeypatch):
    monkeypatch.setattr(request_body, "MEMORY_BOUND", 16)
    body = BufferedBody(limit=0)
    for _ in range(100):
        assert body.add(b"x" * 100)
    assert not body.over_limit and len(b"".join(_drain(body))) == 10000


def test_discard_closes_the_file(monkeypatch):
    monkeypatch.setattr(request_body, "MEMORY_BOUND", 1)
    body = BufferedBody()
    body.add(b"abc")
    assert body.spilled
    body.discard()
    assert not body.spilled and body.next_piece() == b""


def test_rewind_sends_the_whole_body_again_from_memory():
    body = BufferedBody()
    body.add(b"abc")
    body.add(b"def")
    assert body.next_piece() == b"abc"
    body.rewind()
    assert _drain(body) == [b"abc", b"def"]
    body.rewind()
    assert _drain(body) == [b"abc", b"def"]
