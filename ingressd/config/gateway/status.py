"""Status conditions as the Gateway API writes them, and the ``StatusDocument`` of one object.

A condition carries type, status, reason, message and observedGeneration, never
lastTransitionTime (the status writer keeps a condition's time while its status stays the
same); a document is the status stanza as canonical JSON (``model.StatusDocument``).

A GatewayClass of ours (``gateway_class_status``) is Accepted and lists ``supportedFeatures``
(``config.gateway.features``). It carries no ``SupportedVersion`` condition: that condition
(experimental channel in v1.6.1) reports the ``gateway.networking.k8s.io/bundle-version``
annotation of the Gateway API CRDs installed, and ingressd does not read
CustomResourceDefinitions (its RBAC grants no access to ``apiextensions.k8s.io``); rather than
claim a version it has not seen, it says nothing (docs/gateway-api.md).
"""

from __future__ import annotations

import json
from typing import Mapping

from ingressd.config.gateway.features import SUPPORTED_FEATURES
from ingressd.config.model import StatusDocument


def condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict:
    """One condition (``status`` "True" when ``ok``)."""
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message,
            "observedGeneration": generation}


def generation_of(obj: Mapping) -> int:
    """``metadata.generation`` (manifests read from files have none: 1)."""
    value = (obj.get("metadata") or {}).get("generation")
    return value if isinstance(value, int) and value > 0 else 1


def document(generation: int, body: dict) -> StatusDocument:
    return StatusDocument(generation, json.dumps(body, sort_keys=True))


def gateway_class_status(generation: int) -> dict:
    """The status of a GatewayClass of ours at ``generation``."""
    return {"conditions": [condition("Accepted", True, "Accepted", "handled by ingressd", generation)],
            "supportedFeatures": [{"name": name} for name in SUPPORTED_FEATURES]}
