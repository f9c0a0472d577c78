"""Meta-tests keeping the extension surface honest (datasette style), and the manager's switches.

Every hookspec is documented in docs/hooks.md with its exact signature, has a docstring and
the ``ingressd_`` prefix, and has a ``test_hook_<name>`` test somewhere in tests/. The
plugin manager's start-up checks and switches (tracing, ``--disable-plugin``, two owners
of one annotation, a misspelled hook) are tested at the end.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import fakes  # noqa: F401  (makes ingressd_plugins importable)
from ingressd import Annotation, hookimpl, hookspecs
from ingressd.plugin_manager import PluginError, load_plugins
from ingressd.testing import restore_plugin_configuration

ROOT = Path(__file__).resolve().parent.parent
HOOKS_MD = (ROOT / "docs" / "hooks.md").read_text()


@pytest.fixture(autouse=True)
def _plugins_as_they_were():
    """Some tests here configure the installed plugins (``configure``, ``build_server`` with a
    Clock): put them back as they were, or later tests build their routes with that clock."""
    yield
    restore_plugin_configuration()


def _hookspecs() -> dict:
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, "ingressd_spec")
    }


HOOKS = sorted(_hookspecs())


def _documented() -> dict[str, str]:
    """Hook name → the ``def`` line of its section in docs/hooks.md."""
    found = {}
    for match in re.finditer(r"^## (\w+)\s*\n+```python\n(def [^\n]+)\n```", HOOKS_MD, re.M):
        found[match.group(1)] = match.group(2)
    return found


def _signature_text(name: str, function) -> str:
    signature = inspect.signature(function)
    params = ", ".join(
        f"{p.name}: {p.annotation}" if p.annotation is not inspect.Parameter.empty else p.name
        for p in signature.parameters.values()
    )
    return f"def {name}({params}) -> {signature.return_annotation}"


def _normal(text: str) -> str:
    return text.replace("'", '"').strip()


def test_there_are_hooks():
    assert len(HOOKS) >= 5


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_its_exact_signature(name):
    documented = _documented()
    assert name in documented, f"{name} has no '## {name}' section with a python def block in docs/hooks.md"
    assert _normal(documented[name]) == _normal(_signature_text(name, _hookspecs()[name]))


def test_docs_list_no_hook_that_does_not_exist():
    assert set(_documented()) <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_has_prefix_and_docstring(name):
    assert name.startswith("ingressd_")
    doc = inspect.getdoc(_hookspecs()[name])
    assert doc and len(doc.splitlines()[0]) > 20, f"{name} needs a docstring saying what it contributes"


def _test_sources() -> str:
    return "\n".join(path.read_text() for path in sorted((ROOT / "tests").glob("test_*.py")))


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_test(name):
    assert re.search(rf"^def test_hook_{name}\b", _test_sources(), re.M), f"write test_hook_{name} in tests/"


def test_no_plugin_module_defines_an_unknown_hook():
    """Every ``ingressd_*`` function in a built-in plugin is a hookspec (check_pending at load)."""
    import importlib

    for path in sorted((ROOT / "plugins").glob("[a-z]*.py")):
        module = importlib.import_module(f"ingressd_plugins.{path.stem}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("ingressd_") and function.__module__ == module.__name__:
                assert name in HOOKS, f"{path.name}: {name} is not a hook"


# -- the manager's start-up checks and switches -----------------------------------------


class _Claims:
    def __init__(self, label: str, annotation: str = "shared-name"):
        self.label = label
        self.annotation = annotation

    def __repr__(self):
        return f"<plugin {self.label}>"

    @hookimpl
    def ingressd_annotations(self):
        return [Annotation(self.annotation, str, None, "test")]


def test_two_plugins_claiming_one_annotation_fail_at_start():
    first, second = _Claims("first"), _Claims("second")
    with pytest.raises(PluginError) as caught:
        load_plugins(extra=[first, second], entry_points=False)
    message = str(caught.value)
    assert "shared-name" in message and "claimed by two plugins" in message


def test_a_plugin_claiming_a_builtin_annotation_fails_at_start():
    with pytest.raises(PluginError, match="'auth-type' is claimed by two plugins"):
        load_plugins(extra=[_Claims("mine", "auth-type")])


class _Misspelled:
    @hookimpl
    def ingressd_route_feature(self, route, values, context):  # missing "s"
        return None


def test_a_misspelled_hookimpl_fails_at_start():
    with pytest.raises(PluginError, match="ingressd_route_feature"):
        load_plugins(extra=[_Misspelled()], entry_points=False)


class _WrongArgument:
    @hookimpl
    def ingressd_configure(self, settings, reactor, extra):
        pass


def test_a_hookimpl_asking_for_an_argument_the_spec_lacks_fails_at_start():
    with pytest.raises(PluginError):
        load_plugins(extra=[_WrongArgument()], entry_points=False)


def test_trace_switch_prints_hook_calls(monkeypatch, capsys):
    monkeypatch.setenv("INGRESSD_TRACE_HOOKS", "1")
    plugins = load_plugins()
    plugins.configure({"x": 1}, None)
    err = capsys.readouterr().err
    assert "ingressd_annotations" in err and "ingressd_options" in err
    assert "ingressd_configure" in err and "settings" in err


def test_no_trace_without_the_switch(monkeypatch, capsys):
    monkeypatch.delenv("INGRESSD_TRACE_HOOKS", raising=False)
    load_plugins().configure({}, None)
    assert "ingressd_annotations" not in capsys.readouterr().err


def test_disable_plugin_by_entry_point_name():
    every = load_plugins()
    assert "cors" in every.names() and "enable-cors" in every.annotation_owners
    without = load_plugins(disabled=["cors"])
    assert "cors" not in without.names()
    assert "enable-cors" not in without.annotation_owners
    assert "auth-type" in without.annotation_owners


def test_disable_plugin_option_reaches_the_server(tmp_path):
    from twisted.internet.task import Clock

    from ingressd import tap
    from ingressd.server import build_server

    options = tap.Options()
    options.parseOptions(["--manifests", str(tmp_path), "--disable-plugin", "cors",
                          "--disable-plugin", "rate_limit", "--http", "", "--https", "", "--admin", ""])
    assert options["disable-plugin"] == ["cors", "rate_limit"]
    plugins = load_plugins(disabled=options["disable-plugin"])
    server = build_server(tap.settings_from(options), plugins, Clock())
    assert {"cors", "rate_limit"}.isdisjoint(server.plugins.names())
    assert "basic_auth" in server.plugins.names()
