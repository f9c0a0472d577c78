"""The Gateway API filters as data (ingressd.config.filters): immutable, hashable (routes with
the same filters compare equal, so an unchanged route keeps its entry), and on Route.filters."""

from __future__ import annotations

import dataclasses

import pytest

from ingressd.config import filters as f
from ingressd.config.model import Backend, ObjectRef, Route, StatusDocument


def test_filters_are_immutable_and_compare_by_value():
    one = f.RequestRedirect(scheme="https", port=None, path=f.PathModifier(f.REPLACE_PREFIX_MATCH, "/v2"))
    assert one == f.RequestRedirect(scheme="https", path=f.PathModifier(f.REPLACE_PREFIX_MATCH, "/v2"))
    assert hash(one) == hash(f.RequestRedirect(scheme="https", path=f.PathModifier("ReplacePrefixMatch", "/v2")))
    assert one.status_code == 302
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.status_code = 301  # type: ignore[misc]


def test_a_route_carries_its_filters_in_order():
    backend = Backend("default", "web", 80)
    chain = (f.RequestHeaderModifier(f.HeaderChanges(set=(("x-a", "1"),), remove=("x-b",))),
             f.RequestMirror(backend, percent=50), f.CORS(allow_origins=("*",)))
    route = Route("h.example", "/", "Prefix", backend, ObjectRef("HTTPRoute", "default", "r"), filters=chain)
    assert route.filters == chain and route == dataclasses.replace(route)
    assert Route("h.example", "/", "Prefix", backend, ObjectRef("Ingress", "default", "i")).filters == ()
    assert f.CORS().max_age == 5 and f.RequestMirror(None).percent == 100


def test_a_status_document_is_a_value():
    assert StatusDocument(3, '{"conditions": []}') == StatusDocument(3, '{"conditions": []}')
    assert hash(StatusDocument(3, "{}")) != hash(StatusDocument(4, "{}")) or StatusDocument(3, "{}") != StatusDocument(4, "{}")
