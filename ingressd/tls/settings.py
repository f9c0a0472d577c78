"""TLS termination settings: protocols, cipher list and cipher preference, server-wide and per host.

The server's (``--ssl-protocols``, ``--ssl-ciphers``, ``--ssl-prefer-server-ciphers``: the
ingress-nginx ConfigMap keys ``ssl-protocols``, ``ssl-ciphers`` and nginx's
``ssl_prefer_server_ciphers``, which ingress-nginx's template turns on with its cipher list) are a
``TLSSettings``; a host's (the ``ssl-ciphers`` and ``ssl-prefer-server-ciphers`` annotations,
nginx's per-server ``ssl_ciphers``/``ssl_prefer_server_ciphers``) a ``HostTLS`` laid over them.
``versions``, ``openssl_options`` and ``configure`` apply one to a context being made. Sessions
(``--ssl-session-cache``, ``--ssl-session-timeout``, ``--ssl-session-tickets``: the ConfigMap keys
of those names; defaults on, 10m and, unlike ingress-nginx's off, on) are server-wide: they resume on a host's
own context only (``certificates``). So is the key exchange (``--ssl-ecdh-curve``, ``ssl-ecdh-curve``:
``auto``, OpenSSL's groups, or one NIST curve that every handshake must use), and the DH parameters
of the DHE suites (``ssl-dh-param``: without them OpenSSL negotiates no DHE suite).

As nginx: the cipher list is OpenSSL's (``SSL_CTX_set_cipher_list``): it governs TLS 1.2; TLS 1.3
suites stay OpenSSL's defaults (ingress-nginx sets no ``ssl_conf_command Ciphersuites``). A list
that OpenSSL finds no cipher in, or that has characters ingress-nginx's validator refuses, is an
error (nginx would refuse to reload; ingress-nginx drops such an annotation silently).
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL
from twisted.internet.ssl import TLSVersion

# ingress-nginx's default ssl-ciphers (internal/ingress/controller/config/config.go: sslCiphers).
DEFAULT_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256"
)
DEFAULT_PROTOCOLS = ("TLSv1.2", "TLSv1.3")  # ingress-nginx's ssl-protocols

# nginx's ssl_protocols names, oldest first, with Twisted's versions.
_VERSIONS = {"TLSv1": TLSVersion.TLSv1_0, "TLSv1.1": TLSVersion.TLSv1_1, "TLSv1.2": TLSVersion.TLSv1_2,
             "TLSv1.3": TLSVersion.TLSv1_3}
_ORDER = tuple(_VERSIONS)
# ingress-nginx's sslcipher validator (annotations/sslcipher/main.go: regexValidSSLCipher).
_VALID_CIPHERS = re.compile(r"^(?:(?:[A-Za-z0-9!:+\-_])*(?:@STRENGTH)*(?:@SECLEVEL=[0-5])*(?:@STRENGTH)*)*$")


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """What TLS a context offers clients."""

    ciphers: str = DEFAULT_CIPHERS  # an OpenSSL cipher list (TLS 1.2 and below)
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS  # nginx's names, a contiguous range
    prefer_server_ciphers: bool = True  # the server's order of the list decides, not the client's
    session_cache: bool = True  # sessions resume from the server's cache (ssl-session-cache)
    session_timeout: int = 600  # seconds a session may be resumed (ssl-session-timeout: 10m)
    # TLS 1.2 session tickets (ssl-session-tickets). ingress-nginx's default is off; ingressd's is on:
    # OpenSSL drops a cached session whose connection ended without the server's close_notify
    # (a client that just closes), so without tickets most TLS 1.2 sessions would not resume.
    session_tickets: bool = True
    # Key-exchange groups (ssl-ecdh-curve, nginx's ssl_ecdh_curve): () is ``auto``, OpenSSL's defaults.
    ecdh_curve: tuple[str, ...] = ()
    # DH parameters, PEM, for the DHE cipher suites (ssl-dh-param: a Secret's dhparam.pem); None: no DHE.
    dh_param: bytes | None = None
    # OCSP stapling (enable-ocsp): contexts hand handshakes that ask the certificate's fetched response.
    ocsp: bool = False


@dataclass(frozen=True, slots=True)
class HostTLS:
    """A host's own TLS settings (per SNI name); None keeps the server's."""

    ciphers: str | None = None
    prefer_server_ciphers: bool | None = None

    def over(self, base: TLSSettings) -> TLSSettings:
        """``base`` with these settings where they say something."""
        return dataclasses.replace(
            base, ciphers=self.ciphers if self.ciphers is not None else base.ciphers,
            prefer_server_ciphers=self.prefer_server_ciphers if self.prefer_server_ciphers is not None
            else base.prefer_server_ciphers)

    def merged(self, older: "HostTLS") -> "HostTLS":
        """``older``'s settings, with these where ``older`` says nothing (ingress-nginx keeps the
        first Ingress's value of each for a host)."""
        return HostTLS(older.ciphers if older.ciphers is not None else self.ciphers,
                       older.prefer_server_ciphers if older.prefer_server_ciphers is not None
                       else self.prefer_server_ciphers)


