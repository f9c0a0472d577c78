"""htpasswd hash formats, checked against hashes made by openssl, libc crypt and bcrypt."""

import base64
import hashlib
import shutil
import subprocess

import bcrypt
import pytest

import fakes  # noqa: F401  (makes ingressd_plugins importable)
from ingressd_plugins import htpasswd

LONG_65 = "correct horse battery staple, " * 2 + "XXXXX"
LONG_129 = "correct horse battery staple, " * 4 + "ninebytes"

# Known answers (made with `openssl passwd` unless noted), so the tests run even without openssl.
KNOWN = [
    ("pässword", "$5$saltsalt$rQBvFGQx3u6doxkk7cvWbhhnhS2qa1.FI.tt6NGFH66"),
    ("pässword", "$6$saltsalt$rVIyJtXnL0mXUCLepstXWqeOv9JVyd7nOH8wn0BvOU5lCiAviUJLxXZ5CkPgq6XNTHV22yG4mV0IO9gqPL5WQ."),
    ("pässword", "$apr1$saltsalt$553eXAj/BD3irf9w9nutz/"),
    ("pässword", "$1$saltsalt$QgbQ7EUpcKNQTLgSVL4qr/"),
    ("x", "$5$ab$5ydlOaPxAq0VpamGFK.BZgHF7HlR0erJsH.F7VB19f0"),
    ("secret", "$6$rounds=12000$abcdefgh$D/0ieRRFqreSKW3F.K.cUVj5VJdC/d2xBe1wcu6pgEk9noqtsG6sb7a328KivWgIsgGzpxmr4Uf4ipbXyUVLJ1"),
    ("secret", "$5$rounds=1000$abcdefgh$XIppta5rT8zJUu4vAOKQXrwq9uY4Ijlz6VjyOmkx5i4"),
    # Made with glibc's crypt(3) (what test_cross_check_with_libc_crypt_when_present asks it
    # for), so that check holds on machines whose libc lacks a scheme too: the default
    # rounds written out, a 16-character salt, a short one.
    ("s3cret!", "$6$rounds=5000$abcdefghijklmnop$GSRAN7PDOHoEwjiWo/cJBtjX0iupRo9mEM.hd9oLSkaEcW8tme1to6nG1oNQFhn3ePP70u3vblMlV2OJRWokt0"),
    ("s3cret!", "$5$xyz$UYRq5UkIh9B/AtZYueIVR3iKxfAk.sBl5qo2/H/Ki5."),
    ("s3cret!", "$1$abcdefgh$CSiVTZddYDOMinbJG4io/1"),
    # Passwords longer than one digest (16, 32 or 64 bytes) and not a multiple of it, where
    # the digest is repeated to the password's length (glibc crypt(3); apr1: openssl passwd).
    ("x" * 16, "$apr1$sixteen$QkSkkBzGYpJoLXmEpDNkh1"),
    ("x" * 32, "$1$thirty2$Nfqok5fi/M2eYp/LyI6IJ1"),
    (LONG_65, "$apr1$long65$NiDlMTxIIC8uWnJS5ZX4f1"),
    (LONG_65, "$1$long65$50rhayJ6NEUb9XD2b15zg."),
    (LONG_65, "$5$long65$7YIuv0/A4Li/o0rscefmZVbf82e7oZNEj000v3BvNo7"),
    (LONG_65, "$6$long65$cjli0h4B2TuR5dD4uiRlmSPhhpPj5tRMpLgA8B/8t4UJMdTAcRXgDpZPT8QjFvMmw.d2sH97e.XHGZxVkvofE1"),
    (LONG_129, "$5$long129$.uD5W1RZvrN6bjn2wlv0FFf6w9angsv8bFLGf566N26"),
    (LONG_129, "$6$long129$MLsUrLD.ADpcO8J.rTf0l5TEvHFOHQZzY7GHrp2c0jEd2T/dplXudVQXYAtroY6u9IIm9ohMR/nsCRKNKpst21"),
]


@pytest.mark.parametrize("password,hashed", KNOWN)
def test_known_hashes(password, hashed):
    assert htpasswd.verify(password.encode(), hashed)
    assert not htpasswd.verify(password.encode() + b"x", hashed)
    assert not htpasswd.verify(b"", hashed)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make hashes")
