"""``ingressd.compat.to_gateway``: one hand-made Ingress per annotation mapped, and the notes for
what cannot be expressed (``ingressd check --to gateway-api``)."""

from __future__ import annotations

import io

import pytest
import yaml

from ingressd.compat.check import main
from ingressd.compat.to_gateway import INFO, LOST, WIDER, convert, to_yaml
from ingressd.testing import restore_plugin_configuration

P = "nginx.ingress.kubernetes.io/"


def ingress(name="web", annotations=None, host="example.com", path="/", path_type="Prefix", service="web",
            port=80, tls=None, namespace="shop", rules=None):
    spec = {"ingressClassName": "nginx"}
    spec["rules"] = rules if rules is not None else [{"host": host, "http": {"paths": [
        {"path": path, "pathType": path_type, "backend": {"service": {"name": service, "port": {"number": port}}}}]}}]
    if tls is not None:
        spec["tls"] = tls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace,
                         "annotations": {P + k: v for k, v in (annotations or {}).items()}},
            "spec": spec}


# name -> the Ingress's annotations (one case per mapping; the schema test converts each too)
CASES = {
    "plain": {},
    "ssl-redirect": {},  # with tls: the default
    "force-ssl-redirect": {"force-ssl-redirect": "true"},
    "permanent-redirect": {"permanent-redirect": "https://www.example.org/new"},
    "permanent-redirect-code": {"permanent-redirect": "https://www.example.org", "permanent-redirect-code": "308"},
    "temporal-redirect": {"temporal-redirect": "http://other.example.org:8080/x"},
    "rewrite-full": {"rewrite-target": "/index.html"},
    "upstream-vhost": {"upstream-vhost": "internal.example.com"},
    "x-forwarded-prefix": {"x-forwarded-prefix": "/shop"},
    "mirror-target": {"mirror-target": "http://mirror.audit.svc.cluster.local:8080$request_uri"},
    "enable-cors": {"enable-cors": "true", "cors-allow-origin": "https://a.example, https://b.example",
                    "cors-allow-methods": "GET, post", "cors-expose-headers": "X-Total", "cors-max-age": "600",
                    "cors-allow-credentials": "false"},
    "timeouts": {"proxy-read-timeout": "120", "proxy-send-timeout": "30"},
    "app-root": {"app-root": "/app1"},
    "custom-headers": {"custom-headers": "shop/response-headers"},
    "basic-auth": {"auth-type": "basic", "auth-secret": "users"},
    "affinity": {"affinity": "cookie"},
    "grpc": {"backend-protocol": "GRPC", "custom-headers": "shop/response-headers"},
    "ssl-passthrough": {"ssl-passthrough": "true"},
}


def objects_of(annotations, **kwargs):
    tls = [{"hosts": ["example.com"], "secretName": "example-tls"}] if annotations is CASES["ssl-redirect"] else None
    found = [ingress(annotations=annotations, tls=tls, **kwargs)]
    found.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "response-headers", "namespace": "shop"},
                  "data": {"X-Frame-Options": "DENY", "Cache-Control": "no-store"}})
    return found


def routes(conversion):
    return [o for o in conversion.objects if o["kind"] == "HTTPRoute"]


def rule_of(conversion, index=0):
    return routes(conversion)[0]["spec"]["rules"][index]


def notes(conversion):
    return [(n.severity, n.text.split(":")[0]) for n in conversion.notes]


def test_a_plain_ingress_is_a_gateway_class_a_gateway_and_a_route():
    conversion = convert(objects_of(CASES["plain"]))
    kinds = [(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in conversion.objects]
    assert kinds == [("GatewayClass", "ingressd", None), ("Gateway", "nginx", "shop"), ("HTTPRoute", "web", "shop")]
    gateway = conversion.objects[1]
    assert gateway["spec"] == {"gatewayClassName": "ingressd",
                               "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}
    assert conversion.objects[0]["spec"] == {"controllerName": "ingressd.io/gateway-controller"}
    route = routes(conversion)[0]
    assert route["spec"] == {
        "parentRefs": [{"name": "nginx", "sectionName": "http"}], "hostnames": ["example.com"],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                   "backendRefs": [{"name": "web", "port": 80}]}]}
    assert route["metadata"]["annotations"] == {"ingressd.io/converted-from": "shop/web"}
    assert conversion.notes == () and conversion.exit_status == 0


