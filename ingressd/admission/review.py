"""AdmissionReview in, AdmissionReview out: reading the API server's request, writing the answer.

Pure functions over bytes and plain data. What the API server sends is documented in the
Kubernetes API reference (``admission.k8s.io/v1`` AdmissionReview); a body that is not such a
review for an Ingress or a ConfigMap (not JSON, another apiVersion or kind, no
``request.uid``, another resource) raises ``BadReview`` and is answered 400, which the API server treats as a failed
call (the ValidatingWebhookConfiguration's ``failurePolicy`` decides).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
INGRESS_KIND = {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"}
CONFIGMAP_KIND = {"group": "", "version": "v1", "kind": "ConfigMap"}  # the controller ConfigMap (--nginx-configmap)
_KINDS = {"Ingress": (INGRESS_KIND, "networking.k8s.io/v1"), "ConfigMap": (CONFIGMAP_KIND, "v1")}
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
MAX_WARNINGS = 32  # the API server passes each on to the client (kubectl prints them)
MAX_WARNING_CHARS = 1024


class BadReview(ValueError):
    """The body is not an AdmissionReview this webhook answers; the message says why."""


@dataclass(frozen=True)
class Review:
    """What is needed of one AdmissionReview request."""

    uid: str
    operation: str  # CREATE, UPDATE, DELETE or CONNECT
    namespace: str
    name: str
    object: Mapping[str, Any] | None  # the object as it would be stored (None for DELETE)
    dry_run: bool = False
    kind: str = "Ingress"  # or ConfigMap


@dataclass(frozen=True)
class Decision:
    """The answer: allowed or not, why (``message``, an HTTP-like ``code``), and warnings."""

    allowed: bool
    message: str = ""
    code: int = 200
    warnings: tuple[str, ...] = field(default=())


def parse_review(body: bytes) -> Review:
    """The request of an ``admission.k8s.io/v1`` AdmissionReview for a ``networking.k8s.io/v1``
    Ingress or a core ``v1`` ConfigMap; ``BadReview`` for anything else."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BadReview(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadReview("the body is not a JSON object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise BadReview(f"expected apiVersion {API_VERSION} and kind {KIND}, got "
                        f"{_short(document.get('apiVersion'))} {_short(document.get('kind'))}")
    request = document.get("request")
    if not isinstance(request, dict):
        raise BadReview("the AdmissionReview has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("the AdmissionReview request has no uid")
    kind = request.get("kind")
    kind_name = kind.get("kind") if isinstance(kind, dict) else None
    expected, api_version = _KINDS.get(kind_name, (INGRESS_KIND, ""))
    if not isinstance(kind, dict) or {key: kind.get(key) or "" for key in expected} != expected:
        raise BadReview(f"this webhook reviews networking.k8s.io/v1 Ingresses and v1 ConfigMaps, not {_gvk(kind)} "
                        "(check the ValidatingWebhookConfiguration's rules)")
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise BadReview(f"unknown operation {_short(operation)}")
    obj = request.get("object")
    if operation in ("CREATE", "UPDATE"):
        if not isinstance(obj, dict):
            raise BadReview(f"a {operation} review needs request.object")
        metadata = obj.get("metadata")
        body = "data" if kind_name == "ConfigMap" else "spec"
        if not isinstance(metadata, dict) or not isinstance(obj.get(body, {}), dict):
            raise BadReview(f"request.object is not {'an Ingress' if kind_name == 'Ingress' else 'a ConfigMap'} "
                            f"(metadata or {body} is not an object)")
        obj = {**obj, "kind": kind_name, "apiVersion": api_version,
               # generateName: the API server gives the name after admission; namespace: from the request
               "metadata": {**metadata, "name": metadata.get("name") or request.get("name") or "",
                            "namespace": metadata.get("namespace") or request.get("namespace") or "default"}}
    else:
        obj = None
    namespace = request.get("namespace")
    name = request.get("name")
    return Review(uid=uid, operation=operation,
                  namespace=namespace if isinstance(namespace, str) else "",
                  name=name if isinstance(name, str) else "",
                  object=obj, dry_run=request.get("dryRun") is True, kind=kind_name)


def answer(uid: str, decision: Decision) -> bytes:
    """The AdmissionReview answering request ``uid`` with ``decision``, as JSON bytes."""
    response: dict[str, Any] = {"uid": uid, "allowed": decision.allowed}
    if not decision.allowed:
        response["status"] = {"status": "Failure", "code": decision.code, "reason": _REASONS.get(decision.code, ""),
                              "message": decision.message}
    warnings = [_one_line(text)[:MAX_WARNING_CHARS] for text in decision.warnings[:MAX_WARNINGS]]
    if warnings:
        response["warnings"] = warnings
    return json.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": response}).encode("utf-8")


_REASONS = {400: "BadRequest", 403: "Forbidden", 409: "Conflict", 503: "ServiceUnavailable"}


def _one_line(text: str) -> str:
    """A warning as the API server wants it: one line, no control characters."""
    return "".join(char if char.isprintable() else " " for char in str(text))


def _short(value: Any) -> str:
    return repr(value)[:80]


def _gvk(kind: Any) -> str:
    if not isinstance(kind, dict):
        return "an unnamed kind"
    return f"{kind.get('group') or 'core'}/{kind.get('version')} {kind.get('kind')}"[:120]
