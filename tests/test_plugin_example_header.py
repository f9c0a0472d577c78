"""The example third-party plugin in examples/: its hooks, its value check and its entry point."""

import sys
import tomllib
from pathlib import Path

import pytest

from fakes import annotation_values, exchange, features_for, run_response
from ingressd.features import AnnotationError
from ingressd.plugin_manager import load_plugins

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ingressd-example-header"
sys.path.insert(0, str(EXAMPLE / "src"))
import ingressd_example_header  # noqa: E402


def test_adds_the_header_to_responses():
    [feature] = features_for(ingressd_example_header, {"example-header": "hello world"})
    headers = run_response([feature], exchange(), 404, [(b"content-type", b"text/plain")])
    assert headers == [(b"content-type", b"text/plain"), (b"x-example", b"hello world")]


def test_absent_means_no_feature():
    assert features_for(ingressd_example_header, {}) == []


@pytest.mark.parametrize("value", ["", " lead", "trail ", "é", "x" * 257, "a\x7fb"])
def test_bad_values_reject_the_ingress(value):
    with pytest.raises(AnnotationError):
        annotation_values(ingressd_example_header, {"example-header": value})


def test_registers_in_the_ingressd_entry_point_group():
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["ingressd"] == {"example_header": "ingressd_example_header"}
    plugins = load_plugins(extra=[ingressd_example_header], entry_points=False)
    assert plugins.annotation_owners["example-header"]
