"""The Gateway API features ingressd supports, by the names of the conformance suite
(``sigs.k8s.io/gateway-api/pkg/features``, release v1.6.1), as a GatewayClass of ours lists them
in ``status.supportedFeatures``.

The conformance suite reads that list (when it is not given ``--supported-features``) to choose
the Extended tests it runs, so a name is here only when the feature is served and its
conformance cases pass here (docs/gateway-api.md, "Conformance coverage"). Left out on purpose:
``HTTPRouteParentRefPort`` and ``GatewayPort8080`` (their cases send traffic to the listeners'
declared ports, which ingressd does not bind), ``GatewayHTTPListenerIsolation`` (ported, but a more specific listener without routes does not
isolate its names yet), ``GatewayHTTPSListenerDetectMisdirectedRequests`` (served and ported, but a
handshake for a name no route brings gets ingressd's default certificate),
``GatewayFrontendClientCertificateValidation`` (served and ported, but its cases connect to the
declared ports 443 and 8443), and ``BackendTLSPolicy``: served, but not every conformance case of
it is ported yet. ``TLSRoute``: every Core case passes
(tests/test_gateway_tlsroute_cases.py; its Terminate and Mixed modes are not claimed).
``ListenerSet``: all 13 ``listenerset-*`` cases pass (tests/test_gateway_listenerset.py,
tests/test_gateway_listenerset_cases.py). The provisional 303/307/308 redirect status codes and
named rules (HTTPRoute, GRPCRoute): their cases pass (tests/test_e2e_gateway_last_cases.py). The spec wants the list sorted by name.
"""

from __future__ import annotations

SUPPORTED_FEATURES: tuple[str, ...] = tuple(sorted((
    # Core of the HTTP and GRPC profiles
    "Gateway", "HTTPRoute", "ReferenceGrant", "GRPCRoute",
    # Core of the TLS profile (passthrough)
    "TLSRoute",
    # ListenerSet (standard channel from v1.5)
    "ListenerSet",
    # Extended, Gateway (its cases also need BackendTLSPolicy, not listed yet)
    "GatewayBackendClientCertificate",
    # Extended, HTTPRoute
    "HTTPRouteQueryParamMatching", "HTTPRouteMethodMatching", "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect", "HTTPRouteSchemeRedirect", "HTTPRoutePathRedirect", "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite", "HTTPRouteRequestMirror", "HTTPRouteRequestMultipleMirrors", "HTTPRouteCORS",
    "HTTPRouteRequestTimeout", "HTTPRouteBackendTimeout", "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendURLRewrite", "HTTPRouteBackendRequestRedirect",
    "HTTPRouteBackendProtocolH2C", "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteRetry", "HTTPRouteRetryConnectionError", "HTTPRouteRetryBackendTimeout",
    # Provisional, HTTPRoute and GRPCRoute
    "HTTPRoute303RedirectStatusCode", "HTTPRoute307RedirectStatusCode", "HTTPRoute308RedirectStatusCode",
    "HTTPRouteNamedRouteRule", "GRPCRouteNamedRouteRule",
)))