def test_exact_and_implementation_specific_paths():
    conversion = convert([ingress(path="/a", path_type="Exact"), ingress("b", path="/b", path_type="ImplementationSpecific",
                                                                         host="b.example.com")])
    assert [r["spec"]["rules"][0]["matches"] for r in routes(conversion)] == [
        [{"path": {"type": "PathPrefix", "value": "/b"}}], [{"path": {"type": "Exact", "value": "/a"}}]]
    assert notes(conversion) == [(INFO, "path /b (ImplementationSpecific) is a PathPrefix match, as ingress-nginx "
                                        "treats it")]
    assert conversion.exit_status == 0


def test_use_regex_gives_a_regular_expression_match():
    conversion = convert([ingress(annotations={"use-regex": "true"}, path="/api/v[0-9]+", path_type="ImplementationSpecific")])
    assert rule_of(conversion)["matches"] == [{"path": {"type": "RegularExpression", "value": "/api/v[0-9]+"}}]
    assert conversion.exit_status == 0


def test_tls_gives_an_https_listener_and_the_ssl_redirect_route():
    conversion = convert(objects_of(CASES["ssl-redirect"]))
    gateway = conversion.objects[1]
    assert gateway["spec"]["listeners"][1] == {
        "name": "https-example-com", "hostname": "example.com", "port": 443, "protocol": "HTTPS",
        "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "example-tls"}]}}
    served, redirect = routes(conversion)
    assert served["spec"]["parentRefs"] == [{"name": "nginx", "sectionName": "https-example-com"}]
    assert redirect["metadata"]["name"] == "web-ssl-redirect"
    assert redirect["spec"]["parentRefs"] == [{"name": "nginx", "sectionName": "http"}]
    assert redirect["spec"]["rules"] == [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "filters": [
        {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 308}}]}]


def test_the_ssl_redirect_covers_the_ingress_s_own_paths_only():
    conversion = convert([ingress(path="/shop", tls=[{"hosts": ["example.com"], "secretName": "t"}]),
                          ingress("plain", path="/open", annotations={"ssl-redirect": "false"},
                                  tls=[{"hosts": ["example.com"], "secretName": "t"}])])
    redirect = [r for r in routes(conversion) if r["metadata"]["name"].endswith("-ssl-redirect")]
    assert [(r["metadata"]["name"], r["spec"]["rules"][0]["matches"]) for r in redirect] == [
        ("web-ssl-redirect", [{"path": {"type": "PathPrefix", "value": "/shop"}}])]


def test_a_host_that_is_not_a_hostname_is_said():
    conversion = convert([ingress(host="${MY_IP}.sslip.io")])
    assert notes(conversion) == [(LOST, "host '${MY_IP}.sslip.io' is not a Gateway API hostname (lower-case DNS name, "
                                        "optionally starting with *.); fix it before applying the route")]


def test_ssl_redirect_false_serves_both_listeners():
    conversion = convert([ingress(annotations={"ssl-redirect": "false"},
                                  tls=[{"hosts": ["example.com"], "secretName": "example-tls"}])])
    (served,) = routes(conversion)
    assert served["spec"]["parentRefs"] == [{"name": "nginx", "sectionName": "http"},
                                            {"name": "nginx", "sectionName": "https-example-com"}]


def test_a_wildcard_tls_host_covers_its_subdomains():
    conversion = convert([ingress(host="shop.example.com", tls=[{"hosts": ["*.example.com"], "secretName": "wild"}])])
    served = routes(conversion)[0]
    assert served["spec"]["parentRefs"] == [{"name": "nginx", "sectionName": "https-wildcard-example-com"}]


def test_force_ssl_redirect_with_tls_redirects_and_without_says_why_not():
    with_tls = convert([ingress(annotations={"force-ssl-redirect": "true", "ssl-redirect": "false"},
                                tls=[{"hosts": ["example.com"], "secretName": "t"}])])
    assert [r["metadata"]["name"] for r in routes(with_tls)] == ["web", "web-ssl-redirect"]
    without = convert(objects_of(CASES["force-ssl-redirect"]))
    assert [r["metadata"]["name"] for r in routes(without)] == ["web"]
    assert notes(without) == [(LOST, "force-ssl-redirect without a tls entry")]
    assert without.exit_status == 1


