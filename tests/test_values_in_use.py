"""The distinct annotation-value tuples of a configuration's routes: ``ingressd.values_in_use`` (a
walk, nothing remembered) and each server's ``BuildContext.values_in_use`` (followed from the routes
that server last asked about)."""

from __future__ import annotations

import dataclasses
import random

from ingressd import BuildContext, values_in_use
from ingressd.testing import make_route

_TUPLES = [(), (("server-alias", ("a.test",)),), (("from-to-www-redirect", True),), (("x", 1), ("y", 2))]


def _routes(rng: random.Random, count: int) -> list:
    return [dataclasses.replace(make_route(path=f"/{n}"), features=rng.choice(_TUPLES)) for n in range(count)]


def _distinct(routes) -> dict:
    out: dict = {}
    for route in routes:
        out.setdefault(id(route.features), route.features)
    return out


def test_the_module_function_walks_the_routes_it_is_given_and_remembers_nothing():
    rng = random.Random(1)
    first, second = _routes(rng, 30), [dataclasses.replace(make_route(), features=_TUPLES[3])]
    assert values_in_use(first) == _distinct(first)
    assert values_in_use(second) == {id(_TUPLES[3]): _TUPLES[3]}
    assert values_in_use(first) == _distinct(first)
    assert values_in_use(()) == {}


def test_a_server_follows_its_routes_from_build_to_build():
    """Routes changed in one place (as a configuration changes), added, removed, or all new: the
    answer is always the routes' own distinct tuples."""
    rng = random.Random(2)
    context = BuildContext(settings={}, reactor=None)
    routes = _routes(rng, 40)
    for _ in range(60):
        assert dict(context.values_in_use(routes)) == _distinct(routes)
        start = rng.randrange(len(routes) + 1)
        end = rng.randrange(start, len(routes) + 1)
        routes = [*routes[:start], *_routes(rng, rng.randrange(4)), *routes[end:]]
        if rng.random() < 0.1:
            routes = _routes(rng, rng.randrange(10))
        if rng.random() < 0.5:
            routes = tuple(routes)
        # A new context each build, as the reloader makes one, on the server's same state.
        context = BuildContext(settings={}, reactor=None, state=context.state)


def test_two_servers_in_one_process_do_not_share_what_they_follow():
    rng = random.Random(3)
    one = BuildContext(settings={}, reactor=None)
    other = BuildContext(settings={}, reactor=None)
    first, second = _routes(rng, 20), [dataclasses.replace(make_route(), features=_TUPLES[3])]
    seen = one.values_in_use(first)
    assert dict(other.values_in_use(second)) == {id(_TUPLES[3]): _TUPLES[3]}
    assert dict(seen) == _distinct(first)  # the first server's view is still its own routes'