@pytest.mark.parametrize("flag", ["-5", "-6", "-apr1", "-1"])
@pytest.mark.parametrize("password", ["a", "correct horse battery staple", "ü" * 40])
@pytest.mark.parametrize("salt", ["ab", "saltsalt", "0123456789abcdefXYZ"])
def test_against_openssl(flag, password, salt):
    hashed = subprocess.run(
        ["openssl", "passwd", flag, "-salt", salt, password], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert htpasswd.verify(password.encode(), hashed)
    assert not htpasswd.verify(password.encode()[:-1], hashed)


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_bcrypt(prefix):
    made = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4, prefix=b"2b")).decode()
    hashed = prefix + made[4:]
    assert htpasswd.scheme(hashed) == "bcrypt"
    assert htpasswd.verify(b"pw", hashed)
    assert not htpasswd.verify(b"pW", hashed)


def test_bcrypt_long_password_uses_first_72_bytes_like_libc():
    hashed = bcrypt.hashpw(b"a" * 72, bcrypt.gensalt(rounds=4)).decode()
    assert htpasswd.verify(b"a" * 100, hashed)


def test_bcrypt_cost_cap_refuses_expensive_hash():
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode().replace("$04$", "$31$", 1)
    assert htpasswd.scheme(hashed) is None
    assert not htpasswd.verify(b"pw", hashed)


def test_sha_crypt_rounds_cap():
    assert htpasswd.scheme("$6$rounds=999999999$salt$" + "x" * 86) is None


def test_sha_and_ssha_and_plain():
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()).decode()
    ssha = "{SSHA}" + base64.b64encode(hashlib.sha1(b"pw" + b"NaCl").digest() + b"NaCl").decode()
    for hashed in (sha, ssha, "{PLAIN}pw"):
        assert htpasswd.verify(b"pw", hashed), hashed
        assert not htpasswd.verify(b"pw2", hashed), hashed


def test_unknown_formats_never_match():
    for hashed in ("abJnggxhB/yWI", "", "$9$x$y", "{SSHA}!!!", "{SSHA}" + base64.b64encode(b"short").decode()):
        assert not htpasswd.verify(b"pw", hashed)


def test_parse_htpasswd():
    text = b"# comment\n\nalice:$apr1$x$y\r\nbob:{PLAIN}b\nnocolon\n:nouser\nalice:{PLAIN}later\n"
    assert htpasswd.parse_htpasswd(text) == {b"alice": "{PLAIN}later", b"bob": "{PLAIN}b"}


def test_cross_check_with_libc_crypt_when_present():
    crypt = pytest.importorskip("crypt")
    for salt in ("$6$rounds=5000$abcdefghijklmnop", "$5$xyz", "$1$abcdefgh"):
        hashed = crypt.crypt("s3cret!", salt)
        if hashed is None or not hashed.startswith(salt[:3]):
            pytest.skip("libc crypt lacks this scheme")
        assert htpasswd.verify(b"s3cret!", hashed)


# -- which hashes are checked at all: scheme() names the format, or None to refuse it -------

_BCRYPT_TAIL = "eFkome4A6gv/2H/.9QDFSuGgXwoMorGtiHdhlbgS4reUnLsrch9Ba"  # 22 salt + 31 digest characters
_SHA256_DIGEST = "5ydlOaPxAq0VpamGFK.BZgHF7HlR0erJsH.F7VB19f0"
_SHA = "{SHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()).decode()
_SALTLESS_SSHA = "{SSHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()).decode()
_SSHA_ONE_BYTE_SALT = "{SSHA}" + base64.b64encode(hashlib.sha1(b"pw" + b"N").digest() + b"N").decode()
_SSHA = "{SSHA}" + base64.b64encode(hashlib.sha1(b"pw" + b"NaCl").digest() + b"NaCl").decode()


