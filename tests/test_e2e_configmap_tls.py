"""The ingress-nginx ConfigMap's TLS keys end to end, live, with ``openssl s_client`` against the
real ``twistd ingressd --nginx-configmap`` in file mode: applied at start from the manifests'
ConfigMap, changed by an edit for new handshakes while a TLS connection opened before the edit keeps
working, the ``ssl-ciphers`` annotation still applying to its host over the new server-wide list,
and a bad value refused with the previous settings kept."""

from __future__ import annotations

import base64
import http.client
import shutil
import socket
import ssl
import subprocess

import pytest

import certs
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, wait_for, write_manifests
from test_e2e_tls_settings import AES128, AES256, CHACHA, s_client

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")]

N = "nginx.ingress.kubernetes.io/"
CM = "ingress-nginx/ingress-nginx-controller"


def objects(web, ca, data, extra=()):
    found = [*extra, INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
             {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"}, "data": dict(data)}]
    for host, own in {"open.test": {}, "strict.test": {N + "ssl-ciphers": CHACHA}}.items():
        found.append(certs.secret_manifest("default", host, *ca[host]))
        found.append(ingress(host, [(host, [("/", "Prefix", "web", 80)])],
                             tls=[{"hosts": [host], "secretName": host}], annotations=own))
    return found


def pki(kind="ec"):
    ca = certs.make_ca()
    pairs = {}
    for host in ("open.test", "strict.test"):
        leaf = certs.make_leaf(host, issuer=ca, kind=kind)
        pairs[host] = (leaf.cert_pem, leaf.key_pem())
    return pairs


def https(port: int, host: str, ciphers: str = f"{AES128}:{AES256}") -> http.client.HTTPSConnection:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    # connected here, naming ``host`` in SNI (http.client would name 127.0.0.1, i.e. send none)
    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=host)
    return conn


def get(conn, host: str, path: str) -> int:
    conn.request("GET", path, headers={"Host": host})
    response = conn.getresponse()
    response.read()
    return response.status


def test_the_tls_keys_apply_at_start_and_live_without_dropping_a_connection(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    pairs = pki()
    # At start, from the manifests' ConfigMap: AES-128 only for TLS 1.2.
    write_manifests(manifests / "all.yaml", objects(web, pairs, {"ssl-ciphers": AES128}))
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    port = proc.https_port
    try:
        assert s_client(port, "open.test", "-tls1_2", "-cipher", AES128) == (True, AES128)
        assert s_client(port, "open.test", "-tls1_2", "-cipher", AES256)[0] is False
        assert s_client(port, "strict.test", "-tls1_2", "-cipher", CHACHA) == (True, CHACHA)  # the annotation's
        assert s_client(port, "strict.test", "-tls1_2", "-cipher", AES128)[0] is False

        # A long-lived connection opened before the edit, on AES-128.
        conn = https(port, "open.test")
        assert get(conn, "open.test", "/before") == 200
        assert conn.sock.cipher()[0] == AES128
        local = conn.sock.getsockname()

        write_manifests(manifests / "all.yaml", objects(web, pairs, {"ssl-ciphers": AES256}))
        wait_for(lambda: s_client(port, "open.test", "-tls1_2", "-cipher", AES256) == (True, AES256),
                 "the new cipher list")
        assert s_client(port, "open.test", "-tls1_2", "-cipher", AES128)[0] is False
        assert s_client(port, "strict.test", "-tls1_2", "-cipher", CHACHA) == (True, CHACHA)  # still its own
        assert s_client(port, "strict.test", "-tls1_2", "-cipher", AES256)[0] is False
        assert get(conn, "open.test", "/after-ciphers") == 200  # the old connection, untouched
        assert conn.sock.getsockname() == local and conn.sock.cipher()[0] == AES128

        # ssl-protocols: TLS 1.3 only, for new handshakes.
        write_manifests(manifests / "all.yaml", objects(web, pairs, {"ssl-ciphers": AES256,
                                                                     "ssl-protocols": "TLSv1.3"}))
        wait_for(lambda: s_client(port, "open.test", "-tls1_2")[0] is False, "TLS 1.2 refused")
        ok, chosen = s_client(port, "open.test", "-tls1_3")
        assert ok and chosen.startswith("TLS_"), chosen
        assert s_client(port, "strict.test", "-tls1_2", "-cipher", CHACHA)[0] is False  # the server's protocols
        assert get(conn, "open.test", "/after-protocols") == 200
        assert conn.sock.getsockname() == local and conn.sock.version() == "TLSv1.2"

        # A bad value refuses the ConfigMap: the previous settings keep serving.
        write_manifests(manifests / "all.yaml", objects(web, pairs, {"ssl-ciphers": "NO-SUCH-CIPHER",
                                                                     "ssl-protocols": "TLSv1.2"}))
        wait_for(lambda: "ConfigMap refused" in proc.log(), "the refusal")
        assert "key ssl-ciphers: OpenSSL finds no cipher in 'NO-SUCH-CIPHER'" in proc.log()
        assert s_client(port, "open.test", "-tls1_2")[0] is False
        assert s_client(port, "open.test", "-tls1_3")[0] is True
        assert get(conn, "open.test", "/after-refusal") == 200

        # The key removed: the option (ingress-nginx's defaults) again.
        write_manifests(manifests / "all.yaml", objects(web, pairs, {}))
        wait_for(lambda: s_client(port, "open.test", "-tls1_2", "-cipher", AES128) == (True, AES128),
                 "the defaults again")
        assert get(conn, "open.test", "/end") == 200
        conn.close()
    finally:
        proc.stop()
        web.stop()


def test_ssl_ecdh_curve_restricts_the_key_exchange_live(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    pairs = pki()
    write_manifests(manifests / "all.yaml", objects(web, pairs, {"ssl-ecdh-curve": "secp384r1"}))
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    port = proc.https_port
    try:
        for version in ("-tls1_2", "-tls1_3"):
            assert s_client(port, "open.test", version, "-groups", "X25519")[0] is False, version
            # (the client names P-256 too: in TLS 1.2 its groups also bound the ECDSA P-256 certificate)
            assert s_client(port, "open.test", version, "-groups", "X25519:secp384r1:prime256v1")[0] is True, version
            assert "Server Temp Key: ECDH, secp384r1" in s_client_output(port, "open.test", version)
        # a host with its own cipher list keeps the server's curve
        assert s_client(port, "strict.test", "-tls1_2", "-cipher", CHACHA, "-groups", "X25519")[0] is False

        write_manifests(manifests / "all.yaml", objects(web, pairs, {"ssl-ecdh-curve": "X25519:nope"}))
        wait_for(lambda: "ConfigMap refused" in proc.log(), "the refusal")
        assert "key ssl-ecdh-curve: 'nope': not a key-exchange group" in proc.log()
        assert s_client(port, "open.test", "-tls1_3", "-groups", "X25519")[0] is False  # the previous one

        write_manifests(manifests / "all.yaml", objects(web, pairs, {"ssl-ecdh-curve": "auto"}))
        wait_for(lambda: s_client(port, "open.test", "-tls1_3", "-groups", "X25519")[0], "auto again")
        assert "Server Temp Key: X25519" in s_client_output(port, "open.test", "-tls1_2")
    finally:
        proc.stop()
        web.stop()


def s_client_output(port: int, name: str, *args: str) -> str:
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, *args],
                          input=b"", capture_output=True, timeout=20)
    return done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")


DHE = "DHE-RSA-AES128-GCM-SHA256"


def dh_secret(name: str, pem: bytes) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "ingress-nginx", "name": name},
            "type": "Opaque", "data": {"dhparam.pem": base64.b64encode(pem).decode("ascii")}}


