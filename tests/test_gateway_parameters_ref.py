"""A Gateway's ``spec.infrastructure.parametersRef`` (conformance GatewayInvalidParametersRef):
ingressd reads no parameters kind, so a Gateway naming one is not Accepted (InvalidParameters)
and nothing of it is served: no route attaches, its certificates are not served, its
ListenerSets are ParentNotAccepted."""

from __future__ import annotations

import json

from ingressd.config.gateway_api import translate
from ingressd.config.model import ObjectRef
from ingressd.config.store import object_key, pack

NS = "gateway-conformance-infra"


def _gateway(name: str, infrastructure=None) -> dict:
    spec = {"gatewayClassName": "ingressd", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}
    if infrastructure is not None:
        spec["infrastructure"] = infrastructure
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": name, "namespace": NS},
            "spec": spec}


def _objects(*gateways) -> dict:
    items = [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "ingressd"},
              "spec": {"controllerName": "ingressd.io/gateway-controller"}},
             {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
              "spec": {"ports": [{"port": 8080}]}},
             *gateways]
    for gateway in gateways:
        name = gateway["metadata"]["name"]
        items.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                      "metadata": {"name": name, "namespace": NS},
                      "spec": {"parentRefs": [{"name": name}], "hostnames": [f"{name}.example"],
                               "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]}})
    found: dict = {}
    for obj in items:
        found.setdefault(obj["kind"], {})[object_key(obj)] = pack(obj)
    return found


def _status(config, kind: str, name: str) -> dict:
    return json.loads(dict(config.status)[ObjectRef(kind, NS, name)].body)


def _conditions(items) -> dict:
    return {c["type"]: (c["status"], c["reason"]) for c in items}


def test_a_parameters_ref_is_invalid_parameters_and_nothing_of_the_gateway_is_served():
    invalid = _gateway("gateway-invalid-parameters-ref",
                       {"parametersRef": {"group": "invalid.io", "kind": "InvalidParameters", "name": "invalid"}})
    config = translate(_objects(invalid, _gateway("plain"), _gateway("labels-only", {"labels": {"a": "b"}})))
    status = _status(config, "Gateway", "gateway-invalid-parameters-ref")
    conditions = _conditions(status["conditions"])
    assert conditions["Accepted"] == ("False", "InvalidParameters")
    assert conditions["Programmed"][0] == "False"
    assert "invalid.io/InvalidParameters invalid" in status["conditions"][0]["message"]
    assert _conditions(status["listeners"][0]["conditions"])["Programmed"] == ("False", "Invalid")
    assert {route.host for route in config.routes} == {"plain.example", "labels-only.example"}
    [parent] = _status(config, "HTTPRoute", "gateway-invalid-parameters-ref")["parents"]
    assert _conditions(parent["conditions"])["Accepted"][0] == "False"
    # without parametersRef (infrastructure without it too), Accepted as ever
    assert _conditions(_status(config, "Gateway", "plain")["conditions"])["Accepted"] == ("True", "Accepted")
    assert _conditions(_status(config, "Gateway", "labels-only")["conditions"])["Accepted"] == ("True", "Accepted")


def test_a_parameters_ref_that_is_not_an_object_is_invalid_too():
    config = translate(_objects(_gateway("odd", {"parametersRef": "invalid"})))
    conditions = _conditions(_status(config, "Gateway", "odd")["conditions"])
    assert conditions["Accepted"] == ("False", "InvalidParameters")
    assert not config.routes
