"""Path normalisation: the routing path and the path the backend receives agree."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingressd.http import pathnorm
from ingressd.http.pathnorm import BadPath, lenient_views, normalize, split_target


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


# Where '.', '..' and empty segments stand, and what the routing path becomes: every later
# segment is kept; a last '.' or '..' leaves the path ending in '/', as nginx's $uri does.
@pytest.mark.parametrize(
    "raw, routing, upstream",
    [
        (b"/a/./b/c", "/a/b/c", b"/a/b/c"),
        (b"/a/./././b", "/a/b", b"/a/b"),
        (b"/a/b/../c/d", "/a/c/d", b"/a/c/d"),
        (b"/a/b/../../c/d", "/c/d", b"/c/d"),
        (b"/a//b//c", "/a/b/c", b"/a/b/c"),
        (b"/a//b//", "/a/b/", b"/a/b/"),
        (b"/a/b/..", "/a/", b"/a/"),
        (b"/a/b/%2e%2e", "/a/", b"/a/"),
        (b"/a/..", "/", b"/"),
        (b"/a/b/.", "/a/b/", b"/a/b/"),
        (b"/a/%2e", "/a/", b"/a/"),
        (b"/.", "/", b"/"),
        (b"/./", "/", b"/"),
        (b"//", "/", b"/"),
        (b"/a/../", "/", b"/"),
        (b"/%2e/a", "/a", b"/a"),
        # segments that only look like dot segments are names like any other
        (b"/.../a./.b/..a", "/.../a./.b/..a", b"/.../a./.b/..a"),
        (b"/a/.../..", "/a/", b"/a/"),
        (b"/a/.b", "/a/.b", b"/a/.b"),
        (b"/cards/./XXXX", "/cards/XXXX", b"/cards/XXXX"),
    ],
)
def test_dot_and_empty_segments(raw, routing, upstream):
    assert normalize(raw) == (routing, upstream)


# When normalisation changes the structure the backend gets the routing path re-encoded:
# what may stand literally in a segment (RFC 3986 pchar) stays as it is, the rest is
# percent-encoded, so '?', '#' and '%' cannot turn into a query, a fragment or an escape.
@pytest.mark.parametrize(
    "raw, routing, upstream",
    [
        (b"/x/../a;b=c,d:e@f!$&'()*+~_-.", "/a;b=c,d:e@f!$&'()*+~_-.", b"/a;b=c,d:e@f!$&'()*+~_-."),
        (b"/x/../a;jsessionid=1", "/a;jsessionid=1", b"/a;jsessionid=1"),
        (b"/x/../a%20b%3Fc%23d%25", "/a b?c#d%", b"/a%20b%3Fc%23d%25"),
        (b"/x/../a%2Fb", "/a/b", b"/a/b"),
        (b"/a/../caf%C3%A9", "/caf\u00e9", b"/caf%C3%A9"),
        (b"/x/..//a%3bb", "/a;b", b"/a;b"),
        # nothing to resolve: the client's own bytes, whatever their case or escapes
        (b"/%41%62", "/Ab", b"/%41%62"),
        (b"/a%3Bb", "/a;b", b"/a%3Bb"),
    ],
)
def test_upstream_path_when_the_structure_changed(raw, routing, upstream):
    assert normalize(raw) == (routing, upstream)


@pytest.mark.parametrize(
    "raw",
    [b"/../x", b"/%2e%2e/admin", b"/a/../../b", b"/admin%00", b"/a%zz", b"/a%2", b"admin", b"\\admin", b"/%ff"],
)
def test_bad_paths(raw):
    with pytest.raises(BadPath):
        normalize(raw)


# Each is answered 400: a BadPath, never another error (a plain ValueError would be a 500).
@pytest.mark.parametrize(
    "raw",
    [
        # a '..' above the root, also as the last segment
        b"/..", b"/a/../..", b"/a/b/../../..", b"/.%2e", b"/%2e%2e/", b"//../a",
        # '%' not followed by two hex digits, in either place
        b"/%4z", b"/%z4", b"/%g0", b"/%0g", b"/%", b"/a%", b"/%+1", b"/%-1", b"/% 1", b"/%1 ", b"/%_1",
        b"/a/./%4z",
        # NUL, non-UTF-8, raw non-ASCII bytes (with and without anything to decode or resolve)
        b"/a%00b", b"/%C3", b"/%C3%28", b"/caf\xc3\xa9", b"//caf\xc3\xa9", b"/./\xff", b"/\xff%41",
        # not an absolute path
        b"", b"a/b", b"%2Fa", b"*",
    ],
)
def test_bad_paths_are_bad_path(raw):
    with pytest.raises(BadPath):
        normalize(raw)


@pytest.mark.parametrize(
    "target, path, query",
    [
        (b"/a?b=1&c", b"/a", b"b=1&c"),
        (b"/a#frag", b"/a", b""),
        (b"/a?x=1#f", b"/a", b"x=1"),
        (b"/p?q=a?b", b"/p", b"q=a?b"),  # the first '?' starts the query; later ones are in it
        (b"/a#x#y", b"/a", b""),
        (b"/a#x?y", b"/a", b""),  # a '?' in the fragment is not a query
        (b"/a?x#y#z", b"/a", b"x"),
        (b"/a?", b"/a", b""),
        (b"?x", b"", b"x"),
        (b"#x", b"", b""),
        (b"/a", b"/a", b""),
        (b"", b"", b""),
    ],
)
def test_split_target(target, path, query):
    assert split_target(target) == (path, query)


# The readings a lenient backend makes of a routing path: ';parameters' dropped from each
# segment, '\' read as '/', then the result lower-cased, and the path itself lower-cased.
# The path's own reading is never listed; nothing to list when nothing reads differently.
@pytest.mark.parametrize(
    "path, views",
    [
        ("/", ()),
        ("/a/b", ()),
        ("/a/b/", ()),
        ("/a;x/b", ("/a/b",)),
        ("/a;b;c", ("/a",)),
        ("/a;x/b;y/", ("/a/b/",)),
        ("/;x", ("/",)),
        ("/a;x/../b", ("/b",)),
        ("/a;x/.", ("/a/",)),
        ("/a\\b", ("/a/b",)),
        ("/a\\..\\b", ("/b",)),
        ("/a\\.\\b\\", ("/a/b/",)),
        ("/a\\..\\..\\b", ("/",)),  # read above the root: as the root
        ("/A/b", ("/a/b",)),
        ("/ABC", ("/abc",)),
        ("/a;B", ("/a", "/a;b")),
        ("/Admin;x", ("/Admin", "/admin", "/admin;x")),
        ("/A;X", ("/A", "/a", "/a;x")),
        ("/A;x/..", ("/", "/a;x/..")),
        ("/A\\B", ("/A/B", "/a/b", "/a\\b")),
    ],
)
def test_lenient_views(path, views):
    assert lenient_views(path) == views


@pytest.mark.parametrize("path, views", [("/a/b", ()), ("/A;x/..", ("/", "/a;x/..")), ("/a\\b", ("/a/b",))])
def test_lenient_views_remembered_give_the_same(path, views):
    pathnorm._VIEWS.clear()
    assert lenient_views(path) == views and path in pathnorm._VIEWS
    assert lenient_views(path) == views  # (from the memo)
    pathnorm._VIEWS[path] = ("/elsewhere",)  # the memo is what answers a path seen recently
    assert lenient_views(path) == ("/elsewhere",)
    pathnorm._VIEWS.clear()


def test_lenient_views_memo_is_bounded():
    pathnorm._VIEWS.clear()
    long = "/" + "A" * pathnorm._VIEWS_LONGEST
    assert lenient_views(long) == ("/" + "a" * pathnorm._VIEWS_LONGEST,) and long not in pathnorm._VIEWS
    for n in range(pathnorm.VIEWS_REMEMBERED + 5):
        lenient_views(f"/p{n}")
    assert 0 < len(pathnorm._VIEWS) <= pathnorm.VIEWS_REMEMBERED
    pathnorm._VIEWS.clear()


@given(st.text(alphabet=st.sampled_from("/;\\.aAzZ\u0130\u2160\u00e9%1"), max_size=24).map(lambda t: "/" + t))
def test_lenient_views_memo_against_the_worked_out_answer(path):
    worked_out = pathnorm._lenient_views(path)
    assert lenient_views(path) == worked_out
    assert lenient_views(path) == worked_out