@pytest.mark.parametrize("case, expected", [
    ("permanent-redirect", {"scheme": "https", "hostname": "www.example.org",
                            "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}, "statusCode": 301}),
    ("permanent-redirect-code", {"scheme": "https", "hostname": "www.example.org",
                                 "path": {"type": "ReplaceFullPath", "replaceFullPath": "/"}, "statusCode": 308}),
    ("temporal-redirect", {"scheme": "http", "hostname": "other.example.org", "port": 8080,
                           "path": {"type": "ReplaceFullPath", "replaceFullPath": "/x"}, "statusCode": 302}),
])
def test_redirect_annotations_are_request_redirects_without_backends(case, expected):
    conversion = convert(objects_of(CASES[case]))
    assert rule_of(conversion) == {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                   "filters": [{"type": "RequestRedirect", "requestRedirect": expected}]}
    assert conversion.exit_status == 0


def test_temporal_redirect_wins_and_a_bad_code_is_said():
    conversion = convert([ingress(annotations={"temporal-redirect": "https://t.example/", "temporal-redirect-code": "308",
                                               "permanent-redirect": "https://p.example/"})])
    assert rule_of(conversion)["filters"][0]["requestRedirect"]["hostname"] == "t.example"
    assert rule_of(conversion)["filters"][0]["requestRedirect"]["statusCode"] == 302
    assert notes(conversion) == [(LOST, "temporal-redirect-code '308'")]


def test_a_redirect_with_a_query_or_variable_is_said():
    conversion = convert([ingress(annotations={"permanent-redirect": "https://n.example/$request_uri"})])
    assert notes(conversion) == [(LOST, "permanent-redirect 'https")]


def test_rewrite_target_without_groups_replaces_the_full_path():
    conversion = convert(objects_of(CASES["rewrite-full"]))
    assert rule_of(conversion)["filters"] == [{"type": "URLRewrite", "urlRewrite": {
        "path": {"type": "ReplaceFullPath", "replaceFullPath": "/index.html"}}}]


@pytest.mark.parametrize("path, target, prefix, replacement", [
    ("/something(/|$)(.*)", "/$2", "/something", "/"),
    ("/static(/|$)(.*)", "/static/$2", "/static", "/static"),
    ("/api/(.*)", "/v2/$1", "/api", "/v2"),
])
def test_the_capture_group_idioms_are_prefix_replacements(path, target, prefix, replacement):
    conversion = convert([ingress(annotations={"rewrite-target": target, "use-regex": "true"}, path=path,
                                  path_type="ImplementationSpecific")])
    rule = rule_of(conversion)
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": prefix}}]
    assert rule["filters"] == [{"type": "URLRewrite", "urlRewrite": {
        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": replacement}}}]
    assert conversion.exit_status == 0


def test_another_capture_group_rewrite_is_not_converted_and_said():
    conversion = convert([ingress(annotations={"rewrite-target": "/$1/x"}, path="/a/(.+)/b",
                                  path_type="ImplementationSpecific")])
    rule = rule_of(conversion)
    assert rule["matches"] == [{"path": {"type": "RegularExpression", "value": "/a/(.+)/b"}}]
    assert "filters" not in rule
    assert (LOST, "rewrite-target '/$1/x' with path '/a/(.+)/b'") in notes(conversion)
    assert conversion.exit_status == 1


def test_upstream_vhost_is_a_url_rewrite_hostname():
    conversion = convert(objects_of(CASES["upstream-vhost"]))
    assert rule_of(conversion)["filters"] == [{"type": "URLRewrite", "urlRewrite": {"hostname": "internal.example.com"}}]
    variable = convert([ingress(annotations={"upstream-vhost": "$host.internal"})])
    assert "filters" not in rule_of(variable)
    assert notes(variable) == [(LOST, "upstream-vhost '$host.internal'")]


def test_x_forwarded_prefix_is_a_request_header():
    conversion = convert(objects_of(CASES["x-forwarded-prefix"]))
    assert rule_of(conversion)["filters"] == [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": "X-Forwarded-Prefix", "value": "/shop"}]}}]


def test_connection_proxy_header_is_a_request_header():
    conversion = convert([ingress(annotations={"connection-proxy-header": "keep-alive", "x-forwarded-prefix": "/p"})])
    assert rule_of(conversion)["filters"] == [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": "Connection", "value": "keep-alive"}, {"name": "X-Forwarded-Prefix", "value": "/p"}]}}]
    assert notes(conversion) == [(INFO, "connection-proxy-header")]


def test_an_annotation_at_ingress_nginx_s_default_loses_nothing():
    conversion = convert([ingress(annotations={"proxy-buffering": "off", "proxy-body-size": "1m"})])
    assert conversion.notes == () and conversion.exit_status == 0
    other = convert([ingress(annotations={"proxy-buffering": "on"})])
    assert notes(other) == [(LOST, "proxy-buffering")]


def test_custom_headers_are_response_headers_from_the_config_map():
    conversion = convert(objects_of(CASES["custom-headers"]))
    assert rule_of(conversion)["filters"] == [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {
        "set": [{"name": "Cache-Control", "value": "no-store"}, {"name": "X-Frame-Options", "value": "DENY"}]}}]
    missing = convert([ingress(annotations={"custom-headers": "elsewhere"})])
    assert notes(missing) == [(LOST, "custom-headers 'elsewhere'")]


def test_mirror_target_of_a_service_is_a_request_mirror():
    conversion = convert(objects_of(CASES["mirror-target"]))
    assert rule_of(conversion)["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "mirror", "namespace": "audit", "port": 8080}}}]
    assert notes(conversion) == [(INFO, "mirror-target")]  # the ReferenceGrant it needs
    outside = convert([ingress(annotations={"mirror-target": "https://mirror.example.com/$request_uri"})])
    assert "filters" not in rule_of(outside)
    assert notes(outside) == [(LOST, "mirror-target 'https")]


def test_enable_cors_is_a_cors_filter():
    conversion = convert(objects_of(CASES["enable-cors"]))
    assert rule_of(conversion)["filters"] == [{"type": "CORS", "cors": {
        "allowOrigins": ["https://a.example", "https://b.example"], "allowCredentials": False,
        "allowMethods": ["GET", "POST"], "allowHeaders": ["DNT", "Keep-Alive", "User-Agent", "X-Requested-With",
                                                          "If-Modified-Since", "Cache-Control", "Content-Type",
                                                          "Range", "Authorization"],
        "exposeHeaders": ["X-Total"], "maxAge": 600}}]


def test_cors_defaults_are_ingress_nginx_s():
    conversion = convert([ingress(annotations={"enable-cors": "true"})])
    cors = rule_of(conversion)["filters"][0]["cors"]
    assert cors["allowOrigins"] == ["*"] and cors["allowCredentials"] is True and cors["maxAge"] == 1728000
    assert cors["allowMethods"] == ["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]


def test_proxy_timeouts_are_the_backend_request_timeout():
    conversion = convert(objects_of(CASES["timeouts"]))
    assert rule_of(conversion)["timeouts"] == {"backendRequest": "120s"}
    assert notes(conversion) == [(INFO, "proxy-read-timeout / proxy-send-timeout bound the wait between two reads or "
                                        "writes; timeouts.backendRequest bounds the whole backend request (the larger "
                                        "value is used)")]


def test_app_root_redirects_the_root_only():
    conversion = convert(objects_of(CASES["app-root"]))
    assert rule_of(conversion, 0) == {"matches": [{"path": {"type": "Exact", "value": "/"}}], "filters": [
        {"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/app1"},
                                                         "statusCode": 302}}]}
    assert rule_of(conversion, 1)["backendRefs"] == [{"name": "web", "port": 80}]


def canary(annotations, name="web-canary", service="web-canary"):
    return ingress(name, annotations={"canary": "true", **annotations}, service=service)


def test_canary_by_weight_is_weighted_backend_refs():
    conversion = convert([ingress(), canary({"canary-weight": "20"})])
    assert [r["metadata"]["name"] for r in routes(conversion)] == ["web"]
    assert rule_of(conversion)["backendRefs"] == [{"name": "web", "port": 80, "weight": 80},
                                                  {"name": "web-canary", "port": 80, "weight": 20}]
    total = convert([ingress(), canary({"canary-weight": "1", "canary-weight-total": "1000"})])
    assert [b["weight"] for b in rule_of(total)["backendRefs"]] == [999, 1]


def test_canary_by_header_is_a_header_match_rule_first():
    conversion = convert([ingress(), canary({"canary-by-header": "X-Canary", "canary-by-header-value": "yes"})])
    first, main_rule = routes(conversion)[0]["spec"]["rules"]
    assert first == {"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                                  "headers": [{"type": "Exact", "name": "X-Canary", "value": "yes"}]}],
                     "backendRefs": [{"name": "web-canary", "port": 80}]}
    assert main_rule["backendRefs"] == [{"name": "web", "port": 80}]


def test_canary_by_header_alone_means_always_and_never():
    conversion = convert([ingress(), canary({"canary-by-header": "X-Canary"})])
    never, always, _ = routes(conversion)[0]["spec"]["rules"]
    assert never["matches"][0]["headers"] == [{"type": "Exact", "name": "X-Canary", "value": "never"}]
    assert never["backendRefs"] == [{"name": "web", "port": 80}]
    assert always["matches"][0]["headers"] == [{"type": "Exact", "name": "X-Canary", "value": "always"}]
    assert always["backendRefs"] == [{"name": "web-canary", "port": 80}]


def test_canary_by_header_and_weight_together():
    conversion = convert([ingress(), canary({"canary-by-header": "X-Canary", "canary-weight": "10"})])
    never, always, main_rule = routes(conversion)[0]["spec"]["rules"]
    assert never["backendRefs"] == [{"name": "web", "port": 80}]  # the weight is the main rule's only
    assert always["backendRefs"] == [{"name": "web-canary", "port": 80}]
    assert main_rule["backendRefs"] == [{"name": "web", "port": 80, "weight": 90},
                                        {"name": "web-canary", "port": 80, "weight": 10}]


def test_canary_by_header_pattern_is_a_regular_expression_match():
    conversion = convert([ingress(), canary({"canary-by-header": "X-Canary", "canary-by-header-pattern": "^(a|b)$"})])
    assert rule_of(conversion)["matches"][0]["headers"] == [{"type": "RegularExpression", "name": "X-Canary",
                                                             "value": "^(a|b)$"}]


def test_canary_by_cookie_and_a_lone_canary_are_said():
    conversion = convert([ingress(), canary({"canary-by-cookie": "beta"})])
    assert [(n.ingress, n.severity) for n in conversion.notes] == [("shop/web-canary", LOST)]
    lone = convert([canary({"canary-weight": "10"})])
    assert [(n.ingress, n.severity) for n in lone.notes] == [("shop/web-canary", LOST)]
    assert lone.exit_status == 1


def test_an_access_control_that_is_lost_says_the_route_is_wider_open():
    conversion = convert(objects_of(CASES["basic-auth"]))
    assert [n.severity for n in conversion.notes] == [WIDER, WIDER]
    assert "lets through every request" in conversion.notes[0].text
    assert str(conversion.notes[0]).startswith("shop/web: NOT CONVERTED, WIDER OPEN: auth-secret")
    assert conversion.exit_status == 1


@pytest.mark.parametrize("name", ["whitelist-source-range", "denylist-source-range", "limit-rps", "auth-url",
                                  "enable-modsecurity", "auth-tls-secret", "satisfy"])
def test_each_access_control_is_wider_open(name):
    conversion = convert([ingress(annotations={name: "x"})])
    assert [n.severity for n in conversion.notes] == [WIDER]


def test_other_annotations_are_not_converted_and_said():
    conversion = convert(objects_of(CASES["affinity"]))
    assert notes(conversion) == [(LOST, "affinity")]
    fcgi = convert([ingress(annotations={"backend-protocol": "FCGI"})])
    assert notes(fcgi) == [(LOST, "backend-protocol FCGI")]


def test_a_grpc_backend_protocol_gives_a_grpc_route():
    conversion = convert([ingress(annotations={"backend-protocol": "GRPC", "enable-cors": "true"},
                                  tls=[{"hosts": ["example.com"], "secretName": "t"}])])
    served, redirect = routes_and_grpc(conversion)
    assert (served["kind"], redirect["kind"]) == ("GRPCRoute", "HTTPRoute")
    assert served["spec"]["rules"] == [{"backendRefs": [{"name": "web", "port": 80}]}]  # every method
    assert notes(conversion) == [(LOST, "a CORS filter has no GRPCRoute equivalent")]


@pytest.mark.parametrize("path, path_type, match", [
    ("/helloworld.Greeter", "Prefix", {"method": {"type": "Exact", "service": "helloworld.Greeter"}}),
    ("/helloworld.Greeter/SayHello", "Exact",
     {"method": {"type": "Exact", "service": "helloworld.Greeter", "method": "SayHello"}}),
])
def test_grpc_paths_are_service_and_method_matches(path, path_type, match):
    conversion = convert([ingress(annotations={"backend-protocol": "GRPC"}, path=path, path_type=path_type)])
    assert routes_and_grpc(conversion)[0]["spec"]["rules"] == [{"matches": [match],
                                                               "backendRefs": [{"name": "web", "port": 80}]}]
    assert conversion.exit_status == 0


def test_a_grpc_route_says_what_it_leaves_out():
    conversion = convert([ingress(annotations={"backend-protocol": "GRPCS", "proxy-read-timeout": "60"},
                                  path="/not/a/method")])
    assert routes_and_grpc(conversion)[0]["spec"]["rules"] == []
    assert [n[0] for n in notes(conversion)] == [LOST, INFO, LOST]
    assert "BackendTLSPolicy" in conversion.notes[0].text
    assert "is not a gRPC service or method" in conversion.notes[2].text


def test_a_grpc_canary_by_header_keeps_its_header_match():
    main_ingress = ingress(annotations={"backend-protocol": "GRPC"})
    conversion = convert([main_ingress, canary({"canary-by-header": "x-canary", "canary-by-header-value": "1"})])
    first, _ = routes_and_grpc(conversion)[0]["spec"]["rules"]
    assert first == {"matches": [{"headers": [{"type": "Exact", "name": "x-canary", "value": "1"}]}],
                     "backendRefs": [{"name": "web-canary", "port": 80}]}


def routes_and_grpc(conversion):
    return [o for o in conversion.objects if o["kind"] in ("HTTPRoute", "GRPCRoute")]


def test_several_hosts_give_a_route_each_and_a_default_backend_one_without_hostnames():
    two = ingress(rules=[
        {"host": "a.example", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "a", "port": {"number": 80}}}}]}},
        {"host": "b.example", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "b", "port": {"name": "web"}}}}]}},
    ])
    two["spec"]["defaultBackend"] = {"service": {"name": "fallback", "port": {"number": 8080}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b", "namespace": "shop"},
               "spec": {"ports": [{"name": "web", "port": 8000}]}}
    conversion = convert([two, service])
    assert [(r["metadata"]["name"], r["spec"].get("hostnames")) for r in routes(conversion)] == [
        ("web-default-backend", None), ("web-a-example", ["a.example"]), ("web-b-example", ["b.example"])]
    assert routes(conversion)[2]["spec"]["rules"][0]["backendRefs"] == [{"name": "b", "port": 8000}]
    assert routes(conversion)[0]["spec"]["rules"][0]["backendRefs"] == [{"name": "fallback", "port": 8080}]


def test_a_named_port_of_a_service_not_in_the_input_is_said():
    conversion = convert([ingress(rules=[{"host": "a.example", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "a", "port": {"name": "http"}}}}]}}])])
    assert notes(conversion) == [(LOST, "Service shop/a port 'http'")]


