"""Mutation testing of the modules that guard the door (not collected by pytest).

    python tests/mutation.py                 # every target, a score each
    python tests/mutation.py routing htpasswd --show    # some targets, with the survivors' diffs
    python tests/mutation.py --changed origin/main      # the targets whose module changed since a commit
    python tests/mutation.py --stale --record           # the targets changed since their last pass (CI)
    python tests/mutation.py --list

Each target is one security-relevant module and the fast tests that guard it. For each, a
scratch copy of the checkout is made (the files git knows, plugins/ also copied as
ingressd_plugins/, the name the tests import), mutmut (3.x) mutates that one module there and
runs its tests against every mutant, and the script reads mutmut's verdicts. A mutant the
tests do not kill *survives*: either the tests miss a behaviour (write the test that fails
with the mutant: a table case of the behaviour, not of the mutant) or the mutant is
*equivalent*, behaving exactly like the original; then add it to tests/mutation-equivalent.txt
with a one-line reason. Mutants that only reword an exception or log message, or change the
case of a codec name, are set aside as equivalent by ``only_message_text``. The score is killed / (mutants - equivalent); each target must reach
TARGET_SCORE, or the script exits 1. Nothing here changes the checkout.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import difflib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = ROOT / "tests" / "mutation-equivalent.txt"
RECORD_FILE = ROOT / "tests" / "mutation-record.txt"
TARGET_SCORE = 0.90


@dataclass(frozen=True)
class Target:
    module: str  # path in the checkout
    tests: tuple[str, ...]  # the fast tests that guard it


# name → what is mutated and which fast tests must notice. Security-relevant modules only:
# path normalisation, routing, header filtering and the forwarding policy, the HTTP/1
# parser's framing, credentials,
# limits, address lists, TLS certificate selection, and the fail-closed annotation decisions.
TARGETS: dict[str, Target] = {
    "pathnorm": Target("ingressd/http/pathnorm.py", ("tests/test_pathnorm.py",)),
    "routing": Target("ingressd/config/routing.py", ("tests/test_routing.py", "tests/test_regex_routing.py",
                                                     "tests/test_conditional_routing.py", "tests/test_route_cache.py",
                                                     "tests/test_gateway_routing.py",
                                                     "tests/test_gateway_listener_scheme.py",
                                                     "tests/test_gateway_regex_paths.py",
                                                     "tests/test_routing_patch.py")),
    "regex_routing": Target("ingressd/config/regex_routing.py", ("tests/test_regex_routing.py",
                                                                 "tests/test_conditional_routing.py",
                                                                 "tests/test_gateway_regex_paths.py")),
    "headers": Target("ingressd/http/headers.py", ("tests/test_headers.py", "tests/test_http1.py",
                                              "tests/test_forwarded.py", "tests/test_configmap_http.py")),
    "forwarding": Target("ingressd/proxy/forwarding.py", ("tests/test_forwarding.py", "tests/test_forwarded.py",
                                                          "tests/test_real_ip.py")),
    "pyparser": Target("ingressd/http/pyparser.py", ("tests/test_pyparser.py",)),
    "htpasswd": Target("plugins/htpasswd.py", ("tests/test_plugin_htpasswd.py",)),
    "basic_auth": Target("plugins/basic_auth.py", ("tests/test_plugin_basic_auth.py", "tests/test_no_auth_locations.py")),
    "rate_limit": Target("plugins/rate_limit.py", ("tests/test_plugin_rate_limit.py", "tests/test_global_rate_limit.py",
                                                   "tests/test_limit_conn_zone_variable.py", "tests/test_replicas_hint.py")),
    "cidr": Target("plugins/_cidr.py", ("tests/test_plugin_allowlist.py", "tests/test_plugin_rate_limit.py")),
    "allowlist": Target("plugins/allowlist.py", ("tests/test_plugin_allowlist.py",)),
    "tls": Target("ingressd/tls/certificates.py", ("tests/test_tls.py", "tests/test_auth_tls.py",
                                                   "tests/test_tls_settings.py", "tests/test_configmap_tls.py",
                                                   "tests/test_configmap_tls_ocsp.py",
                                                   "tests/test_routing_patch.py", "tests/test_tls_incremental.py")),
    "compat": Target("ingressd/compat/assess.py", ("tests/test_compat.py",)),
}

_RESULT = re.compile(r"^\s*(\S+): (.+)$")
# mutmut's verdicts that mean the tests noticed the mutant
_KILLED = {"killed", "timeout", "segfault", "suspicious"}


@dataclass
class Outcome:
    name: str
    mutants: int
    killed: int
    equivalent: list[str]
    survivors: list[tuple[str, str]]  # (mutant, diff)
    seconds: float
    error: str = ""

    @property
    def score(self) -> float:
        counted = self.mutants - len(self.equivalent)
        return self.killed / counted if counted else 1.0


def scratch_copy() -> Path:
    """The checkout's files (tracked, and untracked ones git does not ignore) in a new folder."""
    work = Path(tempfile.mkdtemp(prefix="ingressd-mutation-"))
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.split(b"\0")
    for name in listed:
        if not name:
            continue
        source = ROOT / name.decode()
        if source.is_file():
            target = work / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # The tests import the built-in plugins as ingressd_plugins (the installed name): give
    # mutmut that folder to mutate, so the mutated module is the one the tests import.
    shutil.copytree(work / "plugins", work / "ingressd_plugins")
    return work


