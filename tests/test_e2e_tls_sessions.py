"""End to end: TLS sessions resume for their own host name only (RFC 6066 §3), with openssl s_client.

The issue's reproduction: save a session for ``app.test`` (``-sess_out``), offer it for
another name (``-sess_in``): it must not be resumed, for TLS 1.2 (session id and ticket) and
TLS 1.3 (tickets); for the same name it must be.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

import certs
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    manifests = tmp_path_factory.mktemp("sessions")
    web = Backend("web")
    ca = certs.make_ca()
    objects = [INGRESS_CLASS, *service("web", [("http", 80, web.port)])]
    for host in ("app.test", "other.test"):
        leaf = certs.make_leaf(host, issuer=ca)
        objects.append(certs.secret_manifest("default", host, leaf.cert_pem, leaf.key_pem()))
        objects.append(ingress(host, [(host, [("/", "Prefix", "web", 80)])], tls=[{"hosts": [host], "secretName": host}]))
    write_manifests(manifests / "all.yaml", objects)
    proc = Ingressd(manifests)
    yield proc
    proc.stop()
    web.stop()


def s_client(port, name, version, *session_args, tickets=True):
    """One handshake and one HTTP/1.0 request (so TLS 1.3 tickets arrive before it ends);
    True when the session was reused."""
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", version, "-servername", name,
               "-ign_eof", *session_args]
    if not tickets:
        command.append("-no_ticket")
    done = subprocess.run(command, input=f"GET / HTTP/1.0\r\nHost: {name}\r\n\r\n".encode(),
                          capture_output=True, timeout=20)
    output = done.stdout.decode("latin-1")
    assert "HTTP/1.1 " in output, output[-2000:]  # answered (404 for a name no Ingress has)
    assert ("Reused," in output) != ("New," in output), output[-2000:]
    return "Reused," in output


@pytest.mark.parametrize("version, tickets", [("-tls1_2", True), ("-tls1_2", False), ("-tls1_3", True)])
def test_a_session_for_one_name_is_not_resumed_for_another(world, tmp_path, version, tickets):
    saved = tmp_path / "session.pem"
    assert not s_client(world.https_port, "app.test", version, "-sess_out", str(saved), tickets=tickets)
    assert s_client(world.https_port, "app.test", version, "-sess_in", str(saved), tickets=tickets)
    for other in ("other.test", "unknown.example"):
        assert not s_client(world.https_port, other, version, "-sess_in", str(saved), tickets=tickets), other