def test_a_gateway_per_namespace_and_one_listener_per_tls_host():
    a = ingress("a", tls=[{"hosts": ["example.com"], "secretName": "one"}])
    b = ingress("b", path="/b", tls=[{"hosts": ["example.com"], "secretName": "two"}])
    c = ingress("c", namespace="other")
    conversion = convert([a, b, c])
    gateways = [o for o in conversion.objects if o["kind"] == "Gateway"]
    assert [g["metadata"]["namespace"] for g in gateways] == ["other", "shop"]
    assert [listener["name"] for listener in gateways[1]["spec"]["listeners"]] == ["http", "https-example-com"]
    assert [(n.ingress, n.severity) for n in conversion.notes] == [("shop/b", INFO)]


def test_a_gateway_per_ingress_class_named_after_it_and_class_less_ones_on_the_default_class():
    internal = ingress("internal", host="i.example")
    internal["spec"]["ingressClassName"] = "internal"
    legacy = ingress("legacy", host="l.example")
    legacy["metadata"]["annotations"]["kubernetes.io/ingress.class"] = "internal"  # wins over the field
    bare = ingress("bare", host="b.example")
    del bare["spec"]["ingressClassName"]
    default = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
               "metadata": {"name": "public", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
               "spec": {"controller": "k8s.io/ingress-nginx"}}
    conversion = convert([ingress(), internal, legacy, bare, default])
    gateways = [(o["metadata"]["name"], o["spec"]["gatewayClassName"]) for o in conversion.objects
                if o["kind"] == "Gateway"]
    assert gateways == [("internal", "ingressd"), ("nginx", "ingressd"), ("public", "ingressd")]
    assert {r["metadata"]["name"]: r["spec"]["parentRefs"][0]["name"] for r in routes(conversion)} == {
        "bare": "public", "internal": "internal", "legacy": "internal", "web": "nginx"}
    del default["metadata"]["annotations"]
    assert [o["metadata"]["name"] for o in convert([bare, default]).objects] == ["ingressd", "ingressd", "bare"]


