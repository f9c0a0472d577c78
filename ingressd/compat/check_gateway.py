"""``ingressd check`` for the Gateway API kinds: the verdict on each GatewayClass, Gateway,
HTTPRoute and GRPCRoute, read from the configuration the server would build.

Nothing is judged twice: the Gateway API source (``config.gateway_api``) has already judged
every object of ours into ``Config.status`` (the status cluster mode writes and file mode shows),
and the merge of the sources (``config.sources``) has warned the routes an Ingress shadows. This
module only reads those back: a condition that is not what a served object carries (Accepted,
ResolvedRefs, Programmed not True; Conflicted or PartiallyInvalid True) becomes a reason, and a
route none of whose routes is in the served table is not served. Objects of another controller
(a GatewayClass with another ``controllerName``, the Gateways of such classes, the routes that
name only those) are counted and left out, as Ingresses of another class are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ingressd.config.kinds import GATEWAY_GROUP
from ingressd.config.model import Config, ObjectRef
from ingressd.config.store import object_key

SERVED = "served"
PARTIAL = "partially-served"
NOT_SERVED = "not-served"
TITLES = {SERVED: "served", PARTIAL: "partially served", NOT_SERVED: "not served"}

JUDGED_KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute")
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")
# A condition of these types is as a served object has it when its status is this.
_HEALTHY = {"Accepted": "True", "ResolvedRefs": "True", "Programmed": "True", "Conflicted": "False",
            "PartiallyInvalid": "False"}


@dataclass
class GatewayVerdict:
    """What ingressd does with one Gateway API object."""

    ref: ObjectRef
    hosts: tuple[str, ...]
    verdict: str = SERVED
    reasons: list[str] = field(default_factory=list)  # why it is not (wholly) served
    notes: list[str] = field(default_factory=list)


@dataclass
class GatewayReport:
    verdicts: list[GatewayVerdict]
    other_controller: int  # objects of another controller's classes, left out

    def __bool__(self) -> bool:
        return bool(self.verdicts or self.other_controller)


def judge(objects: Sequence[Mapping], config: Config) -> GatewayReport:
    """The verdict on every Gateway API object in ``objects`` (the last of each kind, namespace
    and name, as the store keeps them), given the ``config`` built from them."""
    status = {ref: json.loads(document.body) for ref, document in config.status
              if ref.kind in JUDGED_KINDS and hasattr(document, "body")}
    served = {route.ingress for route in config.routes}
    warned: dict[ObjectRef, list[str]] = {}
    for warning in config.warnings:
        warned.setdefault(warning.ref, []).append(warning.reason)
    classes = {object_key(o)[1]: o for o in objects if o.get("kind") == "GatewayClass"}
    gateways = {object_key(o): o for o in objects if o.get("kind") == "Gateway"}
    verdicts: list[GatewayVerdict] = []
    other = 0
    for obj in sorted((o for o in objects if o.get("kind") in JUDGED_KINDS),
                      key=lambda o: (JUDGED_KINDS.index(o["kind"]), object_key(o))):
        namespace, name = object_key(obj)
        kind = obj["kind"]
        ref = ObjectRef(kind, "" if kind == "GatewayClass" else namespace, name)
        body = status.get(ref)
        if body is None:
            missing = _missing(obj, classes, gateways)
            if missing is None:
                other += 1
                continue
            verdicts.append(GatewayVerdict(ref, _hosts(obj), NOT_SERVED, [missing]))
            continue
        if kind in ROUTE_KINDS:
            verdicts.append(_route(ref, obj, body, ref in served, warned.get(ref, ())))
        else:
            verdicts.append(_gateway_or_class(ref, obj, body))
    return GatewayReport(verdicts, other)


def _failed(conditions: Iterable[Any]) -> list[str]:
    """The conditions that are not as a served object has them, as ``Type Reason: message``."""
    found = []
    for item in conditions or ():
        if isinstance(item, dict) and _HEALTHY.get(item.get("type")) not in (None, item.get("status")):
            found.append(f"{item.get('type')}={item.get('status')} {item.get('reason')}: {item.get('message')}")
    return found


def _gateway_or_class(ref: ObjectRef, obj: Mapping, body: Mapping) -> GatewayVerdict:
    verdict = GatewayVerdict(ref, _hosts(obj))
    verdict.reasons.extend(_failed(body.get("conditions")))
    if verdict.reasons:
        verdict.verdict = NOT_SERVED
    for listener in body.get("listeners") or ():
        problems = _failed(listener.get("conditions"))
        verdict.reasons.extend(f"listener {listener.get('name')}: {problem}" for problem in problems)
        if not problems:
            verdict.notes.append(f"listener {listener.get('name')}: {listener.get('attachedRoutes', 0)} route(s) "
                                 "attached")
        elif verdict.verdict == SERVED:
            verdict.verdict = PARTIAL
    return verdict


def _route(ref: ObjectRef, obj: Mapping, body: Mapping, served: bool, warnings: Sequence[str]) -> GatewayVerdict:
    verdict = GatewayVerdict(ref, _hosts(obj))
    accepted = False
    told = []
    for parent in body.get("parents") or ():
        parent_ref = parent.get("parentRef") or {}
        where = f"{parent_ref.get('namespace') or ref.namespace}/{parent_ref.get('name')}"
        where += f" ({parent_ref['sectionName']})" if parent_ref.get("sectionName") else ""
        where += f" port {parent_ref['port']}" if parent_ref.get("port") is not None else ""
        conditions = parent.get("conditions") or ()
        accepted = accepted or any(c.get("type") == "Accepted" and c.get("status") == "True" for c in conditions)
        verdict.reasons.extend(f"parent Gateway {where}: {problem}" for problem in _failed(conditions))
        told.extend(str(c.get("message") or "") for c in conditions)
    # The merge's warnings (a host and path an Ingress serves); a left-out rule is in PartiallyInvalid already.
    verdict.reasons.extend(w for w in warnings if not any(w in message for message in told))
    if not (accepted and served):
        verdict.verdict = NOT_SERVED
        if accepted:
            verdict.reasons.append("none of its rules is served")
    elif verdict.reasons:
        verdict.verdict = PARTIAL
    return verdict


def _missing(obj: Mapping, classes: Mapping[str, Mapping], gateways: Mapping[tuple, Mapping]) -> str | None:
    """Why an object with no judged status is not served when it names something absent from
    the input; None when it belongs to another controller (left out)."""
    kind = obj["kind"]
    if kind == "GatewayClass":
        return None
    if kind == "Gateway":
        name = str((obj.get("spec") or {}).get("gatewayClassName") or "")
        return None if name in classes else f"its GatewayClass {name!r} is not in the input"
    namespace = object_key(obj)[0]
    named = [(str(p.get("namespace") or namespace), str(p.get("name") or ""))
             for p in (obj.get("spec") or {}).get("parentRefs") or () if isinstance(p, dict)
             and (p.get("group") or GATEWAY_GROUP) == GATEWAY_GROUP and (p.get("kind") or "Gateway") == "Gateway"]
    absent = [f"{ns}/{name}" for ns, name in named if (ns, name) not in gateways]
    if not named:
        return "its parentRefs name no Gateway"
    if len(absent) == len(named):
        return f"the Gateway(s) its parentRefs name are not in the input: {', '.join(absent)}"
    # Some Gateway it names exists: of another controller's class, or of a class absent from the input.
    unclassed = [f"{ns}/{name}" for ns, name in named if (ns, name) in gateways and str(
        ((gateways[(ns, name)].get("spec") or {}).get("gatewayClassName") or "")) not in classes]
    if unclassed:
        return f"the GatewayClass of {', '.join(unclassed)} is not in the input"
    return None


def _hosts(obj: Mapping) -> tuple[str, ...]:
    spec = obj.get("spec") or {}
    if obj.get("kind") in ROUTE_KINDS:
        return tuple(str(name) for name in spec.get("hostnames") or ()) or ("*",)
    if obj.get("kind") == "Gateway":
        return tuple(dict.fromkeys(str(listener.get("hostname") or "*") for listener in spec.get("listeners") or ()
                                   if isinstance(listener, dict)))
    return ()


def to_json(report: GatewayReport) -> list[dict]:
    return [{"kind": v.ref.kind, "namespace": v.ref.namespace, "name": v.ref.name, "hosts": list(v.hosts),
             "verdict": v.verdict, "reasons": v.reasons, "notes": v.notes} for v in report.verdicts]


def summary(report: GatewayReport) -> dict[str, int]:
    counts = {key: 0 for key in TITLES}
    for verdict in report.verdicts:
        counts[verdict.verdict] += 1
    return {"objects": len(report.verdicts), "served": counts[SERVED], "partially_served": counts[PARTIAL],
            "not_served": counts[NOT_SERVED], "other_controller": report.other_controller}


def table_lines(report: GatewayReport, cut) -> list[str]:
    """The table of the text report: object, hosts, verdict (``cut`` shortens a cell)."""
    rows = [(str(v.ref), cut(", ".join(v.hosts) or "-", 48), TITLES[v.verdict]) for v in report.verdicts]
    if not rows:
        return []
    header = ("GATEWAY API OBJECT", "HOSTS", "VERDICT")
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(2)]
    return [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in [header] + rows]


def detail_lines(report: GatewayReport) -> list[str]:
    """Why each object not wholly served is not."""
    lines: list[str] = []
    for verdict in report.verdicts:
        if verdict.verdict == SERVED:
            continue
        lines.append("")
        lines.append(f"{verdict.ref}: {TITLES[verdict.verdict]}")
        lines.extend(f"  - {reason}" for reason in verdict.reasons)
    return lines


def summary_line(report: GatewayReport) -> str:
    facts = summary(report)
    return (f"Gateway API: {facts['objects']} object(s): {facts['served']} served, "
            f"{facts['partially_served']} partially served, {facts['not_served']} not served"
            + (f"; {facts['other_controller']} of another controller left out" if facts["other_controller"]
               else ""))
