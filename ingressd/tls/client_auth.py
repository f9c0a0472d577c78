"""Client certificates in the TLS handshake (auth-tls): what a host asks for, and what the client proved.

``ClientAuth`` is a host's policy (``auth-tls-secret``'s CA list and CRLs, ``auth-tls-verify-client``,
``auth-tls-verify-depth``), made by the auth_tls plugin and applied by ``CertificateStore`` to that
host's own OpenSSL context (chosen by SNI, in the handshake: no renegotiation, so HTTP/2 works
as HTTP/1.1 does). As nginx's ``ssl_verify_client``, the handshake asks for a certificate and
never fails because of it: the verification's outcome is recorded and the request decides
(400 pages, or the error page), so browsers show a page instead of a failed connection.

``ClientCertificate`` is what a connection proved, read through ``client_certificate(transport)``
(the client side's ``client_certificate()``; plugins see it as ``exchange.client_certificate``):
nginx's ``$ssl_client_verify`` (``SUCCESS``, ``FAILED:reason``, ``NONE``), ``$ssl_client_s_dn``,
``$ssl_client_i_dn`` and ``$ssl_client_escaped_cert``, and the policy the handshake was checked
under (None: the connection's context asked for no certificate).
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

try:  # the binding pyOpenSSL itself uses: OpenSSL's own wording of verification errors
    from OpenSSL._util import ffi as _ffi, lib as _lib
except ImportError:  # pragma: no cover - verify_error_text falls back to the code
    _ffi = _lib = None

VERIFY_MODES = ("on", "optional", "optional_no_ca", "off")

# OpenSSL's X509_V_ERR_* codes nginx's ``optional_no_ca`` lets through (ngx_ssl_verify_error_optional):
# the chain does not lead to a CA ingressd knows; nothing else (expired, revoked…) is forgiven.
ISSUER_ERRORS = frozenset((
    2,  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
    18,  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
    19,  # X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
    20,  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21,  # X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
))


class ClientAuthError(ValueError):
    """A CA list or CRL that cannot be used; the message says why."""


@dataclass(frozen=True)
class ClientAuth:
    """A host's client-certificate policy. Equal policies share OpenSSL contexts; a changed CA
    or CRL is a different policy (a new context: open connections keep the old one)."""

    ca: bytes  # PEM: the CAs a client certificate must chain to (the Secret's ca.crt)
    crl: bytes = b""  # PEM: revocation lists (ca.crl), empty for none
    verify: str = "on"  # on, optional, optional_no_ca (off never reaches the handshake)
    depth: int = 1  # ssl_verify_depth
    source: str = ""  # "Secret ns/name", for messages
    # The handshake itself fails without a certificate that verifies (a Gateway's frontend
    # validation, AllowValidOnly); auth-tls never refuses in the handshake (the request answers).
    refuse: bool = False
    _cas: tuple = field(default=(), repr=False, compare=False)
    _crls: tuple = field(default=(), repr=False, compare=False)
    # Per connection (weakly): the last verification error the handshake met (0: none).
    _errors: Any = field(default_factory=weakref.WeakKeyDictionary, repr=False, compare=False)


def load_client_auth(ca: bytes | None, crl: bytes | None, verify: str, depth: int, source: str,
                     refuse: bool = False) -> ClientAuth:
    """A validated ``ClientAuth``; ClientAuthError saying what is wrong otherwise."""
    if verify not in VERIFY_MODES:
        raise ClientAuthError(f"verify-client must be one of {', '.join(VERIFY_MODES)}, got {verify!r}")
    if depth < 1:
        raise ClientAuthError(f"the verify depth must be at least 1, got {depth}")
    if not ca:
        raise ClientAuthError("the Secret has no ca.crt")
    try:
        cas = tuple(x509.load_pem_x509_certificates(ca))
    except ValueError:
        raise ClientAuthError("ca.crt holds no readable PEM certificate") from None
    crls = []
    for block in _pem_blocks(crl or b"", b"X509 CRL"):
        try:
            crls.append(x509.load_pem_x509_crl(block))
        except ValueError:
            raise ClientAuthError("ca.crl holds a CRL that cannot be read") from None
    if crl and crl.strip() and not crls:
        raise ClientAuthError("ca.crl holds no readable PEM CRL")
    return ClientAuth(ca, crl or b"", verify, depth, source, refuse, cas, tuple(crls))


def _pem_blocks(data: bytes, label: bytes) -> list[bytes]:
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    blocks, at = [], 0
    while True:
        start = data.find(begin, at)
        if start < 0:
            return blocks
        stop = data.find(end, start)
        if stop < 0:
            raise ClientAuthError("ca.crl holds an unterminated PEM block")
        at = stop + len(end)
        blocks.append(data[start:at] + b"\n")


def configure_context(context: SSL.Context, auth: ClientAuth) -> None:
    """Make a (not yet used) server context ask for a client certificate as ``auth`` says.

    The certificate is requested (with the CA names) but the handshake never fails for it:
    the callback records OpenSSL's last verification error per connection and accepts, as
    nginx's ``ngx_http_ssl_verify_callback``; a ``refuse`` policy fails the handshake instead
    (no certificate, or one that does not verify). Sessions are not resumed on these contexts (a
    resumed session would carry no verification of ours)."""
    context.set_app_data(auth)
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    context.set_options(SSL.OP_NO_TICKET)
    store = context.get_cert_store()
    for certificate in auth._cas:
        store.add_cert(crypto.X509.from_cryptography(certificate))
    if auth._crls:
        for crl in auth._crls:
            store.add_crl(crl)
        store.set_flags(crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL)
    with warnings.catch_warnings():  # pyOpenSSL deprecates X509Name, and has nothing else for this
        warnings.simplefilter("ignore", DeprecationWarning)
        context.set_client_ca_list([crypto.X509.from_cryptography(c).get_subject() for c in auth._cas])
    context.set_verify_depth(auth.depth)
    errors = auth._errors

    def record(connection: SSL.Connection, certificate: Any, error: int, depth: int, ok: int) -> bool:
        if error:
            errors[connection] = error  # the last one, as SSL_get_verify_result reports
        return True if not auth.refuse else bool(ok)

    context.set_verify(SSL.VERIFY_PEER | (SSL.VERIFY_FAIL_IF_NO_PEER_CERT if auth.refuse else 0), record)


@dataclass(frozen=True)
class ClientCertificate:
    """What a connection's handshake proved about the client's certificate."""

    verify: str = "NONE"  # $ssl_client_verify: SUCCESS, FAILED:<OpenSSL's reason>, NONE
    subject: str = ""  # $ssl_client_s_dn (RFC 2253, as OpenSSL prints it); "" without one
    issuer: str = ""  # $ssl_client_i_dn
    pem: bytes = b""  # the certificate, PEM ("" without one)
    error: int = 0  # OpenSSL's X509_V_ERR code when verify is FAILED
    policy: ClientAuth | None = None  # the policy the handshake asked under; None: none asked
    server_name: str = ""  # the SNI name the client sent ("" for none)
    tls: bool = False  # the connection is TLS at all

    @property
    def issuer_unknown(self) -> bool:
        """The only failure is that the chain leads to no known CA (what ``optional_no_ca``
        forgives)."""
        return self.error in ISSUER_ERRORS

    @cached_property  # a connection's requests share one ClientCertificate
    def escaped_pem(self) -> str:
        """``$ssl_client_escaped_cert``: the PEM, every byte but letters, digits and -._~
        percent-encoded."""
        return quote(self.pem, safe="-._~")


NO_TLS = ClientCertificate()


def client_certificate(transport: Any) -> ClientCertificate:
    """What the client proved on ``transport`` (a TLS protocol with ``getHandle()``);
    ``NO_TLS`` for plain HTTP."""
    handle = transport.getHandle() if hasattr(transport, "getHandle") else None
    if not isinstance(handle, SSL.Connection):
        return NO_TLS
    try:
        name = handle.get_servername()
        server_name = name.decode("ascii", "replace").lower() if name else ""
        policy = handle.get_context().get_app_data()
        if not isinstance(policy, ClientAuth):
            return ClientCertificate(server_name=server_name, tls=True)
        leaf = handle.get_peer_certificate(as_cryptography=True)
    except SSL.Error:
        return ClientCertificate(tls=True)
    if leaf is None:
        return ClientCertificate(policy=policy, server_name=server_name, tls=True)
    error = policy._errors.get(handle, 0)
    return ClientCertificate(
        verify="SUCCESS" if not error else "FAILED:" + verify_error_text(error),
        subject=rfc2253(leaf.subject),
        issuer=rfc2253(leaf.issuer),
        pem=leaf.public_bytes(serialization.Encoding.PEM),
        error=error,
        policy=policy,
        server_name=server_name,
        tls=True,
    )


def verify_error_text(error: int) -> str:
    """OpenSSL's wording of an X509_V_ERR code (X509_verify_cert_error_string)."""
    try:
        return _ffi.string(_lib.X509_verify_cert_error_string(error)).decode("ascii", "replace")
    except Exception:  # a binding without it: the code, which still says FAILED
        return f"error {error}"


