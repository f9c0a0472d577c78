"""TLS to backends (``backend-protocol: HTTPS``): OpenSSL contexts and connections as nginx's
``proxy_ssl_*`` directives make them.

One context per ``BackendTLS`` (cached by the upstream that uses it): protocols, ciphers, the
trusted CAs and verification depth, a client certificate. Each connection may send an SNI
name, resumes the last session of its endpoint and settings (nginx's ``proxy_ssl_session_reuse
on``), and, when verifying, is failed unless the certificate names ``verify_name`` (checked
with service_identity, as Twisted's own TLS clients do), or, when ``subject_alt_names`` are
given (a Gateway API BackendTLSPolicy), one of them: a DNS name as service_identity matches it,
a URI exactly.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from OpenSSL import SSL, crypto
from service_identity import VerificationError
from service_identity.pyopenssl import verify_hostname
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure
from zope.interface import implementer

from ingressd.features import BackendTLS

_VERSIONS = {"TLSv1.2": SSL.TLS1_2_VERSION, "TLSv1.3": SSL.TLS1_3_VERSION}


class BackendTLSError(ValueError):
    """Settings OpenSSL refuses (a bad certificate, key or cipher list)."""


def make_context(settings: BackendTLS) -> SSL.Context:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    versions = sorted(_VERSIONS[p] for p in settings.protocols if p in _VERSIONS) or [SSL.TLS1_2_VERSION]
    context.set_min_proto_version(versions[0])
    context.set_max_proto_version(versions[-1])
    try:
        context.set_cipher_list(settings.ciphers.encode("ascii"))
    except SSL.Error as exc:
        raise BackendTLSError(f"OpenSSL refuses the cipher list {settings.ciphers!r} ({exc})") from None
    context.set_session_cache_mode(SSL.SESS_CACHE_CLIENT)
    if settings.verify:
        store = context.get_cert_store()
        for certificate in x509.load_pem_x509_certificates(settings.ca or b""):
            store.add_cert(crypto.X509.from_cryptography(certificate))
        context.set_verify(SSL.VERIFY_PEER, _keep_openssl_verdict)
        context.set_verify_depth(settings.verify_depth)
    else:
        context.set_verify(SSL.VERIFY_NONE)
    if settings.certificate and settings.key:
        chain = x509.load_pem_x509_certificates(settings.certificate)
        try:
            context.use_certificate(chain[0])
            for extra in chain[1:]:
                context.add_extra_chain_cert(extra)
            context.use_privatekey(load_pem_private_key(settings.key, None))
            context.check_privatekey()
        except (SSL.Error, ValueError, TypeError) as exc:
            raise BackendTLSError(f"the client certificate or key cannot be used ({exc})") from None
    return context


def _keep_openssl_verdict(connection, certificate, error, depth, ok) -> bool:
    return bool(ok)


class NoSubjectAltName(ValueError):
    """The backend's certificate names none of the subject alternative names asked for."""


def _verify_subject_alt_names(connection: SSL.Connection, wanted: tuple[tuple[str, str], ...]) -> None:
    uris: list[str] | None = None
    for kind, value in wanted:
        if kind == "Hostname":
            try:
                verify_hostname(connection, value)
                return
            except VerificationError:
                continue
        elif kind == "URI":
            if uris is None:
                peer = connection.get_peer_certificate()
                try:
                    names = peer.to_cryptography().extensions.get_extension_for_class(
                        x509.SubjectAlternativeName).value if peer is not None else None
                except x509.ExtensionNotFound:
                    names = None
                uris = names.get_values_for_type(x509.UniformResourceIdentifier) if names is not None else []
            if value in uris:
                return
    raise NoSubjectAltName(f"the backend's certificate names none of {[value for _, value in wanted]}")


@implementer(IOpenSSLClientConnectionCreator)
class BackendConnectionCreator:
    """Makes the client side of one backend TLS connection (``TLSMemoryBIOFactory``'s creator)."""

    def __init__(self, settings: BackendTLS, context: SSL.Context, sessions: dict, key: Any):
        self.settings = settings
        self.context = context
        self.sessions = sessions  # the upstream's: key → the last session (resumed next time)
        self.key = key

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        connection.set_app_data(tlsProtocol)
        if self.settings.server_name:
            connection.set_tlsext_host_name(self.settings.server_name.encode("idna"))
        session = self.sessions.get(self.key)
        if session is not None:
            connection.set_session(session)
        connection.set_info_callback(self._info)
        return connection

    def _info(self, connection: SSL.Connection, where: int, ret: int) -> None:
        if not where & SSL.SSL_CB_HANDSHAKE_DONE:
            return
        if self.settings.verify:
            try:
                if self.settings.subject_alt_names:
                    _verify_subject_alt_names(connection, self.settings.subject_alt_names)
                else:
                    verify_hostname(connection, self.settings.verify_name)
            except (VerificationError, NoSubjectAltName) as exc:
                connection.get_app_data().failVerification(Failure(exc))
                return

    def remember(self, connection: Any) -> None:
        """Keep the session of a connection that served a response, for the next one: once a
        connection (its first whole response: the handshake and the TLS 1.3 tickets sent after
        it are in; a later response would give the same session, at an allocation a request)."""
        if getattr(connection, "session_kept", False):
            return
        handle = connection.getHandle() if hasattr(connection, "getHandle") else None
        if isinstance(handle, SSL.Connection):
            session = handle.get_session()
            if session is not None:
                self.sessions[self.key] = session
                connection.session_kept = True
