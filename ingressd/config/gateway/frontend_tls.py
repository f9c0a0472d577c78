"""A Gateway's ``spec.tls.frontend``: the client certificates its HTTPS listeners ask for, judged.

``default.validation`` applies to every HTTPS listener, ``perPort[].tls.validation`` replaces it
for the listeners of that port (HTTP and TLS Passthrough listeners terminate no TLS: unaffected).
A validation's ``caCertificateRefs`` name ConfigMaps (core group) whose ``ca.crt`` holds the
trusted CAs (another namespace's only with a ReferenceGrant); ``mode`` is ``AllowValidOnly`` (the
default: the handshake fails without a certificate that chains to them) or
``AllowInsecureFallback`` (the handshake asks, and every client is served; the Gateway gets
``InsecureFrontendValidationMode``).

A reference that cannot be used makes the listener's ResolvedRefs False (``InvalidCACertificateRef``:
missing, or no readable ``ca.crt``; ``InvalidCACertificateKind``: not a ConfigMap;
``RefNotPermitted``); the usable ones are still trusted. When none is usable the listener is not
Accepted (``NoValidCACertificate``) and not served: never served without the check it asks for.

The result is a ``filters.ClientCertificateValidation`` the routes of the listener carry (the
``gateway_filters`` plugin applies it; the route table gives its policy to the TLS handshakes of
the route's host, as for ``auth-tls-*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ingressd.config.filters import ClientCertificateValidation
from ingressd.config.gateway.grants import Grants
from ingressd.config.model import ObjectRef
from ingressd.config.store import unpack
from ingressd.tls.client_auth import ClientAuthError, load_client_auth

GROUP = "gateway.networking.k8s.io"
ALLOW_VALID_ONLY = "AllowValidOnly"
ALLOW_INSECURE_FALLBACK = "AllowInsecureFallback"
_MODES = (ALLOW_VALID_ONLY, ALLOW_INSECURE_FALLBACK)
# The chain depth accepted: implementation-specific in the spec; as BackendTLSPolicy's.
VERIFY_DEPTH = 10


@dataclass(frozen=True)
class Judged:
    """What a listener's validation came to: ``validation`` to apply (None: none asked, or none
    usable), ``resolved`` (reason, message) when a reference cannot be used, ``refused`` (reason,
    message) when the listener cannot be served because of it."""

    validation: ClientCertificateValidation | None = None
    resolved: tuple[str, str] | None = None
    refused: tuple[str, str] | None = None


NONE = Judged()


class Frontend:
    """A Gateway's ``spec.tls.frontend``, judged per listener port (``for_port``), each
    validation once."""

    def __init__(self, gateway: Mapping, ref: ObjectRef, grants: Grants, config_maps: Mapping):
        frontend = ((gateway.get("spec") or {}).get("tls") or {}).get("frontend") or {}
        self._ref, self._grants, self._config_maps = ref, grants, config_maps
        self._default = (frontend.get("default") or {}).get("validation") if isinstance(frontend, dict) else None
        self._per_port: dict[int, Mapping] = {}
        for item in (frontend.get("perPort") or []) if isinstance(frontend, dict) else []:
            if isinstance(item, dict) and isinstance(item.get("port"), int):
                self._per_port.setdefault(item["port"], (item.get("tls") or {}).get("validation"))
        self._judged: dict[int, Judged] = {}

    def for_port(self, port: int) -> Judged:
        """The validation of an HTTPS listener on ``port``."""
        if port not in self._judged:
            raw = self._per_port[port] if port in self._per_port else self._default
            self._judged[port] = self._judge(raw, port) if isinstance(raw, dict) else NONE
        return self._judged[port]

    @property
    def insecure(self) -> bool:
        """Whether a validation the listeners use is ``AllowInsecureFallback``."""
        return any(j.validation is not None and j.validation.insecure_fallback for j in self._judged.values())

    def _judge(self, raw: Mapping, port: int) -> Judged:
        mode = str(raw.get("mode") or ALLOW_VALID_ONLY)
        if mode not in _MODES:
            return Judged(refused=("UnsupportedValue", f"frontend validation mode {mode!r} is not "
                                                       f"{' or '.join(_MODES)}"))
        bundle, resolved, sources = b"", None, []
        for ref in raw.get("caCertificateRefs") or []:
            ca, problem = self._ca(ref if isinstance(ref, dict) else {})
            if problem is not None:
                resolved = resolved or problem
            else:
                bundle += ca
                sources.append(f"ConfigMap {(ref.get('namespace') or self._ref.namespace)}/{ref.get('name')}")
        if not bundle:
            why = resolved[1] if resolved else "no caCertificateRefs"
            return Judged(resolved=resolved or ("InvalidCACertificateRef", why),
                          refused=("NoValidCACertificate", f"no usable CA certificate: {why}"))
        auth = load_client_auth(bundle, None, "on", VERIFY_DEPTH, ", ".join(sources),
                                refuse=mode == ALLOW_VALID_ONLY)
        return Judged(ClientCertificateValidation(auth, mode == ALLOW_INSECURE_FALLBACK), resolved)

    def _ca(self, ref: Mapping) -> tuple[bytes, tuple[str, str] | None]:
        group, kind = str(ref.get("group") or ""), str(ref.get("kind") or "ConfigMap")
        name, namespace = str(ref.get("name") or ""), str(ref.get("namespace") or self._ref.namespace)
        if group or kind != "ConfigMap":
            return b"", ("InvalidCACertificateKind", f"caCertificateRef {group or 'core'}/{kind} {name} "
                                                     "is not a ConfigMap")
        if not self._grants.permits(GROUP, "Gateway", self._ref.namespace, "", "ConfigMap", namespace, name):
            return b"", ("RefNotPermitted", f"ConfigMap {namespace}/{name} is in another namespace and no "
                                            "ReferenceGrant permits it")
        packed = self._config_maps.get((namespace, name))
        ca = ((unpack(packed).get("data") or {}).get("ca.crt") if packed is not None else None) or ""
        try:
            load_client_auth(ca.encode() if isinstance(ca, str) else b"", None, "on", 1, "")
        except ClientAuthError as exc:
            why = "does not exist" if packed is None else f"cannot be used: {exc}"
            return b"", ("InvalidCACertificateRef", f"ConfigMap {namespace}/{name} {why}")
        return ca.encode() + b"\n", None
