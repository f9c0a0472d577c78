"""Path normalisation: the routing path and the path the backend receives agree."""

import pytest

from ingressd.pathnorm import BadPath, normalize, split_target


@pytest.mark.parametrize(
    "raw, routing, upstream",
    [
        (b"/", "/", b"/"),
        (b"/a/b", "/a/b", b"/a/b"),
        (b"/a/b/", "/a/b/", b"/a/b/"),
        (b"/public/../admin", "/admin", b"/admin"),
        (b"/public/%2e%2e/admin", "/admin", b"/admin"),
        (b"/public/%2E%2E/admin", "/admin", b"/admin"),
        (b"//admin", "/admin", b"/admin"),
        (b"/./admin", "/admin", b"/admin"),
        (b"/a/./b/../", "/a/", b"/a/"),
        (b"/admin%2F", "/admin/", b"/admin%2F"),  # routed as /admin/, bytes kept
        (b"/admin;x", "/admin;x", b"/admin;x"),
        (b"/admin%23", "/admin#", b"/admin%23"),
        (b"/a%20b/../c%20d", "/c d", b"/c%20d"),
        (b"/caf%C3%A9", "/caf\u00e9", b"/caf%C3%A9"),
    ],
)
def test_normalize(raw, routing, upstream):
    assert normalize(raw) == (routing, upstream)


@pytest.mark.parametrize(
    "raw",
    [b"/../x", b"/%2e%2e/admin", b"/a/../../b", b"/admin%00", b"/a%zz", b"/a%2", b"admin", b"\\admin", b"/%ff"],
)
def test_bad_paths(raw):
    with pytest.raises(BadPath):
        normalize(raw)


def test_split_target_keeps_query_and_drops_fragment():
    assert split_target(b"/a?b=1&c") == (b"/a", b"b=1&c")
    assert split_target(b"/a#frag") == (b"/a", b"")
    assert split_target(b"/a?x=1#f") == (b"/a", b"x=1")
