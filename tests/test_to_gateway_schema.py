"""The objects ``--to gateway-api`` emits have only the fields the Gateway API v1 schema knows,
with the values its enumerations allow: field names and enums from kubernetes-sigs/gateway-api
``apis/v1/{gateway,gatewayclass,httproute,grpcroute,tlsroute,shared,object_reference}_types.go`` (standard channel),
written out here so that the check runs offline."""

from __future__ import annotations

from typing import Any

import pytest

from ingressd.compat.to_gateway import GATEWAY_API_VERSION, convert

_META = "ObjectMeta"
# type -> {json field: the field's type (None: a scalar)}
SCHEMA: dict[str, dict[str, str | None]] = {
    "ObjectMeta": {"name": None, "namespace": None, "labels": "map", "annotations": "map"},
    "GatewayClass": {"apiVersion": None, "kind": None, "metadata": _META, "spec": "GatewayClassSpec"},
    "GatewayClassSpec": {"controllerName": None, "parametersRef": "ParametersReference", "description": None},
    "Gateway": {"apiVersion": None, "kind": None, "metadata": _META, "spec": "GatewaySpec"},
    "GatewaySpec": {"gatewayClassName": None, "listeners": "Listener", "addresses": "GatewaySpecAddress",
                    "infrastructure": "GatewayInfrastructure", "allowedListeners": "AllowedListeners",
                    "tls": "GatewayTLSConfig", "defaultScope": None},
    "Listener": {"name": None, "hostname": None, "port": None, "protocol": None, "tls": "ListenerTLSConfig",
                 "allowedRoutes": "AllowedRoutes"},
    "ListenerTLSConfig": {"mode": None, "certificateRefs": "SecretObjectReference", "options": "map"},
    "SecretObjectReference": {"group": None, "kind": None, "name": None, "namespace": None},
    "AllowedRoutes": {"namespaces": "RouteNamespaces", "kinds": "RouteGroupKind"},
    "RouteNamespaces": {"from": None, "selector": "map"},
    "RouteGroupKind": {"group": None, "kind": None},
    "HTTPRoute": {"apiVersion": None, "kind": None, "metadata": _META, "spec": "HTTPRouteSpec"},
    "HTTPRouteSpec": {"parentRefs": "ParentReference", "useDefaultGateways": None, "hostnames": None,
                      "rules": "HTTPRouteRule"},
    "ParentReference": {"group": None, "kind": None, "namespace": None, "name": None, "sectionName": None,
                        "port": None},
    "HTTPRouteRule": {"name": None, "matches": "HTTPRouteMatch", "filters": "HTTPRouteFilter",
                      "backendRefs": "HTTPBackendRef", "timeouts": "HTTPRouteTimeouts", "retry": "HTTPRouteRetry",
                      "sessionPersistence": "SessionPersistence"},
    "HTTPRouteMatch": {"path": "HTTPPathMatch", "headers": "HTTPHeaderMatch", "queryParams": "HTTPQueryParamMatch",
                       "method": None},
    "HTTPPathMatch": {"type": None, "value": None},
    "HTTPHeaderMatch": {"type": None, "name": None, "value": None},
    "HTTPQueryParamMatch": {"type": None, "name": None, "value": None},
    "HTTPRouteFilter": {"type": None, "requestHeaderModifier": "HTTPHeaderFilter",
                        "responseHeaderModifier": "HTTPHeaderFilter", "requestMirror": "HTTPRequestMirrorFilter",
                        "requestRedirect": "HTTPRequestRedirectFilter", "urlRewrite": "HTTPURLRewriteFilter",
                        "cors": "HTTPCORSFilter", "extensionRef": "LocalObjectReference"},
    "HTTPHeaderFilter": {"set": "HTTPHeader", "add": "HTTPHeader", "remove": None},
    "HTTPHeader": {"name": None, "value": None},
    "HTTPRequestMirrorFilter": {"backendRef": "BackendObjectReference", "percent": None, "fraction": "Fraction"},
    "Fraction": {"numerator": None, "denominator": None},
    "HTTPRequestRedirectFilter": {"scheme": None, "hostname": None, "path": "HTTPPathModifier", "port": None,
                                  "statusCode": None},
    "HTTPURLRewriteFilter": {"hostname": None, "path": "HTTPPathModifier"},
    "HTTPPathModifier": {"type": None, "replaceFullPath": None, "replacePrefixMatch": None},
    "HTTPCORSFilter": {"allowOrigins": None, "allowCredentials": None, "allowMethods": None, "allowHeaders": None,
                       "exposeHeaders": None, "maxAge": None},
    "LocalObjectReference": {"group": None, "kind": None, "name": None},
    "BackendObjectReference": {"group": None, "kind": None, "name": None, "namespace": None, "port": None},
    "HTTPBackendRef": {"group": None, "kind": None, "name": None, "namespace": None, "port": None, "weight": None,
                       "filters": "HTTPRouteFilter"},
    "HTTPRouteTimeouts": {"request": None, "backendRequest": None},
    "GRPCRoute": {"apiVersion": None, "kind": None, "metadata": _META, "spec": "GRPCRouteSpec"},
    "GRPCRouteSpec": {"parentRefs": "ParentReference", "useDefaultGateways": None, "hostnames": None,
                      "rules": "GRPCRouteRule"},
    "GRPCRouteRule": {"name": None, "matches": "GRPCRouteMatch", "filters": "GRPCRouteFilter",
                      "backendRefs": "GRPCBackendRef", "sessionPersistence": "SessionPersistence"},
    "GRPCRouteMatch": {"method": "GRPCMethodMatch", "headers": "HTTPHeaderMatch"},
    "GRPCMethodMatch": {"type": None, "service": None, "method": None},
    "GRPCRouteFilter": {"type": None, "requestHeaderModifier": "HTTPHeaderFilter",
                        "responseHeaderModifier": "HTTPHeaderFilter", "requestMirror": "HTTPRequestMirrorFilter",
                        "extensionRef": "LocalObjectReference"},
    "GRPCBackendRef": {"group": None, "kind": None, "name": None, "namespace": None, "port": None, "weight": None,
                       "filters": "GRPCRouteFilter"},
    # apis/v1/tlsroute_types.go (v1 from v1.5)
    "TLSRoute": {"apiVersion": None, "kind": None, "metadata": _META, "spec": "TLSRouteSpec"},
    "TLSRouteSpec": {"parentRefs": "ParentReference", "useDefaultGateways": None, "hostnames": None,
                     "rules": "TLSRouteRule"},
    "TLSRouteRule": {"name": None, "backendRefs": "BackendRef"},
    "BackendRef": {"group": None, "kind": None, "name": None, "namespace": None, "port": None, "weight": None},
}
# (type, field) -> the values the enumeration allows
ENUMS: dict[tuple[str, str], tuple[Any, ...]] = {
    ("Listener", "protocol"): ("HTTP", "HTTPS", "TLS", "TCP", "UDP"),
    ("ListenerTLSConfig", "mode"): ("Terminate", "Passthrough"),
    ("HTTPPathMatch", "type"): ("Exact", "PathPrefix", "RegularExpression"),
    ("HTTPHeaderMatch", "type"): ("Exact", "RegularExpression"),
    ("HTTPQueryParamMatch", "type"): ("Exact", "RegularExpression"),
    ("HTTPRouteFilter", "type"): ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror",
                                  "RequestRedirect", "URLRewrite", "ExtensionRef", "CORS"),
    ("HTTPPathModifier", "type"): ("ReplaceFullPath", "ReplacePrefixMatch"),
    ("GRPCMethodMatch", "type"): ("Exact", "RegularExpression"),
    ("GRPCRouteFilter", "type"): ("ResponseHeaderModifier", "RequestHeaderModifier", "RequestMirror", "ExtensionRef"),
    ("HTTPRequestRedirectFilter", "scheme"): ("http", "https"),
    ("HTTPRequestRedirectFilter", "statusCode"): (301, 302, 303, 307, 308),
}
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
# The member a filter of each type carries (the schema's CEL rules: exactly the one of its type).
_FILTER_MEMBER = {"RequestHeaderModifier": "requestHeaderModifier", "ResponseHeaderModifier": "responseHeaderModifier",
                  "RequestMirror": "requestMirror", "RequestRedirect": "requestRedirect", "URLRewrite": "urlRewrite",
                  "ExtensionRef": "extensionRef", "CORS": "cors"}


