"""The tests import ingressd and its built-in plugins as pip installed them (no sys.path shim).

An installed copy older than the checkout would test old code and pass: refuse to start then,
naming the files that differ and the command that fixes it. An editable install, a copy made
by tests/mutation.py, or ``INGRESSD_TEST_INSTALLED_ONLY=1`` (testing a wheel on purpose) skip
the comparison.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# No timed assertions in tests (speed is benchmarked, never asserted): Hypothesis's per-example
# deadline (200 ms) failed property tests on a loaded CI machine, so it is off for every test.
settings.register_profile("ingressd", deadline=None)
settings.load_profile("ingressd")

CHECKOUT = Path(__file__).resolve().parent.parent


def _differences() -> list[str]:
    import ingressd
    import ingressd_plugins

    found = []
    for module, source in ((ingressd, CHECKOUT / "ingressd"), (ingressd_plugins, CHECKOUT / "plugins")):
        installed = Path(module.__file__).resolve().parent
        if installed == source.resolve() or not source.is_dir():
            continue
        for path in sorted(source.rglob("*.py")):
            relative = path.relative_to(source)
            copy = installed / relative
            if not copy.exists() or copy.read_bytes() != path.read_bytes():
                found.append(f"{source.name}/{relative}")
        for copy in sorted(installed.rglob("*.py")):
            if not (source / copy.relative_to(installed)).exists():
                found.append(f"{source.name}/{copy.relative_to(installed)} (installed only)")
    return found


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("INGRESSD_TEST_INSTALLED_ONLY") == "1":
        return
    differences = _differences()
    if differences:
        shown = ", ".join(differences[:5]) + (f" and {len(differences) - 5} more" if len(differences) > 5 else "")
        raise pytest.UsageError(
            f"the installed ingressd differs from this checkout ({shown}): "
            "run `pip install --no-deps --no-build-isolation .` first (an editable install lacks the twistd drop-in)")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """In a pytest-xdist worker, the files with end-to-end (slow) tests go first, in their random order (this
    wrapper runs after pytest-randomly's shuffle; every worker sorts alike): a long file dealt out last would
    leave the other worker idle at the end of the run."""
    result = yield
    if os.environ.get("PYTEST_XDIST_WORKER"):
        heavy = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: item.nodeid.split("::")[0] not in heavy)
    return result


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The order's seed at the end, where ``-q`` (which hides pytest-randomly's header) still shows it: the
    seed repeats a run's order, in parallel too (every xdist worker gets it)."""
    seed = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.has_plugin("randomly") and isinstance(seed, int):
        terminalreporter.write_line(f"test order: -p randomly --randomly-seed={seed}")
