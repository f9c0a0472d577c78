"""TLS settings end to end with ``openssl s_client`` against the real ``twistd ingressd``:
``--ssl-ciphers``, ``--ssl-protocols``, and the ``ssl-ciphers`` annotation applying to its SNI host
only; a bad value is a one-line start-up error."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import certs
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests
from test_startup import QUIET, assert_one_line, run_twistd

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")]

N = "nginx.ingress.kubernetes.io/"
AES128 = "ECDHE-ECDSA-AES128-GCM-SHA256"
AES256 = "ECDHE-ECDSA-AES256-GCM-SHA384"
CHACHA = "ECDHE-ECDSA-CHACHA20-POLY1305"


def s_client(port: int, name: str, *args: str) -> tuple[bool, str]:
    """(whether the handshake completed, the cipher it settled on or the output)."""
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, *args],
                          input=b"", capture_output=True, timeout=20)
    output = done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")
    for line in output.splitlines():
        if line.startswith("New, TLSv") and ", Cipher is " in line:
            chosen = line.split(", Cipher is ", 1)[1].strip()
            return chosen != "(NONE)", chosen
    return False, output


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls-settings")
    manifests = root / "manifests"
    manifests.mkdir()
    web = Backend("web")
    ca = certs.make_ca()
    objects = [INGRESS_CLASS, *service("web", [("http", 80, web.port)])]
    annotations = {"strict.test": {N + "ssl-ciphers": AES256},
                   "client-order.test": {N + "ssl-ciphers": f"{CHACHA}:{AES128}",
                                         N + "ssl-prefer-server-ciphers": "false"},
                   "open.test": {}}
    for host, own in annotations.items():
        leaf = certs.make_leaf(host, issuer=ca)
        objects.append(certs.secret_manifest("default", host, leaf.cert_pem, leaf.key_pem()))
        objects.append(ingress(host, [(host, [("/", "Prefix", "web", 80)])],
                               tls=[{"hosts": [host], "secretName": host}], annotations=own))
    write_manifests(manifests / "all.yaml", objects)
    # server-wide: ChaCha20 and AES-128 (server's order), not AES-256
    proc = Ingressd(manifests, extra_args=["--ssl-ciphers", f"{CHACHA}:{AES128}"])
    only13 = Ingressd(manifests, extra_args=["--ssl-protocols", "TLSv1.3"])
    yield proc, only13
    proc.stop()
    only13.stop()
    web.stop()


def test_the_servers_cipher_list(world):
    proc, _ = world
    assert s_client(proc.https_port, "open.test", "-tls1_2", "-cipher", AES128) == (True, AES128)
    assert s_client(proc.https_port, "open.test", "-tls1_2", "-cipher", AES256)[0] is False
    # the server's order decides (prefer server ciphers: on, ingress-nginx's)
    assert s_client(proc.https_port, "open.test", "-tls1_2", "-cipher", f"{AES128}:{CHACHA}") == (True, CHACHA)


def test_a_hosts_cipher_list_applies_to_its_sni_name_only(world):
    proc, _ = world
    assert s_client(proc.https_port, "strict.test", "-tls1_2", "-cipher", AES256) == (True, AES256)
    assert s_client(proc.https_port, "strict.test", "-tls1_2", "-cipher", AES128)[0] is False
    assert s_client(proc.https_port, "open.test", "-tls1_2", "-cipher", AES256)[0] is False  # the server's


def test_a_hosts_cipher_preference(world):
    proc, _ = world
    assert s_client(proc.https_port, "client-order.test", "-tls1_2", "-cipher", f"{AES128}:{CHACHA}") == \
        (True, AES128)


def test_tls13_is_not_governed_by_the_cipher_list(world):
    proc, _ = world
    ok, chosen = s_client(proc.https_port, "strict.test", "-tls1_3")
    assert ok and chosen.startswith("TLS_"), chosen


def test_protocols(world):
    proc, only13 = world
    assert s_client(proc.https_port, "open.test", "-tls1_2")[0] is True
    assert s_client(proc.https_port, "open.test", "-tls1_3")[0] is True
    assert s_client(only13.https_port, "open.test", "-tls1_2")[0] is False
    assert s_client(only13.https_port, "strict.test", "-tls1_2", "-cipher", AES256)[0] is False
    ok, chosen = s_client(only13.https_port, "open.test", "-tls1_3")
    assert ok and chosen.startswith("TLS_")
    # and a request goes through
    response = subprocess.run(["curl", "-sk", "--tlsv1.3", "--resolve", f"open.test:{only13.https_port}:127.0.0.1",
                               f"https://open.test:{only13.https_port}/"], capture_output=True, timeout=20) \
        if shutil.which("curl") else None
    if response is not None:
        assert b'"backend": "web"' in response.stdout


@pytest.mark.parametrize("args, line", [
    (("--ssl-ciphers", "NOPE"), "ingressd: --ssl-ciphers: OpenSSL finds no cipher in 'NOPE'"),
    (("--ssl-protocols", "TLSv1 TLSv1.3"),
     "ingressd: --ssl-protocols: 'TLSv1 TLSv1.3' leaves a gap: give a contiguous range, e.g. TLSv1.2 TLSv1.3"),
    (("--ssl-session-timeout", "1.5h"),
     "ingressd: --ssl-session-timeout: '1.5h' is not a time such as 10m, 1h or 600 (seconds)"),
    (("--ssl-prefer-server-ciphers", "sometimes"),
     "ingressd: --ssl-prefer-server-ciphers sometimes: expected on or off"),
])
def test_a_bad_value_is_a_one_line_start_up_error(tmp_path, args, line):
    folder = tmp_path / "manifests"
    folder.mkdir()
    assert_one_line(run_twistd("--manifests", str(folder), *QUIET, *args, cwd=tmp_path), 2, line)
