"""Every built-in plugin module loads through the core's plugin manager, with no clashes."""

import importlib

import pytest

import fakes  # noqa: F401  (makes ingressd_plugins importable)
from ingressd.plugin_manager import load_plugins

MODULES = ["allowlist", "basic_auth", "cors", "error_pages", "proxy_settings", "rate_limit", "rewrite", "access_log", "backend_protocol", "redirect", "upstream_headers", "response_headers", "snippets", "server_alias", "custom_headers", "affinity", "upstream_hash", "canary", "mirror", "ssl_passthrough", "auth_tls", "buffering", "load_balance", "ext_auth", "satisfy", "service_upstream", "ssl_ciphers", "block_lists", "global_headers", "global_rate_limit", "fastcgi", "compression", "opentelemetry", "gateway_filters"]


@pytest.fixture(scope="module")
def modules():
    return [importlib.import_module(f"ingressd_plugins.{name}") for name in MODULES]


def test_all_load_together_with_hooks_that_exist(modules):
    plugins = load_plugins(extra=modules, entry_points=False)  # check_pending: no misspelled hook
    owners = plugins.annotation_owners
    assert "basic_auth" in owners["auth-secret"]
    expected = {
        "auth-type", "auth-secret", "auth-secret-type", "auth-realm",
        "limit-rps", "limit-rpm", "limit-connections", "limit-burst-multiplier", "limit-allowlist", "limit-whitelist",
        "enable-cors", "cors-allow-origin", "cors-allow-methods", "cors-allow-headers", "cors-expose-headers",
        "cors-allow-credentials", "cors-max-age", "custom-http-errors", "default-backend",
        "proxy-connect-timeout", "proxy-read-timeout", "proxy-send-timeout", "proxy-body-size",
        "whitelist-source-range", "allowlist-source-range", "denylist-source-range",
    }
    assert expected <= set(owners)
    assert {o.name for o in plugins.options} >= {"limit-req-status-code", "limit-conn-status-code", "custom-http-errors"}


@pytest.mark.parametrize("name", MODULES + ["htpasswd"])
def test_module_docstring_names_its_job(name):
    module = importlib.import_module(f"ingressd_plugins.{name}")
    assert module.__doc__ and len(module.__doc__.splitlines()[0]) > 20


def test_every_annotation_is_described_and_its_default_is_hashable(modules):
    for module in modules:
        for annotation in getattr(module, "ingressd_annotations", list)():  # block_lists declares options only
            assert annotation.description, annotation.name
            hash(annotation.default)
