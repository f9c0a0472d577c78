"""A pure-Python function and its C accelerator (setup.py's ``ACCELERATORS``) as one parametrize
list, so every case runs against both twins: the C one is skipped, with one reason everywhere,
where the extension was not built (PyPy, no compiler, ``INGRESSD_NO_ACCEL=1``). Under ``CI=true``
on CPython a missing accelerator fails tests/test_accelerators.py instead, so the skip cannot hide
one there."""

from __future__ import annotations

from typing import Any

import pytest

NOT_BUILT = "the C accelerator was not built"


def twins(python: Any, c: Any, ids: tuple[str, str] = ("python", "c"), built: bool | None = None) -> list:
    """``[python, c]`` as ``pytest.param``s named ``ids``; ``c`` is skipped when ``built`` is false,
    by default when ``c`` is None (its import from the extension failed)."""
    if built is None:
        built = c is not None
    return [pytest.param(python, id=ids[0]),
            pytest.param(c, id=ids[1], marks=pytest.mark.skipif(not built, reason=NOT_BUILT))]