def test_no_ingress_gives_no_objects():
    assert convert([]).objects == ()


def test_yaml_carries_each_ingress_s_notes_as_comments_before_its_route():
    text = to_yaml(convert(objects_of(CASES["basic-auth"])))
    assert "# shop/web: NOT CONVERTED, WIDER OPEN: auth-secret" in text
    assert text.index("# shop/web:") < text.index("kind: HTTPRoute")
    assert [d["kind"] for d in yaml.safe_load_all(text)] == ["GatewayClass", "Gateway", "HTTPRoute"]
    assert to_yaml(convert(objects_of(CASES["basic-auth"]))) == text  # stable


# -- the command --


@pytest.fixture(autouse=True)
def _plugins_as_they_were():
    yield
    restore_plugin_configuration()


def run(argv, stdin_text, capsys):
    out = io.StringIO()
    status = main(argv, stdin=io.StringIO(stdin_text), stdout=out)
    return status, out.getvalue(), capsys.readouterr().err


def test_the_command_reads_standard_input_and_selects_the_class(capsys):
    text = yaml.safe_dump_all([ingress(), ingress("mine", annotations={}, host="m.example") | {
        "spec": {"ingressClassName": "ingressd", "rules": [{"host": "m.example"}]}}])
    status, out, err = run(["--from", "ingress-nginx", "--to", "gateway-api", "-"], text, capsys)
    assert status == 0 and err == ""
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(out)] == ["ingressd", "nginx", "web"]


