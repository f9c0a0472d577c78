"""Never serve what we cannot honour: the real ``twistd ingressd`` refuses an Ingress whose
unsupported annotation would widen access or send traffic elsewhere, until an operator accepts
that explicitly, and keeps serving everything else."""

from __future__ import annotations

import io
import json

import pytest

from backends import Backend
from harness import INGRESS_CLASS, ROOT, Ingressd, ingress, service, write_manifests

from ingressd.compat.check import main

pytestmark = pytest.mark.slow

N = "nginx.ingress.kubernetes.io/"

# Copied from an ingress-nginx cluster: a web application firewall and a removed gRPC
# switch (its oauth2-proxy, client-certificate and global-rate-limit annotations are served now).
SECURE = {
    N + "enable-modsecurity": "true",
    N + "enable-owasp-core-rules": "true",
    N + "grpc-backend": "true",
}

# host → (annotations, served?): one annotation of each class.
CASES = {
    "secure.example": (SECURE, False),
    "waf.example": ({N + "enable-modsecurity": "true"}, False),  # narrows access
    "vhost.example": ({N + "secure-backends": "true"}, False),  # changes where traffic goes
    "canary.example": ({N + "canary": "true", N + "canary-weight": "50"}, False),  # no main Ingress: not served
    "snippet.example": ({N + "configuration-snippet": "deny all;\nauth_request /auth;"}, False),  # outside the subset
    "push.example": ({N + "enable-influxdb": "true"}, True),  # harmless: a warning
    "defaults.example": ({N + "backend-protocol": "HTTP", N + "proxy-buffering": "off",
                          N + "load-balance": "round_robin", N + "use-regex": "False"}, True),
    "accepted.example": ({**SECURE, "ingressd.io/ignore-annotations": "enable-modsecurity, grpc-backend"}, True),
}


def _objects(web):
    objects = [INGRESS_CLASS, *service("web", [("http", 80, web.port)])]
    for host, (annotations, _) in CASES.items():
        objects.append(ingress(host.split(".")[0], [(host, [("/", "Prefix", "web", 80)])], annotations=annotations))
    return objects


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-compat")
    manifests = root / "manifests"
    manifests.mkdir()
    web = Backend("web")
    write_manifests(manifests / "all.yaml", _objects(web))
    proc = Ingressd(manifests)
    yield proc, web, manifests
    proc.stop()
    web.stop()


def test_unhonoured_annotations_keep_their_ingress_unserved(world):
    proc, web, _ = world
    before = len(web.requests)
    for host, (_, served) in CASES.items():
        response = proc.get("/", host=host)
        assert response.status == (200 if served else 404), (host, response)
    served_hosts = [host for host, (_, served) in CASES.items() if served]
    assert len(web.requests) - before == len(served_hosts)  # the backend never saw the others
    seen = [dict((k.lower(), v) for k, v in headers)["host"] for _, _, headers, _ in web.requests[before:]]
    assert sorted(seen) == sorted(served_hosts)


def test_rejections_are_logged_listed_and_counted(world):
    proc, _, _ = world
    log = proc.log()
    line = next(line for line in log.splitlines() if "rejected: Ingress default/secure:" in line)
    assert "enable-modsecurity" in line and "grpc-backend" in line
    assert "--ignore-annotation enable-modsecurity" in line
    assert "enable-owasp-core-rules" not in line  # covered by enable-modsecurity, its switch
    assert any("warning: Ingress default/push:" in line and "enable-influxdb" in line for line in log.splitlines())
    assert any("warning: Ingress default/accepted:" in line and "ignored as the operator asked" in line
               for line in log.splitlines())

    status, _, body = proc.admin("/routes")
    document = json.loads(body)
    rejected = {item["name"]: item for item in document["rejections"] if item["kind"] == "Ingress"}
    assert set(rejected) == {host.split(".")[0] for host, (_, served) in CASES.items() if not served}
    assert rejected["secure"]["category"] == "unsupported"
    assert rejected["secure"]["annotations"] == ["enable-modsecurity", "grpc-backend"]
    status, _, body = proc.admin("/metrics")
    text = body.decode()
    assert 'ingressd_config_rejections{kind="Ingress",reason="unsupported"} 4.0' in text
    assert 'ingressd_config_rejections{kind="Ingress",reason="canary"} 1.0' in text


def test_an_operator_accepts_the_risk_controller_wide(world, tmp_path):
    _, web, manifests = world
    proc = Ingressd(manifests, ["--ignore-annotation", "enable-modsecurity",
                                "--ignore-annotation", "grpc-backend,satisfy"])
    try:
        assert proc.get("/", host="secure.example").status == 200
        assert proc.get("/", host="vhost.example").status == 404
        assert proc.get("/", host="canary.example").status == 404
        assert "--ignore-annotation enable-modsecurity: Ingresses with nginx.ingress.kubernetes.io/enable-modsecurity " \
            "are served" in proc.log()
    finally:
        proc.stop()


def test_ignoring_an_unknown_name_is_a_start_up_error(world, tmp_path):
    _, _, manifests = world
    for value, message in (("auth-urll", "not an ingress-nginx annotation"),):
        proc = Ingressd(manifests, ["--ignore-annotation", value], wait=False)
        assert proc.process.wait(20) != 0
        assert message in proc.log() and f"--ignore-annotation {value}" in proc.log()
        proc.stop()


def test_check_gives_the_answer_the_server_gives(tmp_path):
    """``ingressd check`` and ``twistd ingressd`` on the same manifests (the real-world corpus,
    read as one cluster) serve and refuse the same Ingresses."""
    corpus = ROOT / "tests" / "fixtures" / "real-world"
    args = ["--ingress-class", "nginx", "--watch-ingress-without-class"]
    proc = Ingressd(corpus, args, log_path=tmp_path / "ingressd.log")
    try:
        _, _, body = proc.admin("/routes")
    finally:
        proc.stop()
    document = json.loads(body)
    routed = {(r["ingress"]["namespace"], r["ingress"]["name"]) for r in document["routes"]}
    refused = {(r["namespace"], r["name"]) for r in document["rejections"] if r["kind"] == "Ingress"} - routed

    out = io.StringIO()
    main([*args, "--output", "json", str(corpus)], stdout=out)
    report = json.loads(out.getvalue())
    not_served = {(i["namespace"], i["name"]) for i in report["ingresses"] if i["verdict"] == "not-served"}
    served = {(i["namespace"], i["name"]) for i in report["ingresses"] if i["verdict"] != "not-served"}
    assert len(not_served) >= 15 and len(served) > 5  # 15 since FastCGI's Ingress is served
    assert not_served == refused
    with_rules = {key for key in served if key in routed}
    assert with_rules == served, served - routed  # every Ingress check calls served has routes
