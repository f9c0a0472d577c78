"""The Gateway API features ingressd supports, by the names of the conformance suite
(``sigs.k8s.io/gateway-api/pkg/features``, release v1.6.1), as a GatewayClass of ours lists them
in ``status.supportedFeatures``.

The conformance suite reads that list (when it is not given ``--supported-features``) to choose
the Extended tests it runs, so a name is here only when the feature is served and its
conformance cases pass here (docs/gateway-api.md, "Conformance coverage"). Left out on purpose:
``HTTPRouteParentRefPort`` and ``GatewayPort8080`` (their cases send traffic to the listeners'
declared ports, which ingressd does not bind), 303/307/308 redirects (provisional, not ported),
``GatewayHTTPListenerIsolation`` (ported, but a more specific listener without routes does not
isolate its names yet), and ``TLSRoute``, ``ListenerSet``,
``BackendTLSPolicy``: served, but not every conformance case of theirs is ported yet;
``GatewayFrontendClientCertificateValidation``: served and ported, but its cases connect to the
declared ports 443 and 8443. The spec
wants the list sorted by name.
"""

from __future__ import annotations

SUPPORTED_FEATURES: tuple[str, ...] = tuple(sorted((
    # Core of the HTTP and GRPC profiles
    "Gateway", "HTTPRoute", "ReferenceGrant", "GRPCRoute",
    # Extended, Gateway (its cases also need BackendTLSPolicy, not listed yet)
    "GatewayBackendClientCertificate",
    # Extended, HTTPRoute
    "HTTPRouteQueryParamMatching", "HTTPRouteMethodMatching", "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect", "HTTPRouteSchemeRedirect", "HTTPRoutePathRedirect", "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite", "HTTPRouteRequestMirror", "HTTPRouteRequestMultipleMirrors", "HTTPRouteCORS",
    "HTTPRouteRequestTimeout", "HTTPRouteBackendTimeout", "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendURLRewrite", "HTTPRouteBackendRequestRedirect",
)))
