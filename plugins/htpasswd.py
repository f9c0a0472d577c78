"""Check a password against an htpasswd hash, in the formats nginx's auth_basic accepts.

Formats: bcrypt (``$2a$``/``$2b$``/``$2y$``, through the ``bcrypt`` package), Apache MD5
(``$apr1$``) and MD5-crypt (``$1$``), SHA-256/512-crypt (``$5$``/``$6$``), ``{SHA}``,
``{SSHA}`` and ``{PLAIN}``. MD5-crypt and SHA-crypt are implemented here (the ``crypt``
module is deprecated and gone in Python 3.13). Every comparison is constant-time.
DES crypt is not supported: such a line never matches (and ``scheme`` says so when the
Secret is read, so the problem is logged when routes are built, not per request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import bcrypt

_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# A hash whose cost would stall the server is refused, not computed: its author (anyone who
# can write the Secret) must not be able to turn every login attempt into seconds of CPU.
MAX_BCRYPT_COST = 14
MAX_SHA_CRYPT_ROUNDS = 200_000
_SHA_CRYPT_DEFAULT_ROUNDS = 5000
_BCRYPT_MAX_PASSWORD = 72  # bcrypt only ever reads the first 72 bytes; bcrypt>=5 refuses more

# Schemes whose check costs milliseconds: worth running off the reactor thread.
SLOW_SCHEMES = frozenset({"bcrypt", "sha256-crypt", "sha512-crypt"})


def parse_htpasswd(text: bytes) -> dict[bytes, str]:
    """``user:hash`` lines → {user: hash}. Blank lines, ``#`` comments and lines without a
    colon are skipped; a later line for the same user wins, as in Apache's file."""
    users: dict[bytes, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(b"#") or b":" not in line:
            continue
        user, _, hashed = line.partition(b":")
        if user:
            users[user] = hashed.decode("latin-1")  # byte for byte: nginx compares bytes
    return users


def scheme(hashed: str) -> str | None:
    """The name of the hash format of ``hashed``, or None if this module cannot check it."""
    if hashed.startswith(("$2a$", "$2b$", "$2y$")):
        try:
            cost = int(hashed[4:6])
        except ValueError:
            return None
        return "bcrypt" if 4 <= cost <= MAX_BCRYPT_COST and len(hashed) == 60 else None
    if hashed.startswith("$apr1$"):
        return "apr1"
    if hashed.startswith("$1$"):
        return "md5-crypt"
    if hashed.startswith(("$5$", "$6$")):
        parsed = _parse_sha_crypt(hashed)
        if parsed is None or parsed[1] > MAX_SHA_CRYPT_ROUNDS:
            return None
        return "sha256-crypt" if hashed[1] == "5" else "sha512-crypt"
    if hashed.startswith("{SHA}"):
        return "sha"
    if hashed.startswith("{SSHA}"):
        return "ssha"
    if hashed.startswith("{PLAIN}"):
        return "plain"
    return None


def verify(password: bytes, hashed: str) -> bool:
    """True if ``password`` matches ``hashed``; False for a mismatch or an unusable hash."""
    kind = scheme(hashed)
    if kind is None:
        return False
    try:
        raw = hashed.encode("latin-1")  # the Secret's bytes (parse_htpasswd decodes them as latin-1)
    except UnicodeEncodeError:
        return False  # not text read from bytes: no password matches it
    if kind == "bcrypt":
        # $2y$ (PHP's name) is the same algorithm as $2b$.
        normalized = ("$2b$" + hashed[4:]) if hashed.startswith("$2y$") else hashed
        try:
            return bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], normalized.encode("ascii"))
        except ValueError:  # a malformed salt or digest
            return False
    if kind in ("apr1", "md5-crypt"):
        magic = b"$apr1$" if kind == "apr1" else b"$1$"
        salt = raw[len(magic) :].split(b"$", 1)[0]
        expected = md5_crypt(password, salt, magic)
        return hmac.compare_digest(expected, raw)
    if kind in ("sha256-crypt", "sha512-crypt"):
        salt, rounds, explicit = _parse_sha_crypt(hashed)  # type: ignore[misc]
        expected = sha_crypt(password, salt, rounds, hashed[1] == "6", explicit)
        return hmac.compare_digest(expected, raw)
    if kind == "sha":
        digest = hashlib.sha1(password).digest()
        return hmac.compare_digest(base64.b64encode(digest), raw[5:])
    if kind == "ssha":
        try:
            decoded = base64.b64decode(hashed[6:], validate=True)
        except ValueError:
            return False
        if len(decoded) <= 20:
            return False
        digest, salt = decoded[:20], decoded[20:]
        return hmac.compare_digest(hashlib.sha1(password + salt).digest(), digest)
    # {PLAIN}
    return hmac.compare_digest(password, raw[7:])