def test_the_command_prints_notes_on_standard_error_and_exits_1(capsys):
    text = yaml.safe_dump(ingress(annotations={"auth-url": "http://auth/"}))
    status, out, err = run(["--from", "ingress-nginx", "--to", "gateway-api", "-"], text, capsys)
    assert status == 1
    assert err == ("shop/web: NOT CONVERTED, WIDER OPEN: auth-url: an access control with no Gateway API equivalent; "
                   "the converted route lets through every request this annotation refuses; put the control in "
                   "front (an ExtensionRef filter to an ingressd plugin) before switching\n"
                   "ingressd check: WARNING: the routes converted from shop/web let through requests their Ingresses "
                   "refuse (an access control above has no Gateway API equivalent)\n")
    assert "kind: HTTPRoute" in out


def test_the_command_prints_json_with_output_json(capsys):
    import json

    text = yaml.safe_dump(ingress(annotations={"affinity": "cookie"}))
    status, out, err = run(["--from", "ingress-nginx", "--to", "gateway-api", "--output", "json", "-"], text, capsys)
    assert status == 1 and err == ""
    document = json.loads(out)
    assert [o["kind"] for o in document["objects"]] == ["GatewayClass", "Gateway", "HTTPRoute"]
    assert document["notes"] == [{"ingress": "shop/web", "severity": "not-expressed",
                                  "text": "affinity: no Gateway API equivalent; dropped from the converted route"}]
    assert document["version"] == 1 and document["problems"] == []


