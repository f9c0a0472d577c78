"""setup.py's optional C accelerators, all of them in one place.

CI installs ingressd with pip on a machine with gcc and Python's headers (`.ci/run`), so under
``CI=true`` on CPython every accelerator ``setup.py`` declares must be in the installed package:
otherwise only the pure-Python twins would be tested. Elsewhere (PyPy, no compiler,
``INGRESSD_NO_ACCEL=1``) they may be absent; each one's own tests check that its twin is used
then (test_request_head.py, test_response_head.py, test_logline.py)."""

from __future__ import annotations

import ast
import importlib
import os
import platform
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def declared() -> list[tuple[str, list[str]]]:
    """``setup.py``'s ``ACCELERATORS``, read as data (running setup.py would build)."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "ACCELERATORS":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py declares no ACCELERATORS")


ACCELERATORS = declared()


def test_every_declared_accelerator_has_its_sources():
    assert ACCELERATORS
    for name, sources in ACCELERATORS:
        assert name.startswith("ingressd.") and name.rsplit(".", 1)[1].startswith("_"), name
        for source in sources:
            assert (ROOT / source).is_file(), source


@pytest.mark.parametrize("name", [name for name, _ in ACCELERATORS])
def test_every_accelerator_is_built_in_ci(name):
    if os.environ.get("CI", "").lower() != "true" or platform.python_implementation() != "CPython" \
            or os.environ.get("INGRESSD_NO_ACCEL"):
        pytest.skip("checked under CI=true on CPython, where pip builds them (.ci/run installs gcc)")
    module = importlib.import_module(name)
    assert module.__file__.endswith(".so"), f"{name} is not the built extension: {module.__file__}"
