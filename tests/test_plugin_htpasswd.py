"""htpasswd hash formats, checked against hashes made by openssl, libc crypt and bcrypt."""

import base64
import hashlib
import shutil
import subprocess

import bcrypt
import pytest

import fakes  # noqa: F401  (makes ingressd_plugins importable)
from ingressd_plugins import htpasswd

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