def test_the_command_exits_2_on_unreadable_input(capsys):
    status, out, err = run(["--to", "gateway-api", "-"], "a: [", capsys)
    assert status == 2 and out == "" and "not valid YAML" in err


# -- ssl-passthrough: a TLSRoute on a TLS Passthrough listener ------------------------------


def _kinds(conversion):
    return [(o["kind"], o["metadata"]["name"]) for o in conversion.objects]


def test_ssl_passthrough_is_a_tls_route_on_a_passthrough_listener_beside_the_http_route():
    conversion = convert(objects_of(CASES["ssl-passthrough"]))
    assert _kinds(conversion) == [("GatewayClass", "ingressd"), ("Gateway", "nginx"), ("TLSRoute", "web"),
                                  ("HTTPRoute", "web")]
    assert conversion.objects[1]["spec"]["listeners"] == [
        {"name": "http", "port": 80, "protocol": "HTTP"},
        {"name": "tls-example-com", "hostname": "example.com", "port": 443, "protocol": "TLS",
         "tls": {"mode": "Passthrough"}}]
    tls_route = conversion.objects[2]
    assert tls_route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert tls_route["metadata"]["annotations"] == {"ingressd.io/converted-from": "shop/web"}
    assert tls_route["spec"] == {"parentRefs": [{"name": "nginx", "sectionName": "tls-example-com"}],
                                 "hostnames": ["example.com"], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}
    # plain HTTP still goes through the Ingress's paths (no tls entry: no redirect)
    assert routes(conversion)[0]["spec"]["parentRefs"] == [{"name": "nginx", "sectionName": "http"}]
    assert notes(conversion) == [(INFO, "ssl-passthrough")]
    assert conversion.exit_status == 0


