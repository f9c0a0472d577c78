"""tests/twins.py: the C twin is skipped exactly when it was not built, with the one reason, and
the ids are the ones asked for."""

from __future__ import annotations

from twins import NOT_BUILT, twins


def _skip(param) -> tuple[bool, str]:
    (mark,) = param.marks
    assert mark.name == "skipif"
    return mark.args[0], mark.kwargs["reason"]


def test_the_c_twin_runs_when_built():
    python, c = twins(len, abs)
    assert (python.values, python.id, python.marks) == ((len,), "python", ())
    assert (c.values, c.id) == ((abs,), "c")
    assert _skip(c) == (False, NOT_BUILT)


def test_the_c_twin_is_skipped_when_its_import_failed():
    python, c = twins(len, None)
    assert not python.marks
    assert (c.values, c.id) == ((None,), "c")
    assert _skip(c) == (True, NOT_BUILT)


def test_built_and_ids_can_be_given():
    python, c = twins("joined-python", "joined-c", ids=("joined-python", "joined-c"), built=False)
    assert (python.id, c.id) == ("joined-python", "joined-c")
    assert _skip(c) == (True, NOT_BUILT)
    assert _skip(twins(len, None, built=True)[1]) == (False, NOT_BUILT)