def _to64(value: int, count: int) -> bytes:
    out = bytearray()
    for _ in range(count):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return bytes(out)


def md5_crypt(password: bytes, salt: bytes, magic: bytes = b"$apr1$") -> bytes:
    """Poul-Henning Kamp's MD5-crypt (``$1$``), or Apache's variant with magic ``$apr1$``.

    Returns the full hash string, e.g. ``$apr1$salt$digest``.
    """
    salt = salt[:8]
    ctx = hashlib.md5(password + magic + salt)
    alternate = hashlib.md5(password + salt + password).digest()
    length = len(password)
    while length > 0:
        ctx.update(alternate[: min(16, length)])
        length -= 16
    length = len(password)
    while length:
        ctx.update(b"\0" if length & 1 else password[:1])
        length >>= 1
    final = ctx.digest()
    for i in range(1000):
        round_ctx = hashlib.md5(password if i & 1 else final)
        if i % 3:
            round_ctx.update(salt)
        if i % 7:
            round_ctx.update(password)
        round_ctx.update(final if i & 1 else password)
        final = round_ctx.digest()
    encoded = b"".join(
        _to64((final[a] << 16) | (final[b] << 8) | final[c], 4)
        for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
    )
    encoded += _to64(final[11], 2)
    return magic + salt + b"$" + encoded


def _parse_sha_crypt(hashed: str) -> tuple[bytes, int, bool] | None:
    """``$5$[rounds=N$]salt$digest`` → (salt, rounds, rounds given explicitly), or None."""
    parts = hashed.split("$")
    # ["", "5", ("rounds=N",) salt, digest]
    if len(parts) not in (4, 5):
        return None
    rounds, explicit = _SHA_CRYPT_DEFAULT_ROUNDS, False
    if len(parts) == 5:
        if not parts[2].startswith("rounds=") or not parts[2][7:].isdigit():
            return None
        rounds, explicit = max(1000, min(int(parts[2][7:]), 999_999_999)), True
    salt = parts[-2].encode("latin-1", "replace")[:16]  # scheme() takes any str; verify() only latin-1
    return salt, rounds, explicit


def sha_crypt(password: bytes, salt: bytes, rounds: int, sha512: bool, explicit_rounds: bool) -> bytes:
    """Ulrich Drepper's SHA-crypt (``$5$`` with SHA-256, ``$6$`` with SHA-512), full hash string."""
    new = hashlib.sha512 if sha512 else hashlib.sha256
    size = 64 if sha512 else 32
    salt = salt[:16]
    length = len(password)

    b_digest = new(password + salt + password).digest()
    a_ctx = new(password + salt)
    a_ctx.update((b_digest * (length // size + 1))[:length])
    n = length
    while n:
        a_ctx.update(b_digest if n & 1 else password)
        n >>= 1
    a_digest = a_ctx.digest()

    dp = new(password * length).digest()
    p_bytes = (dp * (length // size + 1))[:length]
    ds = new(salt * (16 + a_digest[0])).digest()
    s_bytes = (ds * (len(salt) // size + 1))[: len(salt)]

    # Each round hashes C with a fixed text before or after it; there are only 8 such texts
    # (by i odd, i % 3, i % 7), so build them once and do one hash call per round.
    c = a_digest
    for i in range(rounds):
        middle = (s_bytes if i % 3 else b"") + (p_bytes if i % 7 else b"")
        if i & 1:
            c = new(p_bytes + middle + c).digest()
        else:
            c = new(c + middle + p_bytes).digest()

    # The published permutation of digest bytes into base-64 groups of three: (0, 21, 42),
    # (22, 43, 1), (44, 2, 23)… for SHA-512; (0, 10, 20), (21, 1, 11), (12, 22, 2)… for SHA-256.
    groups, step = (21, 21) if sha512 else (10, 10)
    encoded = b""
    for k in range(groups):
        triple = (k, k + step, k + 2 * step)
        rotate = k % 3 if sha512 else -(k % 3)
        a, b, d = (triple[(j + rotate) % 3] for j in range(3))
        encoded += _to64((c[a] << 16) | (c[b] << 8) | c[d], 4)
    encoded += _to64(c[63], 2) if sha512 else _to64((c[31] << 8) | c[30], 3)

    prefix = b"$6$" if sha512 else b"$5$"
    if explicit_rounds:
        prefix += b"rounds=%d$" % rounds
    return prefix + salt + b"$" + encoded
