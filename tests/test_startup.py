"""Start-up mistakes with the real ``twistd ingressd``: one line naming the option, exit status 2
for usage errors and 1 for a port in use, never a traceback; --config paths, --version, the
admin endpoint's defaults, --https-redirect-port end to end, and etc/demo.sh."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from twisted.python import usage

from backends import Backend
from harness import INGRESS_CLASS, ROOT, TWISTD, Ingressd, free_port, ingress, service, write_manifests

from ingressd import startup, tap

INGRESSD_CLI = str(Path(sys.executable).with_name("ingressd"))


def run_twistd(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([TWISTD, "-n", "--pidfile=", "ingressd", *args], cwd=str(cwd), capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line(result: subprocess.CompletedProcess, status: int, line: str) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == status, output
    assert result.stderr.splitlines() == [line], output
    assert "Usage:" not in output  # no help text with an error


# A quiet command line: nothing listens unless a test says so.
QUIET = ("--http", "", "--https", "", "--admin", "")


@pytest.fixture
def manifests(tmp_path) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir()
    return folder


# --- in process: the option parser ----------------------------------------------------------------


def parse(*args: str) -> dict:
    options = tap.Options()
    options.parseOptions(list(args))
    return options


def test_bare_port_is_tcp(manifests):
    options = parse("--manifests", str(manifests), "--http", "8080", "--https", "8443", "--admin", "9180")
    assert (options["http"], options["https"], options["admin"]) == ("tcp:8080", "tcp:8443", "tcp:9180")


def test_admin_defaults_to_loopback_with_routes(manifests):
    options = parse("--manifests", str(manifests))
    assert options["admin"] == "tcp:9180:interface=127.0.0.1"
    assert options["admin-routes"] is True
    assert parse("--manifests", str(manifests), "--admin-routes", "off")["admin-routes"] is False


def test_config_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    (folder / "manifests").mkdir(parents=True)
    (folder / "kube").write_text("")
    config = folder / "ingressd.yaml"
    config.write_text(yaml.safe_dump({"manifests": ["manifests"], "kubeconfig": "kube", "access-log": "access.log",
                                      "http": 8080, "https-redirect-port": 8443}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    options = parse("--config", str(config))
    assert options["manifests"] == [str(folder / "manifests")]
    assert options["kubeconfig"] == str(folder / "kube")
    assert options["access-log"] == str(folder / "access.log")
    assert options["http"] == "tcp:8080"
    assert options["https-redirect-port"] == 8443
    # given on the command line, a relative path is the current directory's
    with pytest.raises(usage.UsageError, match=r"^--manifests manifests: no such file or directory$"):
        parse("--manifests", "manifests")


def test_plugins_are_loaded_when_options_are_made_not_at_import():
    source = (ROOT / "ingressd" / "tap.py").read_text()
    assert "\nPLUGINS = " not in source
    assert tap.loaded_plugins() is not None
    assert "limit-req-status-code" in tap.Options()  # a plugin's option, with its default


# --- the real process -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("args,line", [
    (("--http", "tpc:80"),
     "ingressd: --http tpc:80: not a valid endpoint (Unknown endpoint type: 'tpc'); for example --http tcp:8080"),
    (("--https", "tcp:x"),
     "ingressd: --https tcp:x: not a valid endpoint (expected a number, got 'x'); for example --https tcp:8443"),
    (("--admin", "tcp:9180:iface=127.0.0.1"),
     "ingressd: --admin tcp:9180:iface=127.0.0.1: not a valid endpoint (got an unexpected keyword argument "
     "'iface'); for example --admin tcp:9180:interface=127.0.0.1"),
    (("--manifests", "/nonexistent"), "ingressd: --manifests /nonexistent: no such file or directory"),
    (("--kubeconfig", "/nonexistent/kubeconfig"),
     "ingressd: --kubeconfig /nonexistent/kubeconfig: no such file or directory"),
    (("--access-log", "/nonexistent/access.log"),
     "ingressd: --access-log /nonexistent/access.log: no such directory: /nonexistent"),
    (("--config", "/nonexistent/ingressd.yaml"), "ingressd: --config /nonexistent/ingressd.yaml: no such file"),
    (("--admin-routes", "maybe"), "ingressd: --admin-routes maybe: expected on or off"),
    (("--htp", "tcp:80"), "ingressd: option --htp not recognized"),
    (("--workers", "two"), "ingressd: --workers must be a whole number or auto"),
    (("--workers", "0"), "ingressd: --workers must be at least 1"),
])
def test_usage_errors_are_one_line_and_exit_2(manifests, args, line):
    result = run_twistd("--manifests", str(manifests), *QUIET, *args, cwd=manifests.parent)
    assert_one_line(result, 2, line)


@pytest.mark.slow
def test_missing_manifests_never_reports_ready(tmp_path):
    result = run_twistd("--manifests", "gone", *QUIET, cwd=tmp_path)
    assert_one_line(result, 2, "ingressd: --manifests gone: no such file or directory")
    assert "ready" not in result.stdout


@pytest.mark.slow
def test_config_with_unknown_keys_reports_them_all_without_help(manifests):
    config = manifests.parent / "ingressd.yaml"
    config.write_text(yaml.safe_dump({"manifests": ["manifests"], "htp": "tcp:80", "admn": "tcp:9180",
                                      "proxy-body-size": "1m"}, sort_keys=False))
    result = run_twistd("--config", str(config), *QUIET, cwd=manifests.parent)
    assert_one_line(result, 2, f"ingressd: --config {config}: unknown options 'htp', 'admn' "
                               "(twistd ingressd --help lists them)")


@pytest.mark.slow
def test_config_from_another_directory_reads_its_own_manifests(tmp_path, manifests):
    backend = Backend("web")
    try:
        write_manifests(manifests / "all.yaml", [
            INGRESS_CLASS, *service("web", [("http", 80, backend.port)]),
            ingress("web", [("web.test", [("/", "Prefix", "web", 80)])]),
        ])
        (manifests.parent / "ingressd.yaml").write_text(yaml.safe_dump({"manifests": ["manifests"]}))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        empty = elsewhere / "empty"
        empty.mkdir()
        # The harness's --manifests is an empty folder; the config file's own (relative) one serves.
        proc = Ingressd(empty, ["--config", str(manifests.parent / "ingressd.yaml")])
        try:
            assert proc.get("/", host="web.test").status == 200
        finally:
            proc.stop()
    finally:
        backend.stop()


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--http", "--https", "--admin"])
def test_address_in_use_is_one_line_and_exit_1(manifests, option):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoint = f"tcp:{port}:interface=127.0.0.1"
        result = run_twistd("--manifests", str(manifests), *QUIET, option, endpoint, cwd=manifests.parent)
    assert_one_line(result, 1, f"ingressd: {option} {endpoint}: cannot listen on 127.0.0.1:{port}: "
                               "Address already in use")


@pytest.mark.slow
def test_an_admin_address_in_use_with_workers_names_the_option_too(manifests):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoint = f"tcp:{port}:interface=127.0.0.1"
        result = run_twistd("--manifests", str(manifests), *QUIET, "--workers", "2", "--admin", endpoint,
                            cwd=manifests.parent)
    assert_one_line(result, 1, f"ingressd: --admin {endpoint}: cannot listen on 127.0.0.1:{port}: "
                               "Address already in use")


@pytest.mark.slow
def test_bare_port_serves(manifests):
    port = free_port()
    proc = Ingressd(manifests, ["--http", str(port)])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: nothing.test\r\nConnection: close\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 404")
    finally:
        proc.stop()


EXPECTED_VERSION_LINES = [
    f"ingressd {startup.version_text().splitlines()[0].split()[1]}",
    "Twisted ", "pyOpenSSL ", "Python ",
]


def _assert_versions(output: str) -> None:
    lines = output.splitlines()
    assert len(lines) == 4, output
    for line, start in zip(lines, EXPECTED_VERSION_LINES):
        assert line.startswith(start), output
    assert "OpenSSL" in lines[2]


@pytest.mark.slow
def test_version(tmp_path):
    result = run_twistd("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _assert_versions(result.stdout)
    result = subprocess.run([INGRESSD_CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    _assert_versions(result.stdout)


@pytest.mark.slow
def test_admin_routes_off_keeps_health_and_metrics(manifests):
    proc = Ingressd(manifests, ["--admin-routes", "off"])
    try:
        assert proc.admin("/routes")[0] == 404
        assert proc.admin("/")[0] == 404
        assert proc.admin("/healthz")[0] == 200
        assert proc.admin("/readyz")[0] == 200
        status, _, body = proc.admin("/metrics")
        assert status == 200 and b"ingressd_" in body
    finally:
        proc.stop()


@pytest.mark.slow
def test_https_redirect_port_in_the_location(manifests):
    backend = Backend("web")
    try:
        write_manifests(manifests / "all.yaml", [
            INGRESS_CLASS, *service("web", [("http", 80, backend.port)]),
            ingress("web", [("app.test", [("/", "Prefix", "web", 80)])],
                    annotations={"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}),
        ])
        proc = Ingressd(manifests, ["--https-redirect-port", "8443"])
        try:
            response = proc.get("/shop?x=1", host="app.test")
            assert response.status == 308
            assert response.headers["location"] == "https://app.test:8443/shop?x=1"
        finally:
            proc.stop()
    finally:
        backend.stop()


def test_demo_script_parses_and_installs_only_when_the_checkout_changed():
    script = ROOT / "etc" / "demo.sh"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    text = script.read_text()
    assert "pip install -q --upgrade pip" not in text
    assert '"$(cat "$stamp" 2>/dev/null)" != "$wanted"' in text  # the install is skipped when unchanged
    config = yaml.safe_load((ROOT / "etc" / "ingressd.yaml").read_text())
    assert config["https-redirect-port"] == 8443 and config["https"].startswith("tcp:8443")
    assert config["manifests"] == ["examples"]  # relative to etc/, where the file is
