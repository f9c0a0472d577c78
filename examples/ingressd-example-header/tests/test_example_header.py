"""The example plugin tested with ingressd's public testing helpers, as a third party would."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import ingressd_example_header  # noqa: E402
from ingressd.testing import PluginHarness, exchange, features_for, run_response  # noqa: E402


def test_header_on_proxied_responses():
    harness = PluginHarness(plugins=[ingressd_example_header], annotations={"example-header": "hello world"})
    outcome = harness.request("GET", "/")
    assert outcome.proxied
    response = outcome.response(200, {"content-type": "text/plain"})
    assert response.get_all("x-example") == ["hello world"]


def test_nginx_prefix_is_read_too():
    harness = PluginHarness(plugins=[ingressd_example_header],
                            annotations={"nginx.ingress.kubernetes.io/example-header": "from-nginx"})
    assert harness.request().response(404).get("x-example") == "from-nginx"


def test_no_annotation_no_header():
    harness = PluginHarness(plugins=[ingressd_example_header])
    assert harness.features == ()
    assert harness.request().response(200).get("x-example") is None


@pytest.mark.parametrize("value", ["", " lead", "trail ", "é", "x" * 257])
def test_bad_value_rejects_the_ingress_with_a_message(value):
    harness = PluginHarness(plugins=[ingressd_example_header], annotations={"example-header": value})
    assert harness.rejection is not None
    assert "example-header" in harness.rejection


def test_feature_by_hand():
    [feature] = features_for(ingressd_example_header, {"example-header": "v"})
    assert run_response([feature], exchange(), 200, []) == [(b"x-example", b"v")]
