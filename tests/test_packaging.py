"""What an installation provides: the twistd drop-in and the entry points of the plugins."""

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from harness import TWISTD

BUILT_IN = {"ssl_redirect", "cors", "rate_limit", "allowlist", "basic_auth", "proxy_settings", "error_pages", "rewrite", "access_log", "backend_protocol", "redirect", "upstream_headers", "response_headers", "snippets", "server_alias", "custom_headers", "affinity", "upstream_hash", "canary", "mirror", "ssl_passthrough", "auth_tls", "buffering", "load_balance", "ext_auth", "satisfy", "service_upstream", "ssl_ciphers", "block_lists", "global_headers", "global_rate_limit", "fastcgi", "compression", "opentelemetry", "gateway_filters"}


def test_twistd_lists_ingressd():
    result = subprocess.run([TWISTD, "--help"], capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 0
    assert any(line.split()[:1] == ["ingressd"] for line in result.stdout.splitlines()), result.stdout


def test_twistd_ingressd_help_and_a_usage_error():
    result = subprocess.run([TWISTD, "ingressd", "--help"], capture_output=True, text=True, timeout=60, cwd="/")
    assert "--manifests" in result.stdout and "--limit-req-status-code" in result.stdout
    result = subprocess.run([TWISTD, "-n", "ingressd"], capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode != 0 and "--manifests" in result.stdout + result.stderr


def test_built_in_plugins_are_entry_points():
    found = {ep.name: ep for ep in entry_points(group="ingressd")}
    assert BUILT_IN <= set(found)
    for name in BUILT_IN:
        module = found[name].load()
        assert module.__name__ == f"ingressd_plugins.{name}"


def test_no_init_in_the_dropin_folder():
    root = Path(__file__).resolve().parent.parent
    assert (root / "twisted" / "plugins" / "ingressd_plugin.py").exists()
    assert not (root / "twisted" / "__init__.py").exists()
    assert not (root / "twisted" / "plugins" / "__init__.py").exists()
    assert sys.version_info >= (3, 10)


def test_every_package_of_the_source_tree_is_installed():
    """A subpackage missing from pyproject's list would be absent from the wheel (and the tests
    import what pip installed)."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(path.parent.relative_to(root).parts) for path in (root / "ingressd").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
    import ingressd_plugins

    assert Path(ingressd_plugins.__file__).parent.name == "ingressd_plugins"  # installed, not the source folder
