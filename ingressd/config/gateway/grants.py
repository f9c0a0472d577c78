"""ReferenceGrant: whether an object in one namespace may refer to one in another.

A reference within a namespace is always permitted. Across namespaces it is permitted only when
a ReferenceGrant in the target's namespace lists the referring kind and namespace in ``from``
and the target's group and kind (and, if it names one, the target's name) in ``to``.
"""

from __future__ import annotations

from typing import Iterable, Mapping


class Grants:
    """The ReferenceGrants of a snapshot, indexed by the namespace they are in."""

    def __init__(self, grants: Iterable[Mapping]):
        self._by_namespace: dict[str, list[tuple[tuple, tuple]]] = {}
        for grant in grants:
            namespace = (grant.get("metadata") or {}).get("namespace") or "default"
            spec = grant.get("spec") or {}
            froms = tuple((str(item.get("group") or ""), str(item.get("kind") or ""),
                           str(item.get("namespace") or "")) for item in spec.get("from") or [] if isinstance(item, dict))
            tos = tuple((str(item.get("group") or ""), str(item.get("kind") or ""), item.get("name") or None)
                        for item in spec.get("to") or [] if isinstance(item, dict))
            self._by_namespace.setdefault(namespace, []).append((froms, tos))

    def permits(self, from_group: str, from_kind: str, from_namespace: str,
                to_group: str, to_kind: str, to_namespace: str, to_name: str) -> bool:
        if from_namespace == to_namespace:
            return True
        for froms, tos in self._by_namespace.get(to_namespace, ()):
            if (from_group, from_kind, from_namespace) not in froms:
                continue
            for group, kind, name in tos:
                if group == to_group and kind == to_kind and (name is None or name == to_name):
                    return True
        return False