@pytest.mark.parametrize(
    "hashed,expected",
    [
        # bcrypt: every prefix, cost 4 (bcrypt's minimum) to MAX_BCRYPT_COST, exactly 60 characters
        ("$2a$04$" + _BCRYPT_TAIL, "bcrypt"),
        ("$2b$10$" + _BCRYPT_TAIL, "bcrypt"),
        ("$2y$12$" + _BCRYPT_TAIL, "bcrypt"),
        (f"$2b${htpasswd.MAX_BCRYPT_COST:02d}$" + _BCRYPT_TAIL, "bcrypt"),
        (f"$2b${htpasswd.MAX_BCRYPT_COST + 1:02d}$" + _BCRYPT_TAIL, None),  # would stall the server
        ("$2b$03$" + _BCRYPT_TAIL, None),
        ("$2b$xx$" + _BCRYPT_TAIL, None),
        ("$2b$04$" + _BCRYPT_TAIL[:-1], None),
        ("$2b$04$" + _BCRYPT_TAIL + "a", None),
        ("$2x$04$" + _BCRYPT_TAIL, None),  # the buggy pre-2011 variant
        ("$apr1$saltsalt$553eXAj/BD3irf9w9nutz/", "apr1"),
        ("$1$saltsalt$QgbQ7EUpcKNQTLgSVL4qr/", "md5-crypt"),
        ("$5$ab$" + _SHA256_DIGEST, "sha256-crypt"),
        ("$6$ab$" + "x" * 86, "sha512-crypt"),
        # SHA-crypt rounds up to MAX_SHA_CRYPT_ROUNDS, and only as "rounds=<decimal digits>"
        (f"$5$rounds={htpasswd.MAX_SHA_CRYPT_ROUNDS}$ab$" + _SHA256_DIGEST, "sha256-crypt"),
        (f"$6$rounds={htpasswd.MAX_SHA_CRYPT_ROUNDS}$ab$" + "x" * 86, "sha512-crypt"),
        (f"$5$rounds={htpasswd.MAX_SHA_CRYPT_ROUNDS + 1}$ab$" + _SHA256_DIGEST, None),
        (f"$6$rounds={htpasswd.MAX_SHA_CRYPT_ROUNDS + 1}$ab$" + "x" * 86, None),
        ("$5$rounds=$ab$" + _SHA256_DIGEST, None),
        ("$5$rounds=abc$ab$" + _SHA256_DIGEST, None),
        ("$5$rounds=x5000$ab$" + _SHA256_DIGEST, None),
        ("$5$rounds=5000x$ab$" + _SHA256_DIGEST, None),
        ("$5$rounds=-5000$ab$" + _SHA256_DIGEST, None),
        ("$5$roundz=5000$ab$" + _SHA256_DIGEST, None),
        ("$5$ab", None),
        ("$5$rounds=5000$ab$cd$" + _SHA256_DIGEST, None),
        (_SHA, "sha"),
        ("{SSHA}x", "ssha"),
        ("{PLAIN}pw", "plain"),
        ("{PLAIN}", "plain"),
        ("abJnggxhB/yWI", None),  # DES crypt
        ("", None),
        ("$9$x$y", None),
        ("{MD5}x", None),
    ],
)
def test_scheme_names_the_format_or_refuses_it(hashed, expected):
    assert htpasswd.scheme(hashed) == expected


# htpasswd -B -C 12 (bcrypt's usual cost; every other test hash is cost 4). One check is ~0.3 s.
BCRYPT_COST_12 = ("pässword", "$2y$12$ZdZa6gDG3Vx75yEXssmGyuKqtiHBbOLCpLXBnlRm4R08KpAIsEIiC")


def test_bcrypt_two_digit_cost():
    password, hashed = BCRYPT_COST_12
    assert htpasswd.verify(password.encode(), hashed)


# -- hashes that must never match: each with the password that a lenient reading would accept