def test_ssl_dh_param_enables_the_dhe_suites_from_a_watched_secret(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    pairs = pki("rsa")  # DHE-RSA suites
    dh = subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048"],
                        capture_output=True, check=True, timeout=60).stdout
    write_manifests(manifests / "all.yaml", objects(web, pairs, {}))
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    port = proc.https_port
    try:
        assert s_client(port, "open.test", "-tls1_2", "-cipher", DHE)[0] is False  # no DH parameters: no DHE
        conn = https(port, "open.test", "ECDHE-RSA-AES128-GCM-SHA256")
        assert get(conn, "open.test", "/before") == 200
        assert conn.sock.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"

        with_dh = {"ssl-dh-param": "ingress-nginx/dhparam"}
        write_manifests(manifests / "all.yaml", objects(web, pairs, with_dh, [dh_secret("dhparam", dh)]))
        wait_for(lambda: s_client(port, "open.test", "-tls1_2", "-cipher", DHE) == (True, DHE), "DHE served")
        assert "Server Temp Key: DH, 2048 bits" in s_client_output(port, "open.test", "-tls1_2", "-cipher", DHE)
        assert get(conn, "open.test", "/after") == 200  # opened before the change: untouched

        # The Secret is watched: garbage in it refuses the ConfigMap, the parameters in use stay.
        write_manifests(manifests / "all.yaml", objects(web, pairs, with_dh, [dh_secret("dhparam", b"garbage")]))
        wait_for(lambda: "ConfigMap refused" in proc.log(), "the refusal")
        assert "key ssl-dh-param: dhparam.pem: OpenSSL refuses the DH parameters" in proc.log()
        assert s_client(port, "open.test", "-tls1_2", "-cipher", DHE) == (True, DHE)
        # a Secret that does not exist: refused too
        write_manifests(manifests / "all.yaml", objects(web, pairs, {"ssl-dh-param": "ingress-nginx/nope"}))
        wait_for(lambda: "Secret ingress-nginx/nope does not exist" in proc.log(), "the second refusal")
        assert s_client(port, "open.test", "-tls1_2", "-cipher", DHE) == (True, DHE)

        write_manifests(manifests / "all.yaml", objects(web, pairs, {}))  # the key removed: no DHE again
        wait_for(lambda: s_client(port, "open.test", "-tls1_2", "-cipher", DHE)[0] is False, "no DHE")
        assert get(conn, "open.test", "/end") == 200
        conn.close()
    finally:
        proc.stop()
        web.stop()


