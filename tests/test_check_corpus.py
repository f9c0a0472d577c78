"""``ingressd check`` on real-world ingress-nginx manifests (tests/fixtures/real-world/, each with
its public source in its first lines and in SOURCES.md): every report was read by eye once and is
kept as a golden file; the counts over the whole corpus are asserted.

Set INGRESSD_UPDATE_GOLDEN=1 to write the golden files anew (then read the diff)."""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from ingressd.compat.check import main
from ingressd.testing import restore_plugin_configuration

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "real-world"
GOLDEN = CORPUS / "golden"
FILES = sorted(CORPUS.glob("*.yaml"))
# As a migrating user runs it: the Ingresses ingress-nginx serves, class-less ones included
# (the older manifests predate IngressClass).
ARGS = ["--from", "ingress-nginx", "--watch-ingress-without-class"]


def check(path: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main([*ARGS, *extra, str(path.relative_to(ROOT))], stdout=out)
    return status, out.getvalue()


@pytest.fixture(autouse=True)
def _from_the_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # file names in the reports are relative to the checkout


@pytest.fixture(autouse=True)
def _plugins_as_they_were():
    """``ingressd check`` configures the installed plugins as the server does, with a Clock of
    its own: put them back as they were, or later tests build their routes with that clock."""
    yield
    restore_plugin_configuration()


def test_the_corpus_is_large_enough():
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_report_matches_its_golden_file(path):
    status, text = check(path)
    golden = GOLDEN / f"{path.stem}.txt"
    if os.environ.get("INGRESSD_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(f"exit status {status}\n{text}")
    assert f"exit status {status}\n{text}" == golden.read_text()


def test_counts_over_the_corpus():
    verdicts: Counter = Counter()
    blocking: Counter = Counter()
    lint: Counter = Counter()
    statuses: Counter = Counter()
    for path in FILES:
        status, text = check(path, "--output", "json")
        statuses[status] += 1
        document = json.loads(text)
        verdicts.update(item["verdict"] for item in document["ingresses"])
        blocking.update(name for item in document["ingresses"] for name in item["blocking_annotations"])
        lint.update(finding["code"] for finding in document["lint"])
    assert dict(verdicts) == EXPECTED_VERDICTS
    assert dict(statuses) == EXPECTED_STATUSES
    assert blocking.most_common(4) == EXPECTED_TOP_BLOCKING
    assert dict(lint) == EXPECTED_LINT


# Read off the reports once they had been reviewed (2026-12-06); a change here is a change in
# what ingressd serves of real manifests: say why in the commit.
EXPECTED_VERDICTS = {"served": 24, "served-with-differences": 11, "not-served": 15}
EXPECTED_STATUSES = {0: 20, 1: 23}  # two files hold only Ingresses of another class
EXPECTED_TOP_BLOCKING = [("server-snippet", 3), ("configuration-snippet", 2)]
EXPECTED_LINT = {"missing-tls-secret": 12, "missing-service": 4, "no-class": 7, "auth-without-tls": 3}
