"""FastCGI end to end: the real ``twistd ingressd`` in front of a real ``php-fpm``, curl as the client.

As ingress-nginx's e2e (test/e2e/annotations/fastcgi.go) and its fcgi-services guide: an Ingress
with ``backend-protocol: FCGI``, ``fastcgi-index`` and ``fastcgi-params-configmap`` (here
``SCRIPT_FILENAME``, which ingress-nginx does not set itself) reaches a PHP script that answers
the parameters it was given and the body it read.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from harness import INGRESS_CLASS, Ingressd, free_port, ingress, service, wait_for, write_manifests
from php_fpm import PhpFpm

from ingressd.proxy import fastcgi_records as records

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
FCGI = {N + "backend-protocol": "FCGI"}


def params_map(fpm, script="echo.php", extra=None):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fastcgi-params", "namespace": "default"},
            "data": {"SCRIPT_FILENAME": fpm.script(script), "APP_STAGE": "one", **(extra or {})}}


class RogueApplication:
    """A FastCGI application that misbehaves as its request's path says (the record reader's and
    the CGI head's refusals, end to end): it reads the request's records, then answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        reader = records.RecordReader(accepted=frozenset((records.BEGIN_REQUEST, records.PARAMS, records.STDIN)))
        params, done = b"", False
        with conn:
            conn.settimeout(20)
            while not done:
                data = conn.recv(65536)
                if not data:
                    return
                for kind, content in reader.feed(data):
                    if kind == records.PARAMS:
                        params += content
                    elif kind == records.STDIN and not content:
                        done = True
            path = dict(records.decode_params(params))[b"DOCUMENT_URI"]
            end = records.record(records.END_REQUEST, records.end_request_body(0))
            out = {
                b"/bad-version": b"\x02" + records.record(records.STDOUT, b"X: 1\r\n\r\n")[1:],
                b"/management-record": records.record(10, b"", request_id=0),
                b"/huge-head": records.record(records.STDOUT, b"X-Big: " + b"a" * 8000 + b"\r\n\r\n") + end,
                b"/overloaded": records.record(records.END_REQUEST,
                                               records.end_request_body(0, records.OVERLOADED)),
                b"/no-head": end,
                b"/truncated": records.record(records.STDOUT, b"Content-Type: text/plain\r\n\r\npart"),
                b"/fine": records.record(records.STDOUT, b"Status: 202\r\n\r\nfine") + end,
            }[path]
            conn.sendall(out)

    def stop(self):
        self.sock.close()


def objects(fpm, stage="one", rogue_port=None):
    with_params = {**FCGI, N + "fastcgi-index": "index.php", N + "fastcgi-params-configmap": "fastcgi-params"}
    slow_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "slow-params", "namespace": "default"},
                "data": {"SCRIPT_FILENAME": fpm.script("slow.php")}}
    return [
        INGRESS_CLASS,
        params_map(fpm, extra={"APP_STAGE": stage, "FROM_VARIABLES": "$request_method-$document_uri"}),
        slow_map,
        *service("php", [("fastcgi", 9000, fpm.port)]),
        *service("dead", [("fastcgi", 9000, free_port())]),
        ingress("php", [("php.test", [("/", "Prefix", "php", 9000)])],
                annotations={**with_params, N + "proxy-body-size": "16m"}),
        ingress("bare", [("bare.test", [("/", "Prefix", "php", 9000)])], annotations=FCGI),
        ingress("slow", [("slow.test", [("/", "Prefix", "php", 9000)])],
                annotations={**FCGI, N + "fastcgi-params-configmap": "slow-params", N + "proxy-read-timeout": "1"}),
        ingress("missing", [("missing.test", [("/", "Prefix", "php", 9000)])],
                annotations={**FCGI, N + "fastcgi-params-configmap": "absent"}),
        ingress("dead", [("dead.test", [("/", "Prefix", "dead", 9000)])], annotations=FCGI),
        *service("rogue", [("fastcgi", 9000, rogue_port or free_port())]),
        ingress("rogue", [("rogue.test", [("/", "Prefix", "rogue", 9000)])], annotations=FCGI),
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if shutil.which("curl") is None:
        pytest.fail("curl is needed (.ci/run installs it)")
    root = tmp_path_factory.mktemp("fastcgi")
    fpm = PhpFpm(root / "fpm")
    rogue = RogueApplication()
    manifests = root / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", objects(fpm, rogue_port=rogue.port))
    proc = Ingressd(manifests)
    proc.rogue_port = rogue.port
    yield proc, fpm, manifests
    proc.stop()
    fpm.stop()
    rogue.stop()


class Curl:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def curl(proc, host, path, *args, tmp: Path) -> Curl:
    tmp.mkdir(parents=True, exist_ok=True)
    head, body = tmp / "head", tmp / "body"
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "60", "-H", f"Host: {host}", "-D", str(head), "-o", str(body),
         "-w", "%{http_code}", *args, f"http://127.0.0.1:{proc.http_port}{path}"],
        capture_output=True, timeout=90)
    assert out.returncode == 0, out.stderr
    headers = {}
    for line in head.read_bytes().decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return Curl(int(out.stdout), headers, body.read_bytes() if body.exists() else b"")