def test_ssl_reject_handshake_refuses_unknown_names_live(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    pairs = pki()
    plain = ingress("plain", [("plain.test", [("/", "Prefix", "web", 80)])])  # no TLS section
    write_manifests(manifests / "all.yaml", objects(web, pairs, {}, [plain]))
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    port = proc.https_port
    try:
        assert s_client(port, "unknown.test", "-tls1_3")[0] is True  # the default certificate
        conn = https(port, "open.test")
        assert get(conn, "open.test", "/before") == 200

        write_manifests(manifests / "all.yaml", objects(web, pairs, {"ssl-reject-handshake": "true"}, [plain]))
        wait_for(lambda: s_client(port, "unknown.test", "-tls1_3")[0] is False, "unknown names refused")
        for version in ("-tls1_2", "-tls1_3"):
            output = s_client_output(port, "unknown.test", version)
            assert "alert number 112" in output or "unrecognized name" in output, output
            assert s_client(port, "open.test", version)[0] is True
            assert s_client(port, "plain.test", version)[0] is True  # an Ingress host without TLS section
        nameless = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-noservername"],
                                  input=b"", capture_output=True, timeout=20)
        assert b"alert number 112" in nameless.stderr + nameless.stdout  # no name: refused too
        assert get(conn, "open.test", "/after") == 200  # opened before: untouched

        write_manifests(manifests / "all.yaml", objects(web, pairs, {}, [plain]))
        wait_for(lambda: s_client(port, "unknown.test", "-tls1_3")[0] is True, "served again")
        conn.close()
    finally:
        proc.stop()
        web.stop()


