"""The Gateway API source of routes: GatewayClass, Gateway, HTTPRoute, GRPCRoute and
ReferenceGrant (``gateway.networking.k8s.io``) into a fragment of the one model.

Registered in ``ingressd.config.sources`` after the Ingress translator, so the store, the file
provider and the Kubernetes provider already read its kinds (``config.kinds.GATEWAY_KINDS``);
the translation itself is not written yet: the fragment is empty, and nothing is served from
these objects.
"""

from __future__ import annotations

from typing import Sequence

from ingressd.config.kinds import GATEWAY_KINDS
from ingressd.config.model import Config
from ingressd.config.store import Snapshot

_EMPTY = Config()


class GatewayTranslator:
    """``interfaces.RouteSource`` for the Gateway API kinds (translation to come)."""

    name = "gateway-api"
    kinds = GATEWAY_KINDS

    def translate(self, objects: Snapshot, settings: object = None, annotations: Sequence = ()) -> Config:
        return _EMPTY