def test_a_php_script_gets_nginx_fastcgi_params_and_the_configmaps(world, tmp_path):
    proc, fpm, _ = world
    answer = curl(proc, "php.test", "/shop/?id=7", "-H", "X-Tenant: acme", "-H", "Proxy: http://evil:1",
                  tmp=tmp_path)
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-powered-by"].startswith("PHP/")
    assert answer.headers["x-script"] == "echo"
    params = answer.json()["params"]
    assert params["SCRIPT_FILENAME"] == fpm.script("echo.php")
    assert params["SCRIPT_NAME"] == "/shop/index.php"  # fastcgi-index after a URI ending in /
    assert params["DOCUMENT_URI"] == "/shop/"
    assert params["REQUEST_URI"] == "/shop/?id=7"
    assert params["QUERY_STRING"] == "id=7"
    assert params["REQUEST_METHOD"] == "GET"
    assert params["REQUEST_SCHEME"] == "http" and "HTTPS" not in params
    assert params["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert params["SERVER_NAME"] == "php.test"
    assert params["SERVER_PORT"] == str(proc.http_port)
    assert params["SERVER_ADDR"] == "127.0.0.1"
    assert params["REMOTE_ADDR"] == "127.0.0.1" and int(params["REMOTE_PORT"]) > 0
    assert params["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert params["REDIRECT_STATUS"] == "200"
    assert params["HTTP_HOST"] == "php.test"
    assert params["HTTP_X_TENANT"] == "acme"
    assert "HTTP_PROXY" not in params  # httpoxy
    assert "HTTP_X_FORWARDED_FOR" not in params  # fastcgi_pass ignores proxy_set_header
    assert params["APP_STAGE"] == "one"
    assert params["FROM_VARIABLES"] == "GET-/shop/"
    assert answer.json()["post"] == []


def test_ingress_nginx_sets_no_script_filename_itself(world, tmp_path):
    proc, _, _ = world
    # php-fpm without SCRIPT_FILENAME: "Primary script unknown", its own 404 (as behind ingress-nginx)
    answer = curl(proc, "bare.test", "/index.php", tmp=tmp_path)
    assert answer.status == 404 and b"File not found" in answer.body


def test_a_form_post_and_a_large_body_reach_the_script_whole(world, tmp_path):
    proc, _, _ = world
    answer = curl(proc, "php.test", "/form.php", "--data", "name=ingressd&x=1", tmp=tmp_path / "form")
    assert answer.status == 200
    document = answer.json()
    assert document["post"] == {"name": "ingressd", "x": "1"}
    assert document["params"]["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert document["params"]["CONTENT_LENGTH"] == "17"
    assert document["params"]["REQUEST_METHOD"] == "POST"

    data = os.urandom(3 * 1024 * 1024 + 17)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(data)
    for extra in ((), ("-H", "Transfer-Encoding: chunked")):
        answer = curl(proc, "php.test", "/upload.php", "-H", "Content-Type: application/octet-stream",
                      "--data-binary", f"@{upload}", *extra, tmp=tmp_path / "upload")
        assert answer.status == 200, answer.body[:300]
        document = answer.json()
        assert document["length"] == len(data)
        assert document["sha256"] == hashlib.sha256(data).hexdigest()
        assert document["params"]["CONTENT_LENGTH"] == str(len(data))  # a chunked body: read whole, its length


def test_a_body_over_proxy_body_size_is_refused_before_php_sees_it(world, tmp_path):
    proc, _, _ = world
    upload = tmp_path / "big.bin"
    upload.write_bytes(b"x" * (17 * 1024 * 1024))
    answer = curl(proc, "php.test", "/upload.php", "--data-binary", f"@{upload}", tmp=tmp_path)
    assert answer.status == 413


def test_a_large_response_is_streamed_whole(world, tmp_path):
    proc, _, _ = world
    answer = curl(proc, "php.test", "/big.php?big=5000000", tmp=tmp_path)
    assert answer.status == 200
    assert answer.body == b"x" * 5000000
    assert answer.headers["content-type"] == "application/octet-stream"


def test_status_location_and_head_as_the_script_says(world, tmp_path):
    proc, _, _ = world
    assert curl(proc, "php.test", "/x.php?status=404", tmp=tmp_path / "a").status == 404
    assert curl(proc, "php.test", "/x.php?status=503", tmp=tmp_path / "b").status == 503
    moved = curl(proc, "php.test", "/x.php?location=/elsewhere", tmp=tmp_path / "c")
    assert moved.status == 302 and moved.headers["location"] == "/elsewhere"
    head = curl(proc, "php.test", "/x.php", "-I", tmp=tmp_path / "d")
    assert head.status == 200  # with -I, curl's output is the head alone: no body followed it
    assert head.body.endswith(b"\r\n\r\n") and b"params" not in head.body


def test_what_the_script_writes_to_stderr_is_logged(world, tmp_path):
    proc, _, _ = world
    assert curl(proc, "php.test", "/x.php?stderr=marker-7f3a", tmp=tmp_path).status == 200
    wait_for(lambda: "FastCGI sent in stderr" in proc.log() and "marker-7f3a" in proc.log(), "the stderr line")


def test_concurrent_requests_each_get_their_own_answer(world, tmp_path):
    proc, _, _ = world
    results = {}

    def one(index):
        results[index] = curl(proc, "php.test", f"/c.php?n={index}", tmp=tmp_path / str(index))

    threads = [threading.Thread(target=one, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(results) == list(range(16))
    for index, answer in results.items():
        assert answer.status == 200 and answer.json()["params"]["QUERY_STRING"] == f"n={index}"


def test_timeouts_dead_backends_and_missing_configmaps(world, tmp_path):
    proc, _, _ = world
    assert curl(proc, "slow.test", "/slow.php?seconds=4", tmp=tmp_path / "a").status == 504  # proxy-read-timeout 1
    assert curl(proc, "dead.test", "/index.php", tmp=tmp_path / "b").status == 502
    assert curl(proc, "missing.test", "/index.php", tmp=tmp_path / "c").status == 503


def test_a_configmap_change_applies_live_without_dropping_connections(world, tmp_path):
    proc, fpm, manifests = world
    connection = proc.connection(timeout=30)
    try:
        def stage():
            connection.request("GET", "/live.php", headers={"Host": "php.test"})
            response = connection.getresponse()
            assert response.status == 200
            return json.loads(response.read())["params"]["APP_STAGE"]

        assert stage() == "one"
        write_manifests(manifests / "all.yaml", objects(fpm, stage="two", rogue_port=proc.rogue_port))
        wait_for(lambda: stage() == "two", "the new fastcgi params", timeout=30)  # the same connection throughout
    finally:
        connection.close()
        # back as the module's other tests expect it (they may run after this one, in any order)
        write_manifests(manifests / "all.yaml", objects(fpm, rogue_port=proc.rogue_port))
        wait_for(lambda: proc.get("/live.php", host="php.test").json()["params"]["APP_STAGE"] == "one",
                 "the first fastcgi params again", timeout=30)


def test_http2_over_tls_tells_the_script_so(world, tmp_path):
    proc, _, _ = world
    out = subprocess.run(
        ["curl", "-sS", "-k", "--http2", "--max-time", "30", "--resolve", f"php.test:{proc.https_port}:127.0.0.1",
         "-w", "\n%{http_version}", f"https://php.test:{proc.https_port}/h2/?q=1"],
        capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    body, _, version = out.stdout.rpartition(b"\n")
    assert version == b"2"
    params = json.loads(body)["params"]
    assert params["SERVER_PROTOCOL"] == "HTTP/2.0"
    assert params["HTTPS"] == "on" and params["REQUEST_SCHEME"] == "https"
    assert params["SERVER_PORT"] == str(proc.https_port)
    assert params["SCRIPT_NAME"] == "/h2/index.php"


@pytest.mark.parametrize("path", ["/bad-version", "/management-record", "/huge-head", "/overloaded", "/no-head"])
def test_a_misbehaving_application_is_a_bad_gateway(world, tmp_path, path):
    proc, _, _ = world
    assert curl(proc, "rogue.test", path, tmp=tmp_path).status == 502
    assert curl(proc, "rogue.test", "/fine", tmp=tmp_path).status == 202  # each request its own connection


def test_an_application_that_closes_mid_body_drops_the_response(world):
    proc, _, _ = world
    connection = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=30)
    try:
        connection.request("GET", "/truncated", headers={"Host": "rogue.test"})
        response = connection.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead):  # never a complete-looking answer
            response.read()
    finally:
        connection.close()


def test_a_client_cannot_set_the_applications_parameters(world, tmp_path):
    proc, fpm, _ = world
    answer = curl(proc, "php.test", "/a.php", "-H", "Script-Filename: /etc/passwd", "-H", "Remote-Addr: 6.6.6.6",
                  "-H", "Proxy: http://evil.example:3128", tmp=tmp_path / "a")
    params = answer.json()["params"]
    assert params["SCRIPT_FILENAME"] == fpm.script("echo.php")
    assert params["HTTP_SCRIPT_FILENAME"] == "/etc/passwd"  # a header is only ever an HTTP_* parameter
    assert params["REMOTE_ADDR"] == "127.0.0.1"
    assert "HTTP_PROXY" not in params  # httpoxy
    # a header name with an underscore would pass for another's HTTP_* name: never passed
    underscored = curl(proc, "php.test", "/a.php", "-H", "X_Real_Ip: 6.6.6.6", tmp=tmp_path / "b")
    assert underscored.status == 400 or "HTTP_X_REAL_IP" not in underscored.json()["params"]
    # an encoded NUL cannot cut the script's name short (php's old "x.php%00.jpg")
    assert curl(proc, "php.test", "/index.php%00.jpg", tmp=tmp_path / "c").status == 400