def unknown_fields(document: dict) -> list[str]:
    """Every field of ``document`` its kind's schema does not know, and every value an enum refuses."""
    problems: list[str] = []
    if document.get("apiVersion") != GATEWAY_API_VERSION or document.get("kind") not in SCHEMA:
        return [f"not a Gateway API v1 kind: {document.get('apiVersion')} {document.get('kind')}"]
    _walk(document, document["kind"], document["kind"], problems)
    return problems


def _walk(value: Any, type_name: str, where: str, problems: list[str]) -> None:
    if type_name == "map":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            problems.append(f"{where}: not a map of strings")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, type_name, f"{where}[{index}]", problems)
        return
    if not isinstance(value, dict):
        problems.append(f"{where}: a {type_name} must be an object")
        return
    fields = SCHEMA[type_name]
    for name, item in value.items():
        if name not in fields:
            problems.append(f"{where}.{name}: unknown field of {type_name}")
            continue
        allowed = ENUMS.get((type_name, name))
        if allowed is not None and item not in allowed:
            problems.append(f"{where}.{name}: {item!r} is not one of {allowed}")
        if fields[name] is not None:
            _walk(item, fields[name], f"{where}.{name}", problems)
    if type_name in ("HTTPRouteFilter", "GRPCRouteFilter"):
        member = _FILTER_MEMBER.get(value.get("type"))
        if member is None or set(value) != {"type", member}:
            problems.append(f"{where}: a {value.get('type')} filter must carry exactly {member}")
    if type_name == "HTTPPathModifier":
        member = {"ReplaceFullPath": "replaceFullPath", "ReplacePrefixMatch": "replacePrefixMatch"}.get(value.get("type"))
        if set(value) != {"type", member}:
            problems.append(f"{where}: a {value.get('type')} path modifier must carry exactly {member}")
    if type_name == "HTTPCORSFilter":
        for method in value.get("allowMethods") or ():
            if method not in _METHODS + ("*",):
                problems.append(f"{where}.allowMethods: {method!r} is not a method")
    if type_name in ("HTTPBackendRef", "GRPCBackendRef", "BackendRef") and "port" not in value:
        problems.append(f"{where}: a Service backendRef needs a port")