def test_ssl_passthrough_with_tls_or_force_redirects_plain_http_and_uses_no_https_listener():
    for annotations, tls in (({"ssl-passthrough": "true"}, [{"hosts": ["example.com"], "secretName": "t"}]),
                             ({"ssl-passthrough": "true", "force-ssl-redirect": "true"}, None)):
        conversion = convert([ingress(annotations=annotations, tls=tls)])
        assert _kinds(conversion) == [("GatewayClass", "ingressd"), ("Gateway", "nginx"), ("TLSRoute", "web"),
                                      ("HTTPRoute", "web-ssl-redirect")]
        assert [item["protocol"] for item in conversion.objects[1]["spec"]["listeners"]] == ["HTTP", "TLS"]
        redirect = routes(conversion)[0]
        assert redirect["spec"]["parentRefs"] == [{"name": "nginx", "sectionName": "http"}]
        assert redirect["spec"]["rules"][0]["filters"] == [
            {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 308}}]
        assert conversion.exit_status == 0
    assert notes(conversion) == [(INFO, "ssl-passthrough")]
    with_tls = convert([ingress(annotations={"ssl-passthrough": "true"},
                                tls=[{"hosts": ["example.com"], "secretName": "t"}])])
    assert notes(with_tls) == [(INFO, "ssl-passthrough"), (INFO, "the tls entries are not used")]


def test_ssl_passthrough_needs_a_host_and_its_root_path():
    rules = [{"host": "a.example.com", "http": {"paths": [
                 {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 8443}}}}]}},
             {"http": {"paths": [
                 {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "any", "port": {"number": 443}}}}]}},
             {"host": "b.example.com", "http": {"paths": [
                 {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "b", "port": {"number": 443}}}},
                 {"path": "/x", "pathType": "Prefix", "backend": {"service": {"name": "x", "port": {"number": 80}}}}]}}]
    conversion = convert([ingress(annotations={"ssl-passthrough": "true"}, rules=rules)])
    assert [o["spec"]["hostnames"] for o in conversion.objects if o["kind"] == "TLSRoute"] == [["b.example.com"]]
    (tls_route,) = [o for o in conversion.objects if o["kind"] == "TLSRoute"]
    assert tls_route["metadata"]["name"] == "web-b-example-com"
    assert tls_route["spec"]["rules"] == [{"backendRefs": [{"name": "b", "port": 443}]}]
    assert [r["spec"].get("hostnames") for r in routes(conversion)] == [["a.example.com"], None, ["b.example.com"]]
    assert notes(conversion) == [(INFO, "ssl-passthrough"), (LOST, "host a.example.com"), (LOST, "host '(none)'")]
    assert conversion.exit_status == 1


def test_ssl_passthrough_and_a_terminated_host_on_one_gateway_are_a_conflict_said():
    conversion = convert([ingress(annotations={"ssl-passthrough": "true"}),
                          ingress("z-tls", tls=[{"hosts": ["example.com"], "secretName": "t"}], path="/z")])
    assert (LOST, "TLS host example.com") in notes(conversion)
    assert conversion.exit_status == 1


def test_the_converted_tls_route_is_served_by_ingressd_as_a_passthrough_host():
    from ingressd.config.gateway_api import translate
    from ingressd.config.model import ObjectRef
    from test_gateway_translate import snapshot

    conversion = convert(objects_of(CASES["ssl-passthrough"]))
    service = ("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
               "spec: {ports: [{name: https, port: 80}]}\n")
    config = translate(snapshot(to_yaml(conversion), service))
    assert [(item.host, item.source) for item in config.passthrough] == [
        ("example.com", ObjectRef("TLSRoute", "shop", "web"))]
    assert [(route.host, route.schemes) for route in config.routes] == [("example.com", ("http",))]
    statuses = {ref.kind: ref for ref, _ in config.status}
    assert set(statuses) == {"GatewayClass", "Gateway", "TLSRoute", "HTTPRoute"}
