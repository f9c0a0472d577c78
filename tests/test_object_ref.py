"""``ObjectRef`` keeps its hash once worked out: the same hash, equality, order, text and
pickling as the plain frozen dataclass it was (a change looks refs up by the ten thousand)."""

import copy
import dataclasses
import pickle

from ingressd.config.model import ObjectRef


def test_hash_and_equality_are_those_of_its_three_fields():
    ref = ObjectRef("Ingress", "ns", "a")
    assert hash(ref) == hash(("Ingress", "ns", "a"))
    assert ref == ObjectRef("Ingress", "ns", "a")
    assert hash(ref) == hash(ObjectRef("Ingress", "ns", "a"))
    assert ref != ObjectRef("Ingress", "ns", "b")
    assert ref != ObjectRef("Service", "ns", "a")
    assert ref != ObjectRef("Ingress", "other", "a")
    assert {ref: 1}[ObjectRef("Ingress", "ns", "a")] == 1


def test_order_text_and_repr_do_not_show_the_cached_hash():
    refs = [ObjectRef("Ingress", "ns", "b"), ObjectRef("Ingress", "ns", "a"), ObjectRef("Gateway", "z", "a")]
    assert sorted(refs) == [ObjectRef("Gateway", "z", "a"), ObjectRef("Ingress", "ns", "a"),
                            ObjectRef("Ingress", "ns", "b")]
    assert repr(refs[1]) == "ObjectRef(kind='Ingress', namespace='ns', name='a')"
    assert str(refs[1]) == "Ingress ns/a"
    assert str(ObjectRef("GatewayClass", "", "c")) == "GatewayClass c"
    assert ObjectRef.__match_args__ == ("kind", "namespace", "name")


def test_replace_copy_and_pickle_work_the_hash_out_again():
    ref = ObjectRef("Ingress", "ns", "a")
    moved = dataclasses.replace(ref, name="b")
    assert moved == ObjectRef("Ingress", "ns", "b") and hash(moved) == hash(("Ingress", "ns", "b"))
    for other in (copy.copy(ref), copy.deepcopy(ref), pickle.loads(pickle.dumps(ref))):
        assert other == ref and hash(other) == hash(ref)
    # The state pickled is the three fields only: a string's hash differs from process to process.
    assert ref.__getstate__() == ("Ingress", "ns", "a")


def test_it_stays_immutable():
    ref = ObjectRef("Ingress", "ns", "a")
    try:
        ref.name = "b"
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("ObjectRef accepted an assignment")
    assert ref.name == "a"
