"""A GatewayClass of ours: Accepted, ``supportedFeatures`` sorted by name as the spec asks, only
names of the conformance suite's features (release v1.6.1), and no SupportedVersion condition
(ingressd reads no CRD: it claims no bundle version)."""

from __future__ import annotations

import json

from ingressd.config.gateway.features import SUPPORTED_FEATURES
from ingressd.config.gateway.status import gateway_class_status
from ingressd.config.gateway_api import translate
from ingressd.config.model import ObjectRef
from ingressd.config.store import ObjectStore

# pkg/features of sigs.k8s.io/gateway-api v1.6.1: the Core and Extended features of the HTTP and
# GRPC profiles' kinds, and TLSRoute's (a misspelt name would never be read by the conformance suite).
KNOWN = {
    "Gateway", "GatewayPort8080", "GatewayStaticAddresses", "GatewayHTTPListenerIsolation",
    "GatewayHTTPSListenerDetectMisdirectedRequests", "GatewayInfrastructurePropagation", "GatewayAddressEmpty",
    "GatewayBackendClientCertificate", "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback", "ListenerSet", "ReferenceGrant",
    "HTTPRoute", "HTTPRouteDestinationPortMatching", "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteQueryParamMatching", "HTTPRouteMethodMatching", "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect", "HTTPRouteSchemeRedirect", "HTTPRoutePathRedirect", "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite", "HTTPRouteRequestMirror", "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror", "HTTPRouteRequestTimeout", "HTTPRouteBackendTimeout",
    "HTTPRouteParentRefPort", "HTTPRouteBackendProtocolH2C", "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteNamedRouteRule", "HTTPRouteCORS", "HTTPRoute303RedirectStatusCode", "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode", "HTTPRouteRetry", "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryConnectionError", "HTTPRouteBackendURLRewrite", "HTTPRouteBackendRequestRedirect",
    "GRPCRoute", "GRPCRouteNamedRouteRule",
    "TLSRoute", "TLSRouteModeTerminate", "TLSRouteModeMixed",
}


def test_the_features_are_sorted_unique_and_known():
    assert list(SUPPORTED_FEATURES) == sorted(set(SUPPORTED_FEATURES))
    assert set(SUPPORTED_FEATURES) <= KNOWN
    assert {"Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant"} <= set(SUPPORTED_FEATURES)
    # their cases send traffic to the listeners' declared ports, which ingressd does not bind
    assert not {"HTTPRouteParentRefPort", "GatewayPort8080"} & set(SUPPORTED_FEATURES)


def test_a_gateway_class_of_ours_is_accepted_with_its_features_and_claims_no_version():
    store = ObjectStore()
    store.replace("test", "GatewayClass", [{
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "ingressd", "generation": 3}, "spec": {"controllerName": "ingressd.io/gateway-controller"}}])
    config = translate(store.snapshot())
    (ref, document), = config.status
    assert ref == ObjectRef("GatewayClass", "", "ingressd") and document.generation == 3
    body = json.loads(document.body)
    assert body == gateway_class_status(3)
    assert [c["type"] for c in body["conditions"]] == ["Accepted"]
    assert body["conditions"][0]["observedGeneration"] == 3
    assert body["supportedFeatures"] == [{"name": name} for name in SUPPORTED_FEATURES]