def test_enable_ocsp_staples_a_real_responders_answer(tmp_path):
    from harness import free_port
    from test_configmap_tls_ocsp import leaf_with_aia

    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    ca = certs.make_ca("ocsp e2e CA")
    ocsp_port = free_port()
    leaf = leaf_with_aia(ca, f"http://127.0.0.1:{ocsp_port}/", host="o.test")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "ca.key").write_bytes(ca.key_pem())
    expiry = leaf.cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    (tmp_path / "index.txt").write_text(f"V\t{expiry}\t\t{leaf.cert.serial_number:X}\tunknown\t/CN=o.test\n")
    responder = subprocess.Popen(
        ["openssl", "ocsp", "-index", str(tmp_path / "index.txt"), "-port", str(ocsp_port),
         "-rsigner", str(tmp_path / "ca.pem"), "-rkey", str(tmp_path / "ca.key"), "-CA", str(tmp_path / "ca.pem"),
         "-ndays", "1"], stdout=subprocess.DEVNULL, stderr=(tmp_path / "ocsp.log").open("wb"))

    def site(data):
        return [INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
                {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"}, "data": dict(data)},
                certs.secret_manifest("default", "o", leaf.cert_pem + ca.cert_pem, leaf.key_pem()),
                ingress("o", [("o.test", [("/", "Prefix", "web", 80)])], tls=[{"hosts": ["o.test"], "secretName": "o"}])]

    def reachable():  # (a connection closed without request would wedge openssl ocsp: its log says)
        return "waiting for OCSP client connections" in (tmp_path / "ocsp.log").read_text(errors="replace")

    proc = None
    try:
        wait_for(reachable, "the OCSP responder")
        write_manifests(manifests / "all.yaml", site({}))
        proc = Ingressd(manifests, ["--nginx-configmap", CM])
        port = proc.https_port
        assert "OCSP response: no response sent" in s_client_output(port, "o.test", "-status")  # off by default

        write_manifests(manifests / "all.yaml", site({"enable-ocsp": "true"}))
        stapled = wait_for(lambda: (lambda out: out if "OCSP Response Status: successful" in out else None)(
            s_client_output(port, "o.test", "-status")), "a stapled response", timeout=30)
        assert "Cert Status: good" in stapled and "Next Update:" in stapled
        for version in ("-tls1_2", "-tls1_3"):
            assert "Cert Status: good" in s_client_output(port, "o.test", "-status", version), version

        write_manifests(manifests / "all.yaml", site({}))
        wait_for(lambda: "OCSP response: no response sent" in s_client_output(port, "o.test", "-status"),
                 "stapling off again")
    finally:
        if proc is not None:
            proc.stop()
        responder.terminate()
        responder.wait(10)
        web.stop()


def test_cluster_mode_the_tls_keys_and_the_dh_param_secret_are_watched(tmp_path):
    import fakeapi

    web = Backend("web")
    (tmp_path / "manifests").mkdir()
    leaf = certs.make_leaf("app.example.com", kind="rsa")
    dh = subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048"],
                        capture_output=True, check=True, timeout=60).stdout
    api = fakeapi.FakeAPIServer(bookmark_interval=0.5).start()
    c = api.cluster
    c.apply(fakeapi.ingress_class())
    c.apply(fakeapi.service("web"))
    c.apply(fakeapi.endpoint_slice("web-1", "web", addresses=("127.0.0.1",), port=web.port))
    c.apply(fakeapi.secret("app-tls", data={"tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem()}))
    app = fakeapi.ingress("app", host="app.example.com", service="web")
    app["spec"]["tls"] = [{"hosts": ["app.example.com"], "secretName": "app-tls"}]
    c.apply(app)

    def configmap(data):
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"}, "data": dict(data)}

    c.apply(configmap({"ssl-protocols": "TLSv1.3"}))
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    proc = Ingressd(tmp_path / "manifests", ["--kubernetes", "--kubeconfig", kubeconfig, f"--configmap={CM}"])
    port = proc.https_port
    try:
        assert s_client(port, "app.example.com", "-tls1_2")[0] is False
        assert s_client(port, "app.example.com", "-tls1_3")[0] is True

        c.apply(fakeapi.secret("dh", namespace="ingress-nginx", type="Opaque", data={"dhparam.pem": dh}))
        c.apply(configmap({"ssl-dh-param": "ingress-nginx/dh"}))
        wait_for(lambda: s_client(port, "app.example.com", "-tls1_2", "-cipher", DHE) == (True, DHE), "DHE")

        # the Secret changes through the API: bad parameters are refused, the good ones stay
        c.apply(fakeapi.secret("dh", namespace="ingress-nginx", type="Opaque", data={"dhparam.pem": b"garbage"}))
        wait_for(lambda: "key ssl-dh-param: dhparam.pem: OpenSSL refuses" in proc.log(), "the refusal")
        assert s_client(port, "app.example.com", "-tls1_2", "-cipher", DHE) == (True, DHE)
        c.remove("Secret", "ingress-nginx", "dh")
        wait_for(lambda: "Secret ingress-nginx/dh does not exist" in proc.log(), "the second refusal")
        assert s_client(port, "app.example.com", "-tls1_2", "-cipher", DHE) == (True, DHE)
    finally:
        proc.stop()
        api.stop()
        web.stop()