def _config(work: Path, target: Target) -> None:
    module = target.module
    if module.startswith("plugins/"):
        module = "ingressd_plugins/" + module.removeprefix("plugins/")
    config = configparser.ConfigParser()
    config["mutmut"] = {
        "source_paths": "\ningressd\ningressd_plugins",
        "only_mutate": "\n" + module,
        "pytest_add_cli_args_test_selection": "\n" + "\n".join(target.tests),
        "pytest_add_cli_args": "\n-p\nno:cacheprovider\n-p\nno:randomly\n-q",
    }
    (work / "mutants").exists() and shutil.rmtree(work / "mutants")
    with open(work / "setup.cfg", "w") as handle:
        config.write(handle)


def _mutmut(work: Path, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or "mutmut"
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # the copy under test is the scratch checkout mutmut runs in, not the installed one
    environment["INGRESSD_TEST_INSTALLED_ONLY"] = "1"
    return subprocess.run([mutmut, *args], cwd=work, capture_output=True, text=True, timeout=timeout,
                          env=environment)


def mutant_diffs(work: Path, target: Target) -> dict[str, str]:
    """Each mutant's changed lines (``-``/``+``), read from the mutated module mutmut wrote:
    every mutant is a copy of its function named ``…__mutmut_N`` beside ``…__mutmut_orig``."""
    module = target.module
    if module.startswith("plugins/"):
        module = "ingressd_plugins/" + module.removeprefix("plugins/")
    text = (work / "mutants" / module).read_text()
    lines = text.splitlines()
    sources: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "__mutmut_" in node.name:
            # The def line too (a mutant may change a default argument), without the name
            # that tells the copies apart.
            body = lines[node.lineno - 1:node.end_lineno]
            body[0] = body[0].replace(node.name, "FUNCTION", 1)
            sources[node.name] = body
    prefix = module.removesuffix(".py").replace("/", ".") + "."
    diffs = {}
    for name, lines in sources.items():
        if name.endswith("__mutmut_orig"):
            continue
        original = sources.get(re.sub(r"__mutmut_\d+$", "__mutmut_orig", name), [])
        changed = [line for line in difflib.unified_diff(original, lines, lineterm="", n=0)
                   if line.startswith(("-", "+")) and not line.startswith(("---", "+++"))]
        diffs[prefix + name] = "\n".join(changed)
    return diffs


def equivalent_key(mutant: str, diff: str) -> str:
    """A mutant's identity that survives renumbering: its function and the lines it changes."""
    function = re.sub(r"__mutmut_\d+$", "", mutant)
    return f"{function} {' '.join(' '.join(diff.split()).split())}"


# A line that only words an error or a log message: ``raise X("…")``, ``log.msg("…")``…
_MESSAGE_LINE = re.compile(r"^\s*(raise \w+\(|.*\b(log|_log|logger)\.\w+\()")
_STRING = re.compile(r"""[rbfu]*("[^"\\]*(?:\\.[^"\\]*)*"|'[^'\\]*(?:\\.[^'\\]*)*')|\bNone\b""", re.I)
_CODEC = re.compile(r"""\.(?:en|de)code\(\s*("[\w-]+"|'[\w-]+')""")


def only_message_text(diff: str) -> bool:
    """Equivalent by construction: the mutant changes nothing but the wording of an exception
    or log message (its strings, or None for them), or the case of a codec name (codecs are
    looked up case-insensitively). Counted with the equivalent mutants, never as killed."""
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+")]
    if not removed or len(removed) != len(added):
        return False
    for old, new in zip(removed, added):
        if _CODEC.sub(lambda m: m.group(0).lower(), old) == _CODEC.sub(lambda m: m.group(0).lower(), new):
            continue
        if _MESSAGE_LINE.match(old) and _STRING.sub("S", old) == _STRING.sub("S", new):
            continue
        return False
    return True


def load_equivalent() -> dict[str, str]:
    """tests/mutation-equivalent.txt: ``<key> ## <reason>`` per line (``#`` lines are comments)."""
    known: dict[str, str] = {}
    if EQUIVALENT_FILE.exists():
        for line in EQUIVALENT_FILE.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            key, _, reason = line.partition(" ## ")
            known[key.strip()] = reason.strip()
    return known


def run_target(name: str, work: Path, show: bool) -> Outcome:
    target = TARGETS[name]
    _config(work, target)
    started = time.monotonic()
    ran = _mutmut(work, "run")
    results = _mutmut(work, "results", "--all", "true")
    seconds = time.monotonic() - started
    verdicts = {}
    for line in results.stdout.splitlines():
        found = _RESULT.match(line)
        if found:
            verdicts[found.group(1)] = found.group(2).strip()
    if not verdicts:
        tail = "\n".join((ran.stdout + ran.stderr).splitlines()[-15:])
        return Outcome(name, 0, 0, [], [], seconds, error=f"mutmut produced no verdicts:\n{tail}")
    known = load_equivalent()
    diffs = mutant_diffs(work, target)
    killed = sum(1 for verdict in verdicts.values() if verdict in _KILLED)
    equivalent, survivors = [], []
    for mutant, verdict in sorted(verdicts.items()):
        if verdict in _KILLED:
            continue
        diff = diffs.get(mutant, "")
        if equivalent_key(mutant, diff) in known or only_message_text(diff):
            equivalent.append(mutant)
        else:
            survivors.append((f"{mutant} ({verdict})", diff if show else ""))
    return Outcome(name, len(verdicts), killed, equivalent, survivors, seconds)


def fingerprint(target: Target) -> str:
    """What a target's verdicts depend on: its module, its tests, and its lines of the
    equivalent list (a change elsewhere leaves it passing as it was)."""
    digest = hashlib.sha256()
    for path in (target.module, *target.tests):
        file = ROOT / path
        digest.update(str(path).encode() + b"\0" + (file.read_bytes() if file.exists() else b"") + b"\0")
    prefix = _dotted(target.module) + "."
    for key in sorted(key for key in load_equivalent() if key.startswith(prefix)):
        digest.update(key.encode() + b"\0")
    return digest.hexdigest()[:16]


def _dotted(module: str) -> str:
    """The module's name as mutmut names its mutants (plugins/ as ingressd_plugins)."""
    if module.startswith("plugins/"):
        module = "ingressd_plugins/" + module.removeprefix("plugins/")
    return module.removesuffix(".py").replace("/", ".")


def load_record() -> dict[str, str]:
    """tests/mutation-record.txt: the fingerprint of each target at its last passing run."""
    record = {}
    if RECORD_FILE.exists():
        for line in RECORD_FILE.read_text().splitlines():
            if line and not line.startswith("#"):
                name, value, *_ = line.split()
                record[name] = value
    return record


def write_record(outcomes: list["Outcome"]) -> None:
    record = load_record()
    notes = {}
    if RECORD_FILE.exists():
        for line in RECORD_FILE.read_text().splitlines():
            if line and not line.startswith("#"):
                notes[line.split()[0]] = line
    for outcome in outcomes:
        if not outcome.error and outcome.score >= TARGET_SCORE:
            record[outcome.name] = fingerprint(TARGETS[outcome.name])
            notes[outcome.name] = (f"{outcome.name} {record[outcome.name]} {outcome.score:.1%} "
                                   f"{time.strftime('%Y-%m-%d')}")
    lines = ["# tests/mutation.py --record: each target's fingerprint at its last passing run "
             "(--stale runs the targets whose fingerprint changed)"]
    lines += [notes[name] for name in TARGETS if name in notes]
    RECORD_FILE.write_text("\n".join(lines) + "\n")


def changed_targets(base: str) -> list[str]:
    names = subprocess.run(["git", "diff", "--name-only", base], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout.split()
    changed = set(names)
    return [name for name, target in TARGETS.items()
            if target.module in changed or changed & set(target.tests) or str(EQUIVALENT_FILE.relative_to(ROOT)) in changed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help=f"targets to run (default: all): {', '.join(TARGETS)}")
    parser.add_argument("--show", action="store_true", help="print each survivor's diff")
    parser.add_argument("--changed", metavar="BASE", help="only the targets whose module or tests changed since BASE")
    parser.add_argument("--stale", action="store_true",
                        help="only the targets whose module, tests or equivalent list changed since their "
                             "last recorded pass (tests/mutation-record.txt)")
    parser.add_argument("--record", action="store_true",
                        help="write the fingerprints of the targets that pass into tests/mutation-record.txt")
    parser.add_argument("--list", action="store_true", help="list the targets and their tests")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (to run mutmut show/browse there)")
    args = parser.parse_args(argv)
    if args.list:
        for name, target in TARGETS.items():
            print(f"{name:<11} {target.module:<24} {' '.join(target.tests)}")
        return 0
    names = args.targets or list(TARGETS)
    if args.stale:
        record = load_record()
        names = [name for name in names if record.get(name) != fingerprint(TARGETS[name])]
        if not names:
            print("mutation: every target passed as it is now (tests/mutation-record.txt)")
            return 0
    if args.changed:
        names = [name for name in changed_targets(args.changed) if name in names]
        if not names:
            print("mutation: no target changed")
            return 0
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    work = scratch_copy()
    outcomes = []
    try:
        for name in names:
            outcome = run_target(name, work, args.show)
            outcomes.append(outcome)
            _report(outcome, args.show)
    finally:
        if args.keep:
            print(f"scratch copy kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.record:
        write_record(outcomes)
    print()
    print(f"{'target':<11} {'mutants':>7} {'equiv.':>6} {'killed':>6} {'survived':>8} {'score':>6} {'seconds':>7}")
    failed = False
    for outcome in outcomes:
        low = outcome.error or outcome.score < TARGET_SCORE
        failed = failed or bool(low)
        print(f"{outcome.name:<11} {outcome.mutants:>7} {len(outcome.equivalent):>6} {outcome.killed:>6} "
              f"{len(outcome.survivors):>8} {outcome.score:>6.1%} {outcome.seconds:>7.0f}"
              + ("  < target" if low else ""))
    return 1 if failed else 0


def _report(outcome: Outcome, show: bool) -> None:
    print(f"== {outcome.name}: {outcome.score:.1%} ({outcome.killed} of {outcome.mutants - len(outcome.equivalent)} "
          f"killed, {len(outcome.equivalent)} equivalent, {outcome.seconds:.0f} s)")
    if outcome.error:
        print(outcome.error)
    for mutant, diff in outcome.survivors:
        print(f"  survived: {mutant}")
        if show and diff:
            print("    " + diff.replace("\n", "\n    "))


if __name__ == "__main__":
    sys.exit(main())
