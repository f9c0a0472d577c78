"""Which backend a request of a route with a canary goes to (ingressd/proxy/canary_choice.py), as
ingress-nginx's route_to_alternative_balancer: affinity to the main backend, then to the
canary, then the canary's rule."""

from __future__ import annotations

from types import SimpleNamespace

from ingressd.proxy.canary_choice import choose


class Rule:
    def __init__(self, wants, sticky_affinity=True):
        self._wants = wants
        self.sticky_affinity = sticky_affinity
        self.asked = 0

    def wants(self, exchange):
        self.asked += 1
        return self._wants


class Sticky:
    def __init__(self, name, bound=False, alternative=None):
        self.name, self.bound, self._alternative = name, bound, alternative
        self.alternatives_asked = []

    def affinitized(self):
        return self.bound

    def alternative(self, backend, rule):
        self.alternatives_asked.append((backend, rule))
        return self._alternative if rule.sticky_affinity else None


def entry(rule, canary_balancer="canary-rr"):
    canary = SimpleNamespace(balancer=canary_balancer, route=SimpleNamespace(backend="canary-backend"))
    return SimpleNamespace(balancer="main-rr", alternatives=((rule, canary),))


def test_without_a_feature_s_balancer_the_rule_decides():
    assert choose(None, entry(Rule(True)), None) == "canary-rr"
    assert choose(None, entry(Rule(False)), None) == "main-rr"


def test_a_balancer_taking_no_part_keeps_the_request():
    default_backend = object()
    rule = Rule(True)
    assert choose(default_backend, entry(rule), None) is default_backend and rule.asked == 0


def test_affinitized_to_the_main_backend_it_stays_whatever_the_rule():
    main = Sticky("main", bound=True)
    rule = Rule(True)
    assert choose(main, entry(rule), None) is main and rule.asked == 0


def test_affinitized_to_the_canary_it_goes_there_whatever_the_rule():
    canary = Sticky("canary", bound=True)
    main = Sticky("main", alternative=canary)
    rule = Rule(False)
    assert choose(main, entry(rule), None) is canary and rule.asked == 0
    assert main.alternatives_asked == [("canary-backend", rule)]


def test_not_affinitized_the_rule_decides_between_the_sticky_ones():
    canary = Sticky("canary")
    main = Sticky("main", alternative=canary)
    assert choose(main, entry(Rule(True)), None) is canary
    assert choose(main, entry(Rule(False)), None) is main


def test_legacy_sends_to_the_canary_s_own_balancer():
    main = Sticky("main", alternative=Sticky("canary", bound=True))
    assert choose(main, entry(Rule(True, sticky_affinity=False)), None) == "canary-rr"
    assert choose(main, entry(Rule(False, sticky_affinity=False)), None) is main


def test_a_hash_balancer_lets_the_rule_decide():
    class Hashed:
        def affinitized(self):
            return False

    hashed = Hashed()
    assert choose(hashed, entry(Rule(True)), None) == "canary-rr"
    assert choose(hashed, entry(Rule(False)), None) is hashed
