"""The Kubernetes API calls ingressd makes, through the official client's ``ApiClient``.

The client's generated API classes (``CoreV1Api`` and the rest) define every call of a group
with pydantic-validated signatures; importing the four ingressd used cost 26 MiB of resident
memory (``CoreV1Api`` alone 20), for a dozen of their methods. ``ApiClient.param_serialize`` and
``ApiClient.call_api`` are the public methods those classes end in: authentication, the
configured host and TLS, the URL query and the body's serialization stay the client's. This
module names the resource paths and the verbs, refuses what ``API_CALLS`` (the RBAC rules
shipped with ingressd) does not list, and hands back the raw response (ingressd reads the
JSON itself) or raises ``ApiException`` for a non-2xx status, as the generated classes do
with ``_preload_content=False``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ingressd.config.sources import KIND_SPECS
from ingressd.providers.kube.config import API_CALLS, ApiCall

Timeout = tuple[float, float]

MERGE_PATCH = "application/merge-patch+json"

# kind → (apiVersion, plural, namespaced) of every kind ingressd requests: those the sources of
# routes read (ingressd.config.sources), then the provider's own
RESOURCES: dict[str, tuple[str, str, bool]] = {
    **{spec.kind: (spec.api_version, spec.plural, spec.namespaced) for spec in KIND_SPECS},
    "Lease": ("coordination.k8s.io/v1", "leases", True),
    "Event": ("v1", "events", True),
}


def api_version(kind: str) -> str:
    return RESOURCES[kind][0]


def api_group(kind: str) -> str:
    """The API group ("" for the core group, whose apiVersion is just ``v1``)."""
    return api_version(kind).rpartition("/")[0]


def namespaced(kind: str) -> bool:
    return RESOURCES[kind][2]


def resource_path(kind: str, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """``/api/v1`` (the core group) or ``/apis/<group>/<version>``, then
    ``[/namespaces/<ns>]/<plural>[/<name>[/<subresource>]]``; a namespace is ignored for a
    cluster-scoped kind (an IngressClass)."""
    version, plural, is_namespaced = RESOURCES[kind]
    path = ("/apis/" if api_group(kind) else "/api/") + version
    if namespace and is_namespaced:
        path += "/namespaces/" + quote(namespace, safe="")
    path += "/" + plural
    if name is not None:
        path += "/" + quote(name, safe="")
        if subresource:
            path += "/" + subresource
    return path


class UndeclaredCall(Exception):
    """A request missing from ``ingressd.providers.kube.config.API_CALLS`` (and so from the RBAC rules
    shipped with ingressd): a mistake in ingressd, refused before it reaches the server."""


class KubeRest:
    """The requests ingressd makes, on one ``ApiClient`` (call from pool threads).

    Each method names the kind, and the RBAC verb it needs; a verb on a resource missing
    from ``API_CALLS`` raises ``UndeclaredCall``. A method returns the urllib3 response,
    unread (the caller reads, streams and closes it), or raises ``ApiException`` when the
    status is not 2xx."""

    def __init__(self, api_client: client.ApiClient):
        self.api_client = api_client

    def list(self, kind: str, namespace: str | None = None, *, query: dict[str, Any] | None = None,
             timeout: Timeout | None = None) -> Any:
        return self._request("GET", "list", kind, namespace, query=query, timeout=timeout)

    def watch(self, kind: str, namespace: str | None = None, *, query: dict[str, Any] | None = None,
              timeout: Timeout | None = None) -> Any:
        return self._request("GET", "watch", kind, namespace, query=dict(query or {}, watch=True),
                             timeout=timeout)

    def get(self, kind: str, namespace: str, name: str, *, timeout: Timeout | None = None) -> Any:
        return self._request("GET", "get", kind, namespace, name, timeout=timeout)

    def create(self, kind: str, namespace: str, body: dict, *, timeout: Timeout | None = None) -> Any:
        return self._request("POST", "create", kind, namespace, body=body, timeout=timeout)

    def update(self, kind: str, namespace: str, name: str, body: dict, *,
               timeout: Timeout | None = None) -> Any:
        return self._request("PUT", "update", kind, namespace, name, body=body, timeout=timeout)

    def patch(self, kind: str, namespace: str, name: str, body: dict, *, subresource: str = "",
              timeout: Timeout | None = None) -> Any:
        """A JSON merge patch (RFC 7386)."""
        return self._request("PATCH", "patch", kind, namespace, name, subresource, body=body,
                             content_type=MERGE_PATCH, timeout=timeout)

    def _request(self, method: str, verb: str, kind: str, namespace: str | None,
                 name: str | None = None, subresource: str = "", *,
                 query: dict[str, Any] | None = None, body: Any = None,
                 content_type: str = "application/json", timeout: Timeout | None = None) -> Any:
        check_declared(kind, verb, subresource)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = self.api_client.param_serialize(
            method=method, resource_path=resource_path(kind, namespace, name, subresource),
            query_params=[(key, value) for key, value in (query or {}).items() if value is not None],
            header_params=headers, body=body, auth_settings=["BearerToken"])
        response = self.api_client.call_api(*serialized, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response


def rbac_rule(kind: str, verb: str, subresource: str = "") -> ApiCall:
    """The RBAC rule a request needs: API group, resource[/subresource], verb."""
    plural = RESOURCES[kind][1]
    return ApiCall(api_group(kind), f"{plural}/{subresource}" if subresource else plural, verb)


def check_declared(kind: str, verb: str, subresource: str = "") -> None:
    rule = rbac_rule(kind, verb, subresource)
    if rule not in API_CALLS:
        raise UndeclaredCall(f"{verb} {rule.resource} ({kind}) is not in ingressd.providers.kube.config.API_CALLS")
