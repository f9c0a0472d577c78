"""``ingressd check --to gateway-api`` on real-world ingress-nginx manifests
(tests/fixtures/real-world/): each conversion was read by eye once against the Ingress and its
annotations and is kept as a golden file (the YAML on standard output, the notes as comments,
the exit status first).

Set INGRESSD_UPDATE_GOLDEN=1 to write the golden files anew (then read the diff)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from ingressd.compat.check import main
from ingressd.testing import restore_plugin_configuration

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "real-world"
GOLDEN = ROOT / "tests" / "fixtures" / "to-gateway"
# A handful that together use every kind of mapping: canary weights and headers, capture-group
# rewrites in both idioms, gRPC, TLS with the HTTPS redirect, TLS passthrough (a TLSRoute), an auth that
# is lost, CORS, timeouts.
STEMS = [
    "01-ingress-nginx-grpc-fortune",
    "08-ingress-nginx-rewrite-capture-group",
    "09-ingress-nginx-app-root",
    "10-ingress-nginx-canary-weight-pair",
    "13-rook-ceph-dashboard-https",
    "15-argocd-ssl-passthrough",
    "17-aks-hello-world-rewrite",
    "19-kube-explorer-basic-auth",
    "31-eks-backend-cors",
    "41-containersolutions-fanout-v1beta1",
]


@pytest.fixture(autouse=True)
def _from_the_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.fixture(autouse=True)
def _plugins_as_they_were():
    yield
    restore_plugin_configuration()


def convert(stem: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(["--from", "ingress-nginx", "--watch-ingress-without-class", "--to", "gateway-api",
                   f"tests/fixtures/real-world/{stem}.yaml"], stdout=out)
    return status, out.getvalue()


@pytest.mark.parametrize("stem", STEMS)
def test_conversion_matches_its_golden_file(stem):
    status, text = convert(stem)
    golden = GOLDEN / f"{stem}.yaml"
    if os.environ.get("INGRESSD_UPDATE_GOLDEN"):
        golden.write_text(f"# exit status {status}\n{text}")
    assert f"# exit status {status}\n{text}" == golden.read_text()


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_corpus_file_converts_to_known_fields(path):
    from test_to_gateway_schema import unknown_fields
    import yaml

    status, text = convert(path.stem)
    assert status in (0, 1)
    for document in yaml.safe_load_all(text):
        if document is not None:
            assert unknown_fields(document) == []
