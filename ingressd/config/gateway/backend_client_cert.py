"""A Gateway's ``spec.tls.backend.clientCertificateRef``: the client certificate ingressd presents
to the TLS backends of the routes attached to it, judged, and put on those routes.

The reference names a Secret with ``tls.crt`` and ``tls.key`` (``kubernetes.io/tls``, or another
type with those keys), another namespace's only with a ReferenceGrant. Only backends reached over
TLS (a BackendTLSPolicy's: the route value ``BACKEND_TLS``) are presented it; one that cannot be
used makes the Gateway's ResolvedRefs False (``InvalidClientCertificateRef``, or
``RefNotPermitted``), the Gateway stays Accepted and no certificate is presented.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from ingressd.config.gateway.backend_tls_policy import BACKEND_TLS
from ingressd.config.gateway.grants import Grants
from ingressd.config.model import ObjectRef
from ingressd.config.store import unpack
from ingressd.config.translate import secret_data
from ingressd.features import BackendTLS

GROUP = "gateway.networking.k8s.io"


@dataclasses.dataclass(frozen=True)
class ClientCertificate:
    """The certificate chain and key (PEM) a Gateway presents to its TLS backends."""

    certificate: bytes
    key: bytes
    source: ObjectRef  # the Secret


def judge(gateway: Mapping, ref: ObjectRef, grants: Grants, secrets: Mapping
          ) -> tuple[ClientCertificate | None, tuple[str, str] | None]:
    """(the certificate, None), (None, (reason, message)) when the reference cannot be used, or
    (None, None) when the Gateway names none."""
    raw = (((gateway.get("spec") or {}).get("tls") or {}).get("backend") or {}).get("clientCertificateRef")
    if not isinstance(raw, dict):
        return None, None
    group, kind = str(raw.get("group") or ""), str(raw.get("kind") or "Secret")
    name, namespace = str(raw.get("name") or ""), str(raw.get("namespace") or ref.namespace)
    if group or kind != "Secret":
        return None, ("InvalidClientCertificateRef", f"clientCertificateRef {group or 'core'}/{kind} {name} "
                                                     "is not a Secret")
    if not grants.permits(GROUP, "Gateway", ref.namespace, "", "Secret", namespace, name):
        return None, ("RefNotPermitted", f"Secret {namespace}/{name} is in another namespace and no ReferenceGrant "
                                         "permits it")
    packed = secrets.get((namespace, name))
    data = secret_data(unpack(packed)) if packed is not None else None
    if data is None:
        return None, ("InvalidClientCertificateRef", f"Secret {namespace}/{name} does not exist")
    certificate, key = data.get("tls.crt"), data.get("tls.key")
    try:
        if not certificate or not key:
            raise ValueError("it has no tls.crt and tls.key")
        chain = x509.load_pem_x509_certificates(certificate)
        private = load_pem_private_key(key, None)
        if _spki(chain[0].public_key()) != _spki(private.public_key()):
            raise ValueError("tls.key is not the key of tls.crt")
    except (ValueError, TypeError) as exc:
        why = str(exc) if "tls." in str(exc) else "tls.crt or tls.key cannot be read"
        return None, ("InvalidClientCertificateRef", f"Secret {namespace}/{name}: {why}")
    return ClientCertificate(certificate, key, data.ref), None


def _spki(public_key) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def present(routes: list, certificates: list[ClientCertificate]) -> tuple[list, list[str]]:
    """``routes`` (one route object's, attached to Gateways presenting ``certificates``) with the
    certificate on their backend TLS. Gateways presenting different ones: such a route is left
    out, with a problem (one route has one upstream setting)."""
    distinct = list(dict.fromkeys((c.certificate, c.key) for c in certificates))
    if not distinct:
        return routes, []
    kept, problems = [], []
    for route in routes:
        values = dict(route.features)
        tls = values.get(BACKEND_TLS)
        if not isinstance(tls, BackendTLS):
            kept.append(route)  # in clear, or refused: nothing to present
            continue
        if len(distinct) > 1:
            problems.append(f"{route.host or '*'}{route.path}: its Gateways present different backend client "
                            "certificates (not supported: the rule is not served)")
            continue
        certificate, key = distinct[0]
        features = tuple((name, dataclasses.replace(value, certificate=certificate, key=key)
                          if name == BACKEND_TLS else value) for name, value in route.features)
        kept.append(dataclasses.replace(route, features=features))
    return kept, problems