@pytest.mark.parametrize(
    "password,hashed",
    [
        # bcrypt.checkpw raises on these (the salt or digest is not bcrypt's base-64): refused
        (b"pw", "$2b$04$" + "!" * 53),
        (b"", "$2b$04$" + "!" * 53),
        (b"pw", "$2b$04$" + _BCRYPT_TAIL[:22] + "!" * 31),
        (b"pw", "$2b$ 4$" + _BCRYPT_TAIL),
        (b"pw", "$2b$04$" + "é" * 53),
        # {SSHA}: strict base-64 (a stray character is not skipped), and a salt is required
        (b"pw", _SSHA[:10] + "*" + _SSHA[10:]),
        (b"pw", _SSHA + "\n"),
        (b"pw", _SALTLESS_SSHA),
        # MD5-crypt's salt ends at the first "$", as in glibc and Apache: these are what md5_crypt
        # makes of salt "ab$cd", which a reader taking the salt up to the last "$" would accept
        (b"pw", "$apr1$ab$cd$/pmY9b2Nf8V1s3yvgotQh1"),
        (b"pw", "$1$ab$cd$HjOd73vVhIPeTPzrONdey0"),
        # a rounds field that is not "rounds=<digits>"
        (b"secret", "$5$rounds=abc$abcdefgh$XIppta5rT8zJUu4vAOKQXrwq9uY4Ijlz6VjyOmkx5i4"),
        (b"secret", "$5$rounds=x1000$abcdefgh$XIppta5rT8zJUu4vAOKQXrwq9uY4Ijlz6VjyOmkx5i4"),
        # non-ASCII characters (as a Secret's bytes decode with "replace"): no match, no exception
        ("pässword".encode(), "$apr1$saltsalt$553eXAj/BD3irf9w9nutzé"),
        ("pässword".encode(), "$apr1$sältsalt$553eXAj/BD3irf9w9nutz/"),
        ("pässword".encode(), "$1$saltsalt$QgbQ7EUpcKNQTLgSVL4qr\ufffd"),
        ("pässword".encode(), "$5$saltsalt$rQBvFGQx3u6doxkk7cvWbhhnhS2qa1.FI.tt6NGFH6\ufffd"),
        ("pässword".encode(), "$5$sältsalt$rQBvFGQx3u6doxkk7cvWbhhnhS2qa1.FI.tt6NGFH66"),
        (b"secret", "$6$rounds=12000$abcdefgh$D/0ieRRFqreSKW3F.K.cUVj5VJdC/d2xBe1wcu6pgEk9noqtsG6sb7a328KivWgIsgGzpxmr4Uf4ipbXyUVLJé"),
        (b"pw", _SHA[:-1] + "\ufffd"),
        (b"pw", "{SSHA}\ufffd" + _SSHA[6:]),
        ("päss".encode(), "{PLAIN}" + "päss".encode().decode("ascii", "surrogateescape")),
    ],
)
def test_malformed_hashes_match_no_password(password, hashed):
    assert htpasswd.verify(password, hashed) is False


def test_ssha_salt_of_any_length():
    for hashed in (_SSHA_ONE_BYTE_SALT, _SSHA):
        assert htpasswd.verify(b"pw", hashed)
        assert not htpasswd.verify(b"pW", hashed)


# -- the public hash functions, as glibc and Apache compute them ----------------------------


@pytest.mark.parametrize(
    "function,args,expected",
    [
        # md5_crypt's default magic is Apache's
        ("md5_crypt", ("pässword".encode(), b"saltsalt"), "$apr1$saltsalt$553eXAj/BD3irf9w9nutz/"),
        # salts are cut to 8 (MD5-crypt) and 16 (SHA-crypt) characters, as glibc's crypt(3) does
        ("md5_crypt", (b"s3cret!", b"abcdefghXYZ", b"$1$"), "$1$abcdefgh$CSiVTZddYDOMinbJG4io/1"),
        ("sha_crypt", (b"s3cret!", b"abcdefghijklmnopqrst", 5000, True, True),
         "$6$rounds=5000$abcdefghijklmnop$GSRAN7PDOHoEwjiWo/cJBtjX0iupRo9mEM.hd9oLSkaEcW8tme1to6nG1oNQFhn3ePP70u3vblMlV2OJRWokt0"),
        ("sha_crypt", (b"s3cret!", b"abcdefghijklmnopqrst", 5000, False, True),
         "$5$rounds=5000$abcdefghijklmnop$LlXnvmYYo2QtzufglLBpiOILKGnnFUklhhTLv6EeLlC"),
    ],
)
def test_hash_functions_known_answers(function, args, expected):
    assert getattr(htpasswd, function)(*args) == expected.encode()


# -- reading the file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        (b"# alice:{PLAIN}pw\nbob:{PLAIN}b\n", {b"bob": "{PLAIN}b"}),  # a comment may hold a colon
        (b"   #alice:{PLAIN}pw\n", {}),
        (b"alice:{PLAIN}pa:ss:word\n", {b"alice": "{PLAIN}pa:ss:word"}),  # the user ends at the first colon
        (b"alice:\n", {b"alice": ""}),
        (b"a#b:{PLAIN}x\n", {b"a#b": "{PLAIN}x"}),
    ],
)
def test_parse_htpasswd_lines(text, expected):
    assert htpasswd.parse_htpasswd(text) == expected


def test_parse_htpasswd_non_ascii_hash_refuses_that_user_only():
    users = htpasswd.parse_htpasswd("alice:$apr1$saltsalt$553eXAj/BD3irf9w9nutzé\nbob:{PLAIN}b\n".encode())
    assert set(users) == {b"alice", b"bob"}
    assert not htpasswd.verify("pässword".encode(), users[b"alice"])
    assert htpasswd.verify(b"b", users[b"bob"])
