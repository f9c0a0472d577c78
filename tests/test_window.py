"""``config.window`` (C, ``ingressd.config._window``) and its pure-Python twin ``window_py``: the
same (start, old_end, new_end) for random pairs of lists and tuples made of shared and fresh
(equal but not identical) objects, the slices they name being what the docstring says; anything
but a list or a tuple goes to the twin; the extension leaks nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.config import window as module
from ingressd.config.window import window, window_py
from memory_growth import traced_growth
from twins import twins

try:
    from ingressd.config._window import window as window_c
except ImportError:
    window_c = None

IMPLEMENTATIONS = twins(window_py, window_c)


class Item:
    """Equal to any other Item of the same value: the window must tell them apart by identity."""

    def __init__(self, value: int):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Item) and other.value == self.value

    __hash__ = None


def test_the_module_picks_the_extension_when_built():
    assert module.ACCELERATED == (window_c is not None)


# A pair: the old sequence, then the new one made of its items (kept by index) and fresh ones.
_pairs = st.lists(st.integers(0, 5), max_size=30).flatmap(lambda values: st.tuples(
    st.just(values), st.lists(st.one_of(st.integers(0, len(values) - 1) if values else st.nothing(),
                                        st.builds(lambda v: ("fresh", v), st.integers(0, 5))), max_size=30),
    st.booleans(), st.booleans()))


def _made(pair):
    values, picks, old_tuple, new_tuple = pair
    old = [Item(v) for v in values]
    new = [Item(p[1]) if isinstance(p, tuple) else old[p] for p in picks]
    return (tuple(old) if old_tuple else old), (tuple(new) if new_tuple else new)


def _check(old, new, answer):
    start, old_end, new_end = answer
    assert 0 <= start <= old_end <= len(old) and start <= new_end <= len(new)
    assert all(a is b for a, b in zip(old[:start], new[:start]))
    assert len(old) - old_end == len(new) - new_end
    assert all(a is b for a, b in zip(old[old_end:], new[new_end:]))
    # each as long as can be, the beginning first
    assert start == min(len(old), len(new)) or old[start] is not new[start]
    tail = len(old) - old_end
    assert tail == min(len(old), len(new)) - start or old[old_end - 1] is not new[new_end - 1]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@settings(max_examples=300, deadline=None)
@given(pair=_pairs)
def test_the_window_names_what_differs_by_identity(implementation, pair):
    old, new = _made(pair)
    answer = implementation(old, new)
    _check(old, new, answer)
    assert answer == window_py(old, new) == window(old, new)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_equal_objects_are_not_the_same(implementation):
    a, b, c = Item(1), Item(2), Item(3)
    assert implementation((a, b, c), (a, Item(2), c)) == (1, 2, 2)
    assert implementation([a, b, c], (a, b, c)) == (3, 3, 3)
    same = (a, b, c)
    assert implementation(same, same) == (3, 3, 3)
    assert implementation((), ()) == (0, 0, 0)
    assert implementation((a, b), ()) == (0, 2, 0)
    assert implementation((a, a, a), (a, a)) == (2, 3, 2)  # the beginning is taken first


def test_other_sequences_go_to_the_twin():
    a, b = Item(1), Item(2)
    assert window(range(3), range(3)) == window_py(range(3), range(3))
    assert window(_Seq([a, b]), (a, b)) == (2, 2, 2)
    if window_c is not None:
        with pytest.raises(TypeError):
            window_c(range(3), (1, 2))
        with pytest.raises(TypeError):
            window_c((1,))


class _Seq(list):
    pass


@pytest.mark.skipif(window_c is None, reason="not built")
def test_the_extension_leaks_nothing():
    old = tuple(Item(n) for n in range(100))
    new = old[:40] + (Item(0),) + old[41:]

    def rounds(count):
        for _ in range(count):
            window_c(old, new)
            window_c(list(old), new)
            try:
                window_c(old, None)
            except TypeError:
                pass

    assert traced_growth(rounds) < 64 * 1024