def parse_ciphers(text: str) -> str:
    """An OpenSSL cipher list as nginx's ``ssl_ciphers`` takes it; ValueError saying why not."""
    value = text.strip()
    if not value:
        raise ValueError("the cipher list is empty")
    if not _VALID_CIPHERS.match(value):
        raise ValueError(f"{text!r} is not an OpenSSL cipher list (letters, digits and !:+-_, "
                         "@STRENGTH, @SECLEVEL=n)")
    try:
        SSL.Context(SSL.TLS_METHOD).set_cipher_list(value.encode("ascii"))
    except SSL.Error:
        raise ValueError(f"OpenSSL finds no cipher in {text!r}") from None
    return value


def parse_protocols(text: str) -> tuple[str, ...]:
    """nginx's ``ssl_protocols`` (names separated by spaces), as a contiguous range of versions;
    ValueError saying why not (SSLv2 and SSLv3 are not offered by ingressd's OpenSSL)."""
    names = text.split()
    if not names:
        raise ValueError("no protocol given (for example TLSv1.2 TLSv1.3)")
    unknown = [name for name in names if name not in _VERSIONS]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a protocol ingressd offers (TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)")
    positions = sorted({_ORDER.index(name) for name in names})
    if positions != list(range(positions[0], positions[-1] + 1)):
        raise ValueError(f"{text.strip()!r} leaves a gap: give a contiguous range, e.g. TLSv1.2 TLSv1.3")
    return tuple(_ORDER[position] for position in positions)


_TIME = re.compile(r"([0-9]+)(s|m|h|d|w|M|y)?")
_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}


def parse_time(text: str) -> int:
    """An nginx time in whole seconds (``10m``, ``1h 30m``, ``600``); ValueError saying why not."""
    parts = text.split()
    if not parts:
        raise ValueError("no time given (for example 10m)")
    total = 0
    for part in parts:
        found = _TIME.fullmatch(part)
        if found is None:
            raise ValueError(f"{text.strip()!r} is not a time such as 10m, 1h or 600 (seconds)")
        total += int(found.group(1)) * _UNITS[found.group(2)]
    if total < 1:
        raise ValueError("must be at least 1s")
    return total


# The groups nginx's ssl_ecdh_curve names (OpenSSL's group names, NIST aliases and the curves' own
# names, case-insensitive), as OpenSSL calls them.
_GROUPS = {"x25519": "X25519", "x448": "X448",
           "prime256v1": "prime256v1", "secp256r1": "prime256v1", "p-256": "prime256v1",
           "secp384r1": "secp384r1", "p-384": "secp384r1", "secp521r1": "secp521r1", "p-521": "secp521r1",
           **{f"ffdhe{bits}": f"ffdhe{bits}" for bits in (2048, 3072, 4096, 6144, 8192)}}
# The groups pyOpenSSL can restrict a context to (``Context.set_tmp_ecdh``: one curve, for TLS 1.2 and 1.3).
_SETTABLE = {"prime256v1": ec.SECP256R1, "secp384r1": ec.SECP384R1, "secp521r1": ec.SECP521R1}


def parse_ecdh_curve(text: str) -> tuple[str, ...]:
    """nginx's ``ssl_ecdh_curve`` (``auto``, or groups separated by colons) as OpenSSL's group names,
    () for ``auto``; ValueError saying why not (an unknown group)."""
    value = text.strip()
    if not value:
        raise ValueError("no curve given (auto, or groups such as X25519:prime256v1)")
    if value.lower() == "auto":
        return ()
    names = value.split(":")
    unknown = [name for name in names if name.lower() not in _GROUPS]
    if unknown:
        raise ValueError(f"{', '.join(repr(name) for name in unknown)}: not a key-exchange group "
                         f"({', '.join(sorted(set(_GROUPS.values())))}, or auto)")
    return tuple(dict.fromkeys(_GROUPS[name.lower()] for name in names))