# OpenSSL's short names (XN_FLAG_FN_SN) for the attributes certificates carry.
_SHORT_NAMES = {
    NameOID.COMMON_NAME: "CN",
    NameOID.COUNTRY_NAME: "C",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.STREET_ADDRESS: "street",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.SURNAME: "SN",
    NameOID.GIVEN_NAME: "GN",
    NameOID.TITLE: "title",
    NameOID.GENERATION_QUALIFIER: "generationQualifier",
    NameOID.DN_QUALIFIER: "dnQualifier",
    NameOID.PSEUDONYM: "pseudonym",
    NameOID.USER_ID: "UID",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.POSTAL_CODE: "postalCode",
    NameOID.BUSINESS_CATEGORY: "businessCategory",
    NameOID.INITIALS: "initials",
}


def rfc2253(name: x509.Name) -> str:
    """A distinguished name as nginx's ``$ssl_client_s_dn`` prints it (OpenSSL's
    ``XN_FLAG_RFC2253``): last RDN first, ``,`` between RDNs and ``+`` inside one, short
    names, RFC 2253 escapes, and every control or non-ASCII byte as ``\\XX``: the result is
    printable ASCII, safe in a header."""
    parts = []
    for rdn in reversed(list(name.rdns)):
        parts.append("+".join(
            f"{_SHORT_NAMES.get(a.oid, a.oid.dotted_string)}={_escape(str(a.value))}" for a in rdn
        ))
    return ",".join(parts)


def _escape(value: str) -> str:
    data = value.encode("utf-8")
    out = []
    last = len(data) - 1
    for index, byte in enumerate(data):
        char = chr(byte)
        if byte < 0x20 or byte >= 0x7F:
            out.append(f"\\{byte:02X}")
        elif char in ',+"\\<>;' or (index == 0 and char in "# ") or (index == last and char == " "):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)
