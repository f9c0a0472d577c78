"""The webhook's TLS certificate, read from two files and read again when they change on disk.

A Kubernetes Secret volume (cert-manager's or one made with openssl) is updated in place by
the kubelet: the files are swapped, never the running process. Before each new connection the
files' identity (inode, size, modification time) is compared with what was loaded; a changed
pair is parsed and validated (``tls.certificates.parse_key_pair``: the key must match the
certificate) and takes over for new connections. A pair that cannot be served (a half-written
update, a key that does not match) is logged once and the previous certificate keeps serving.
"""

from __future__ import annotations

import os

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.python import log
from zope.interface import implementer

from ingressd.tls.certificates import CertificateError, parse_key_pair

_HTTP11 = b"http/1.1"  # the API server calls webhooks over HTTP/1.1 when offered only that


def load_context(certificate_path: str, key_path: str) -> SSL.Context:
    """An OpenSSL server context for the PEM pair in these files; CertificateError saying why not."""
    try:
        with open(certificate_path, "rb") as handle:
            crt = handle.read()
        with open(key_path, "rb") as handle:
            key = handle.read()
    except OSError as exc:
        raise CertificateError(f"cannot read {exc.filename}: {exc.strerror}") from None
    leaf, chain, private_key, _ = parse_key_pair(crt, key)
    options = CertificateOptions(privateKey=private_key, certificate=leaf, extraCertChain=chain,
                                 raiseMinimumTo=TLSVersion.TLSv1_2, acceptableProtocols=[_HTTP11])
    try:
        return options.getContext()
    except SSL.Error as exc:
        raise CertificateError(f"OpenSSL refused the certificate or key ({exc})") from None


@implementer(IOpenSSLServerConnectionCreator)
class ReloadingCertificate:
    """The connection creator of the webhook's TLS listener (``TLSMemoryBIOFactory``)."""

    def __init__(self, certificate_path: str, key_path: str):
        self.paths = (certificate_path, key_path)
        self.reloads = 0
        self._context = load_context(*self.paths)  # at start a bad pair is an error
        self._loaded = self._refused = self._identity()

    def _identity(self) -> tuple:
        identity = []
        for path in self.paths:
            try:
                stat = os.stat(path)
            except OSError:
                return ()
            identity.append((stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns))
        return tuple(identity)

    def current(self) -> SSL.Context:
        """The context for a new connection: the files' pair, loaded again if they changed."""
        identity = self._identity()
        if identity and identity != self._loaded and identity != self._refused:
            try:
                self._context = load_context(*self.paths)
            except CertificateError as exc:
                self._refused = identity  # said once per change of the files
                log.msg(f"ingressd: validating webhook: the certificate {self.paths[0]} or key {self.paths[1]} "
                        f"changed but cannot be served ({exc}); the previous one still is")
            else:
                self._loaded = identity
                self.reloads += 1
                log.msg(f"ingressd: validating webhook: certificate {self.paths[0]} loaded again")
        return self._context

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:  # noqa: N802 - Twisted's name
        return SSL.Connection(self.current(), None)