def ecdh_curve_note(settings: TLSSettings) -> str | None:
    """Why ``settings.ecdh_curve`` is not applied exactly (None when it is): pyOpenSSL can restrict a
    context to one NIST curve only, so anything else offers OpenSSL's default groups."""
    groups = settings.ecdh_curve
    if not groups or (len(groups) == 1 and groups[0] in _SETTABLE):
        return None
    return (f"ssl-ecdh-curve {':'.join(groups)}: ingressd can restrict key exchange to one of "
            f"{', '.join(_SETTABLE)} only; OpenSSL's default groups (X25519, prime256v1, X448, secp521r1, "
            "secp384r1) are offered instead")


def parse_dh_param(pem: bytes) -> bytes:
    """DH parameters (PEM, as ``openssl dhparam`` writes them) that OpenSSL takes for nginx's
    ``ssl_dhparam``; ValueError saying why not (unreadable, or too small for OpenSSL's security level)."""
    try:
        _load_dh(SSL.Context(SSL.TLS_METHOD), pem)
    except SSL.Error as exc:
        reasons = "; ".join(str(error[2]) for error in exc.args[0] if isinstance(error, tuple) and len(error) > 2)
        raise ValueError(f"dhparam.pem: OpenSSL refuses the DH parameters ({reasons or exc})") from None
    return pem


def _load_dh(context: SSL.Context, pem: bytes) -> None:
    # pyOpenSSL reads DH parameters from a file only (Context.load_tmp_dh): a private one, gone at once.
    with tempfile.NamedTemporaryFile(prefix="ingressd-dhparam-", suffix=".pem") as file:
        file.write(pem)
        file.flush()
        context.load_tmp_dh(file.name)


def tls_settings(settings) -> TLSSettings:
    """The server's ``TLSSettings`` from its options (parsed: ``ingressd.tap``), defaults where absent."""
    default = TLSSettings()

    def flag(name: str, fallback: bool) -> bool:
        value = settings.get(name)
        return fallback if value is None else bool(value)

    return TLSSettings(settings.get("ssl_ciphers") or default.ciphers,
                       tuple(settings.get("ssl_protocols") or default.protocols),
                       flag("ssl_prefer_server_ciphers", default.prefer_server_ciphers),
                       flag("ssl_session_cache", default.session_cache),
                       settings.get("ssl_session_timeout") or default.session_timeout,
                       flag("ssl_session_tickets", default.session_tickets),
                       tuple(settings.get("ssl_ecdh_curve") or default.ecdh_curve),
                       settings.get("ssl_dh_param") or default.dh_param,
                       flag("enable_ocsp", default.ocsp))


def versions(settings: TLSSettings) -> tuple:
    """The oldest and newest Twisted ``TLSVersion`` of ``settings.protocols``, for
    ``CertificateOptions(insecurelyLowerMinimumTo=…, lowerMaximumSecurityTo=…)``."""
    return _VERSIONS[settings.protocols[0]], _VERSIONS[settings.protocols[-1]]


def configure(context: SSL.Context, settings: TLSSettings) -> None:
    """Apply ``settings``' cipher list, session lifetime, ECDH curve and DH parameters to a context not yet used, as OpenSSL reads it (Twisted's
    ``AcceptableCiphers`` would expand it to names and lose ``@SECLEVEL``)."""
    context.set_cipher_list(settings.ciphers.encode("ascii"))
    context.set_timeout(settings.session_timeout)
    if ecdh_curve_note(settings) is None and settings.ecdh_curve:
        context.set_tmp_ecdh(_SETTABLE[settings.ecdh_curve[0]]())
    if settings.dh_param is not None:
        _load_dh(context, settings.dh_param)


def openssl_options(options: int, settings: TLSSettings) -> int:
    """A context's OpenSSL options with the cipher preference ``settings`` ask for (Twisted's
    ``CertificateOptions`` turns the server's preference on for every context it makes)."""
    if settings.prefer_server_ciphers:
        return options | SSL.OP_CIPHER_SERVER_PREFERENCE
    return options & ~SSL.OP_CIPHER_SERVER_PREFERENCE