def test_the_checker_finds_an_unknown_field():
    route = {"apiVersion": GATEWAY_API_VERSION, "kind": "HTTPRoute", "metadata": {"name": "a"},
             "spec": {"rules": [{"matches": [{"path": {"type": "Prefix", "value": "/"}}],
                                 "backendRefs": [{"name": "s", "port": 80, "wieght": 1}]}]}}
    assert unknown_fields(route) == [
        "HTTPRoute.spec.rules[0].matches[0].path.type: 'Prefix' is not one of ('Exact', 'PathPrefix', "
        "'RegularExpression')",
        "HTTPRoute.spec.rules[0].backendRefs[0].wieght: unknown field of HTTPBackendRef",
    ]


def test_the_checker_finds_a_filter_without_its_member():
    route = {"apiVersion": GATEWAY_API_VERSION, "kind": "HTTPRoute", "metadata": {"name": "a"},
             "spec": {"rules": [{"filters": [{"type": "URLRewrite", "requestRedirect": {}}]}]}}
    assert unknown_fields(route) == [
        "HTTPRoute.spec.rules[0].filters[0]: a URLRewrite filter must carry exactly urlRewrite"]


@pytest.mark.parametrize("case", sorted(__import__("test_to_gateway").CASES))
def test_every_hand_made_case_has_known_fields_only(case):
    from test_to_gateway import CASES, objects_of

    conversion = convert(objects_of(CASES[case]))
    assert conversion.objects
    for document in conversion.objects:
        assert unknown_fields(document) == []


def test_a_tls_route_has_known_fields_only():
    from test_to_gateway import CASES, objects_of

    (tls_route,) = [o for o in convert(objects_of(CASES["ssl-passthrough"])).objects if o["kind"] == "TLSRoute"]
    assert unknown_fields(tls_route) == []
    tls_route["spec"]["rules"][0]["matches"] = []
    assert unknown_fields(tls_route) == ["TLSRoute.spec.rules[0].matches: unknown field of TLSRouteRule"]
