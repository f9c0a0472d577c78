"""``ingressd check``: what ingressd would do with a set of Kubernetes objects, Ingress by Ingress.

For users moving from ingress-nginx. It reads the same inputs as the server (manifest files and
folders, a stream on standard input, or the cluster, read-only), builds the configuration with
the server's own code (the store, the translators, the plugins, the certificate store: one
``Reloader`` rebuild on a clock that never runs) and says, for each Ingress: served as is,
served with differences (each named), or not served (why, and the flag that would accept it);
for each GatewayClass, Gateway, HTTPRoute and GRPCRoute of ingressd's controller: served,
partially served or not served, as the Gateway API source judged it (``check_gateway``);
then the classic mistakes ``ingressd.compat.lint`` finds and a summary. Nothing is served or executed.

Exit status: 0 when every Ingress would be served as is and every Gateway API object served,
1 when something would be served with differences, partially or not at all, 2 when the input
could not be read. With ``--to gateway-api``
(``ingressd.compat.to_gateway``) it prints the Ingresses as Gateway API objects instead: 0 when
everything was expressed, 1 when something could not be, 2 when the input could not be read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence, TextIO

import yaml
from twisted.python.usage import UsageError

from ingressd.compat import check_gateway
from ingressd.compat.catalogue import lookup
from ingressd.compat.assess import IGNORE_ANNOTATION, assess, same_value
from ingressd.features import INGRESSD_PREFIX, NGINX_PREFIX
from ingressd.providers.files import manifest_files, parse_manifest
from ingressd.compat.lint import Finding, lint
from ingressd.config.model import Config, ObjectRef, Rejection
from ingressd.config.store import KINDS, ObjectStore, object_key
from ingressd.config.translate import CONTROLLER, TranslateSettings, ingress_selector

JSON_VERSION = 1
INGRESS_NGINX_CLASS = "nginx"
INGRESS_NGINX_CONTROLLER = "k8s.io/ingress-nginx"

SERVED = "served"
DIFFERENCES = "served-with-differences"
NOT_SERVED = "not-served"
_TITLES = {SERVED: "served as is", DIFFERENCES: "served with differences", NOT_SERVED: "not served"}


class InputError(Exception):
    """The input could not be read (exit status 2); the message names the file and line."""


# -- reading ------------------------------------------------------------------------------


def read_paths(paths: Sequence[str]) -> tuple[list[dict], list[str]]:
    """Objects from files and folders (as ``--manifests`` reads them), and per-object problems."""
    objects: list[dict] = []
    problems: list[str] = []
    for path in paths:
        if not os.path.exists(path):
            raise InputError(f"{path}: no such file or folder")
    for path in manifest_files(paths):
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: {exc}") from None
        found, trouble = _parse(text, path)
        objects.extend(found)
        problems.extend(f"{path}: {problem}" for problem in trouble)
    return objects, problems


def read_stream(stream: TextIO, name: str = "<stdin>") -> tuple[list[dict], list[str]]:
    """Objects from a YAML or JSON stream (``kubectl get … -o yaml``)."""
    try:
        text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{name}: {exc}") from None
    found, trouble = _parse(text, name if not text.lstrip().startswith(("{", "[")) else name + ".json")
    return found, [f"{name}: {problem}" for problem in trouble]


def _parse(text: str, name: str) -> tuple[list[dict], list[str]]:
    try:
        return parse_manifest(text, name)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"{where}: not valid YAML: {problem}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{name.removesuffix('.json') if name.startswith('<') else name}:{exc.lineno}: "
                         f"not valid JSON: {exc.msg}") from None
    except ValueError as exc:
        raise InputError(f"{name}: {exc}") from None


def read_cluster(kubeconfig: str | None, namespace: str | None = None,
                 context: str | None = None) -> list[dict]:
    """Every object of the kinds ingressd reads, LISTed (read-only) from the API server."""
    from kubernetes.client import ApiClient
    from kubernetes.client.exceptions import ApiException

    from ingressd.providers.kube.config import load_configuration
    from ingressd.config.sources import KIND_SPECS
    from ingressd.providers.kube.reflector import slim
    from ingressd.providers.kube.rest import KubeRest, api_version, namespaced

    try:
        configuration = load_configuration(kubeconfig, context)
    except Exception as exc:  # the loader raises several kinds (ConfigException, OSError…)
        raise InputError(f"--kubernetes: cannot load the cluster configuration: {exc}") from None
    rest = KubeRest(ApiClient(configuration))
    objects: list[dict] = []
    # What the sources of routes read (the Gateway API kinds only where their CRDs are installed).
    for spec in KIND_SPECS:
        kind = spec.kind
        token = None
        while True:
            query: dict[str, Any] = {"limit": 500}
            if token:
                query["continue"] = token
            try:
                response = rest.list(kind, namespace if namespaced(kind) else None, query=query, timeout=30)
                body = json.loads(response.data)
            except ApiException as exc:
                if exc.status == 404 and spec.optional:
                    break  # the API (a CRD) is not installed: none of them
                raise InputError(f"--kubernetes: listing {kind}: {exc.status} {exc.reason}") from None
            except Exception as exc:  # connection refused, TLS, timeouts (urllib3's own kinds)
                raise InputError(f"--kubernetes: listing {kind}: {exc}") from None
            for item in body.get("items") or []:
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", api_version(kind))
                objects.append(slim(item, kind))
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                break
    return objects


# -- evaluating ---------------------------------------------------------------------------


@dataclass
class Verdict:
    """What ingressd would do with one Ingress."""

    ref: ObjectRef
    hosts: tuple[str, ...]
    verdict: str = SERVED
    reasons: list[str] = field(default_factory=list)  # why it is not served
    blocking: list[str] = field(default_factory=list)  # annotations (names) that keep it unserved
    accept_with: list[str] = field(default_factory=list)  # flags that would accept the risk
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # not differences from ingress-nginx


@dataclass
class Report:
    verdicts: list[Verdict]
    findings: list[Finding]
    problems: list[str]  # objects in the input that could not be used
    other_class: int  # Ingresses of another class, left out
    gateway: check_gateway.GatewayReport = field(default_factory=lambda: check_gateway.GatewayReport([], 0))

    @property
    def exit_status(self) -> int:
        return 0 if all(v.verdict == SERVED for v in self.verdicts) and all(
            v.verdict == check_gateway.SERVED for v in self.gateway.verdicts) else 1


def check_settings(ingress_class: str | None = None, from_ingress_nginx: bool = False,
                   **flags: Any) -> TranslateSettings:
    """The translator's settings for a check: ``--from ingress-nginx`` takes the Ingresses of
    class ``nginx`` and those of IngressClasses whose controller is ingress-nginx's."""
    if from_ingress_nginx:
        return TranslateSettings(ingress_class=ingress_class or INGRESS_NGINX_CLASS,
                                 controllers=(INGRESS_NGINX_CONTROLLER,), **flags)
    return TranslateSettings(ingress_class=ingress_class or "ingressd", controllers=(CONTROLLER,), **flags)


def evaluate(objects: Sequence[Mapping], translate_settings: TranslateSettings, plugins=None,
             problems: Sequence[str] = (), now: float | None = None,
             server_settings: Mapping[str, Any] | None = None) -> Report:
    """Build the configuration the server would build from ``objects`` and judge each Ingress."""
    problems = list(problems)
    objects = _last_of_each(objects, problems)
    config, snapshot, plugins = build_config(objects, translate_settings, plugins, server_settings)
    selected = ingress_selector(snapshot, translate_settings)
    ingresses = sorted((o for o in objects if o.get("kind") == "Ingress"), key=object_key)
    index = ConfigIndex(config)
    problems.extend(f"{r.ref}: {r.reason}" for r in config.rejections + config.warnings if r.ref.kind == "ConfigMap")
    owned = frozenset(plugins.annotation_owners) if plugins else frozenset()

    verdicts: list[Verdict] = []
    other = 0
    for ingress in ingresses:
        if not selected(ingress):
            other += 1
            continue
        verdicts.append(verdict_for(ingress, index, translate_settings, owned))
    findings = lint(objects, selected, now)
    return Report(verdicts, findings, problems, other, check_gateway.judge(objects, config))


class ConfigIndex:
    """A built configuration by Ingress: which are served, their rejections and warnings."""

    def __init__(self, config: Config):
        self.served = {route.ingress for route in config.routes}
        if config.default_backend is not None:
            self.served.add(config.default_backend.ingress)
        self.rejected: dict[ObjectRef, list[Rejection]] = {}
        for rejection in config.rejections:
            self.rejected.setdefault(rejection.ref, []).append(rejection)
        self.warned: dict[ObjectRef, list[Rejection]] = {}
        for warning in config.warnings:
            self.warned.setdefault(warning.ref, []).append(warning)
        # The ingress-nginx ConfigMap (--nginx-configmap): refused with none applied, nothing is served.
        self.configmap_refused = [r.reason for r in config.rejections if r.ref.kind == "ConfigMap"]
        self.nothing_served = bool(self.configmap_refused) and config.nginx_configmap is None


def verdict_for(ingress: Mapping, index: ConfigIndex, translate_settings: TranslateSettings,
                owned: frozenset[str]) -> Verdict:
    """What ingressd does with ``ingress`` (one of the selected class) in the configuration
    ``index`` describes; ``owned``: the annotations the plugins own. The verdict ``ingressd
    check`` prints, and the validating webhook (``ingressd.admission``) answers with."""
    namespace, name = object_key(ingress)
    ref = ObjectRef("Ingress", namespace, name)
    verdict = Verdict(ref, _hosts(ingress))
    if index.nothing_served:
        verdict.verdict = NOT_SERVED
        verdict.reasons.extend(f"the ingress-nginx ConfigMap is refused: {reason}" for reason in index.configmap_refused)
    for rejection in index.rejected.get(ref, ()):
        if ref in index.served:  # the Ingress is served: a part of it was not (a TLS Secret…)
            verdict.notes.append(rejection.reason)
            continue
        verdict.verdict = NOT_SERVED
        if rejection.annotations:  # one line per annotation, as assess judged each
            raw = {str(k): str(v) for k, v in ((ingress.get("metadata") or {}).get("annotations") or {}).items()}
            blocking = [p for p in assess(raw, owned, translate_settings.ignore_annotations) if p.blocking]
            verdict.reasons.extend(p.reason for p in blocking) if blocking else verdict.reasons.append(
                rejection.reason)
        else:
            verdict.reasons.append(rejection.reason)
        for annotation in rejection.annotations:
            verdict.blocking.append(annotation)
            entry = lookup(annotation)
            if entry is not None and entry.ignorable:
                verdict.accept_with.append(f"--ignore-annotation {annotation}")
    for warning in index.warned.get(ref, ()):
        (verdict.differences if warning.annotations else verdict.notes).append(warning.reason)
    if verdict.verdict == SERVED:
        verdict.differences.extend(_strict_path_differences(ingress))
        if verdict.differences:
            verdict.verdict = DIFFERENCES
    return verdict


def _last_of_each(objects: Sequence[Mapping], problems: list[str]) -> list[Mapping]:
    """One object per kind, namespace and name, the last one read (as the server's store keeps
    it); the others are reported."""
    last: dict[tuple[str, str, str], Mapping] = {}
    for obj in objects:
        key = (str(obj.get("kind")), *object_key(obj))
        if key in last:
            problems.append(f"{key[0]} {key[1]}/{key[2]} is given more than once; the last one is used")
        last[key] = obj
    return list(last.values())


def build_config(objects: Sequence[Mapping], translate_settings: TranslateSettings, plugins=None,
                 server_settings: Mapping[str, Any] | None = None) -> tuple[Config, Mapping, Any]:
    """The configuration ``twistd ingressd`` would serve for ``objects``: the server's store,
    reloader, plugins and certificate store, rebuilt once, synchronously. ``server_settings``:
    the server's options as ``server_settings()`` reads them (default: all at their defaults)."""
    from twisted.internet.task import Clock

    from ingressd.config.reloader import Reloader, State
    from ingressd.tls.certificates import CertificateStore

    settings = dict(server_settings if server_settings is not None else server_settings_from(()))
    clock = Clock()  # never advanced: nothing scheduled runs, nothing listens or connects
    if plugins is None:
        from ingressd.plugin_manager import load_plugins

        plugins = load_plugins(disabled=settings.get("disable_plugin") or ())
    plugins.configure(settings, clock)
    store = ObjectStore()
    state = State()
    reloader = Reloader(store, state, clock, plugins, translate_settings=translate_settings, settings=settings)
    reloader.appliers.append(CertificateStore().update)
    for kind in KINDS:
        store.replace("check", kind, [o for o in objects if o.get("kind") == kind])
    store.set_synced("check")
    reloader.rebuild()
    reloader.stop()
    return state.config, store.snapshot(), plugins


def server_settings_from(args: Sequence[str]) -> dict[str, Any]:
    """The server's options (plugins' included) as ``twistd ingressd`` reads ``args`` (its
    validation included: a bad value raises UsageError), as plugins receive them."""
    from ingressd.tap import Options, settings_from

    options = Options()
    options.parseOptions(["--manifests", os.devnull, *args])
    return settings_from(options)


def _hosts(ingress: Mapping) -> tuple[str, ...]:
    rules = (ingress.get("spec") or {}).get("rules") or []
    return tuple(dict.fromkeys(str(rule.get("host") or "*") for rule in rules if isinstance(rule, dict)))


# ingress-nginx's strict-validate-path-type (on by default since v1.12): an Exact or Prefix path
# of other characters rejects the whole Ingress there (internal/ingress/inspector/rules.go).
_STRICT_PATH = re.compile(r"/[A-Za-z0-9._\-/]*")


def _strict_path_differences(ingress: Mapping) -> list[str]:
    found = []
    for rule in (ingress.get("spec") or {}).get("rules") or []:
        if not isinstance(rule, dict):
            continue
        for path in ((rule.get("http") or {}).get("paths") or []):
            text = str(path.get("path") or "")
            kind = path.get("pathType")
            if text and kind in ("Exact", "Prefix") and not _STRICT_PATH.fullmatch(text):
                found.append(f"path {text} ({kind}): ingress-nginx (strict-validate-path-type, on by default since "
                             "v1.12) refuses the whole Ingress for characters other than letters, digits, . _ - /; "
                             "ingressd serves the path as written")
    return found


# -- reporting ----------------------------------------------------------------------------


def summary(report: Report) -> dict[str, Any]:
    counts = Counter(v.verdict for v in report.verdicts)
    blocking = Counter(name for v in report.verdicts for name in dict.fromkeys(v.blocking))
    return {
        "ingresses": len(report.verdicts),
        "served": counts[SERVED],
        "served_with_differences": counts[DIFFERENCES],
        "not_served": counts[NOT_SERVED],
        "other_class": report.other_class,
        "blocking_annotations": [{"annotation": name, "ingresses": count}
                                 for name, count in sorted(blocking.items(), key=lambda item: (-item[1], item[0]))],
        "lint": dict(sorted(Counter(f.code for f in report.findings).items())),
    }


def to_json(report: Report) -> dict[str, Any]:
    """The documented, stable shape of ``--output json`` (docs/migrating.md); ``gateway_api``
    (and its summary) only when the input holds Gateway API objects."""
    document = {
        "version": JSON_VERSION,
        "ingresses": [
            {"namespace": v.ref.namespace, "name": v.ref.name, "hosts": list(v.hosts), "verdict": v.verdict,
             "reasons": v.reasons, "blocking_annotations": list(dict.fromkeys(v.blocking)),
             "accept_with": list(dict.fromkeys(v.accept_with)), "differences": v.differences, "notes": v.notes}
            for v in report.verdicts
        ],
        "lint": [{"namespace": f.ref.namespace, "name": f.ref.name, "code": f.code, "message": f.message}
                 for f in report.findings],
        "problems": report.problems,
        "summary": summary(report),
    }
    if report.gateway:
        document["gateway_api"] = check_gateway.to_json(report.gateway)
        document["summary"]["gateway_api"] = check_gateway.summary(report.gateway)
    return document


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def to_text(report: Report) -> str:
    """A readable report: a table of Ingresses, the details, the lint findings, a summary."""
    lines: list[str] = []
    rows = [(f"{v.ref.namespace}/{v.ref.name}", _cut(", ".join(v.hosts) or "*", 48), _TITLES[v.verdict])
            for v in report.verdicts]
    if rows:
        widths = [max(len(row[i]) for row in rows + [("INGRESS", "HOSTS", "VERDICT")]) for i in range(2)]
        lines.append(f"{'INGRESS':<{widths[0]}}  {'HOSTS':<{widths[1]}}  VERDICT")
        lines.extend(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows)
    elif not report.gateway.verdicts:
        lines.append("No Ingress of the selected class in the input.")
    if report.gateway.verdicts:
        if rows:
            lines.append("")
        lines.extend(check_gateway.table_lines(report.gateway, _cut))
    lines.extend(check_gateway.detail_lines(report.gateway))
    for v in report.verdicts:
        if v.verdict == SERVED and not v.notes:
            continue
        lines.append("")
        lines.append(f"{v.ref.namespace}/{v.ref.name}: {_TITLES[v.verdict]}")
        lines.extend(f"  - {reason}" for reason in v.reasons)
        lines.extend(f"  - {difference}" for difference in v.differences)
        lines.extend(f"  - note: {note}" for note in v.notes)
    if report.findings:
        lines.append("")
        lines.append("Mistakes found (each in the Ingress named):")
        lines.extend(f"  - {f.ref.namespace}/{f.ref.name} [{f.code}]: {f.message}" for f in report.findings)
    if report.problems:
        lines.append("")
        lines.append("Objects in the input that could not be used:")
        lines.extend(f"  - {problem}" for problem in report.problems)
    facts = summary(report)
    lines.append("")
    lines.append(f"Summary: {facts['ingresses']} Ingress(es): {facts['served']} served as is, "
                 f"{facts['served_with_differences']} served with differences, {facts['not_served']} not served"
                 + (f"; {facts['other_class']} of another class left out" if facts["other_class"] else ""))
    if report.gateway:
        lines.append(check_gateway.summary_line(report.gateway))
    if facts["blocking_annotations"]:
        lines.append("Annotations that keep Ingresses from being served (by how many they block):")
        lines.extend(f"  {item['ingresses']:>4}  {NGINX_PREFIX}{item['annotation']}"
                     for item in facts["blocking_annotations"])
    if facts["lint"]:
        lines.append("Mistakes: " + ", ".join(f"{code} {count}" for code, count in facts["lint"].items()))
    return "\n".join(lines) + "\n"


# -- the command --------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ingressd check",
        description="Say what ingressd would do with each Ingress (served as is, served with differences, "
                    "not served) and each Gateway API object (served, partially served, not served) and find "
                    "classic mistakes, without serving anything.",
        epilog="Exit status: 0 everything served as is, 1 something served with differences or not at all, "
               "2 the input could not be read, 3 the Redis of --redis cannot be used (over 1); with --to gateway-api: 0 "
               "everything expressed, 1 something could not be, 2 the input could not be read. Example: kubectl get ingress,ingressclass,service,"
               "endpointslice,secret -A -o yaml | ingressd check --from ingress-nginx -")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="manifest files or folders (as --manifests reads them); - for standard input")
    p.add_argument("--kubernetes", action="store_true", help="read the cluster (LIST only, nothing is written)")
    p.add_argument("--kubeconfig", help="kubeconfig file for --kubernetes (default: in-cluster, $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context for --kubernetes")
    p.add_argument("--namespace", help="with --kubernetes: read only this namespace")
    p.add_argument("--from", dest="source", choices=["ingress-nginx"],
                   help="take the Ingresses ingress-nginx serves today: class nginx, or an IngressClass whose "
                        f"controller is {INGRESS_NGINX_CONTROLLER}")
    p.add_argument("--ingress-class", help="the IngressClass name to check (default: ingressd; nginx with --from)")
    p.add_argument("--gateway-controller-name", metavar="NAME",
                   help="as the server option: the controllerName of the GatewayClasses to check (default "
                        "ingressd.io/gateway-controller)")
    p.add_argument("--watch-ingress-without-class", action="store_true",
                   help="also take Ingresses that name no class, as the server option does")
    p.add_argument("--allow-cross-namespace-resources", action="store_true",
                   help="as the server option: annotations may name Secrets and Services in other namespaces")
    p.add_argument("--ignore-annotation", action="append", default=[], metavar="NAME",
                   help="as the server option: serve although this annotation is ignored (repeatable)")
    p.add_argument("--disable-plugin", action="append", default=[], metavar="NAME",
                   help="as the server option: check without this plugin (repeatable)")
    p.add_argument("--enable-ssl-passthrough", action="store_true",
                   help="as the server option: Ingresses with ssl-passthrough are served (without it they are not)")
    p.add_argument("--nginx-configmap", "--configmap", metavar="NAMESPACE/NAME",
                   help="as the server option: the ingress-nginx ConfigMap (in the input) to apply")
    p.add_argument("--redis", metavar="URL",
                   help="as the server option (global limits are then served); and check that Redis: the "
                        "connection, AUTH, a master, the decision scripts load, the round trip of a few PINGs "
                        "(one line per finding; may be given without PATH)")
    p.add_argument("--redis-timeout", type=float, default=0.005, metavar="SECONDS",
                   help="as the server option: the round trip the PINGs are compared with (default 0.005)")
    p.add_argument("--output", choices=["table", "json"], default="table", help="table (default) or json")
    p.add_argument("--to", dest="to", choices=["gateway-api"],
                   help="print the selected Ingresses as Gateway API objects (YAML: a GatewayClass, a Gateway per "
                        "namespace, HTTPRoutes) instead of the report; what cannot be expressed is listed on "
                        "standard error and as YAML comments (exit status 1 when something could not be)")
    return p


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    out = stdout or sys.stdout
    if not args.paths and not args.kubernetes and not args.redis:
        parser().print_usage(sys.stderr)
        print("ingressd check: give PATH… (or - for standard input), --kubernetes or --redis URL", file=sys.stderr)
        return 2
    server_args: list[str] = []
    for name in args.ignore_annotation:
        server_args += ["--ignore-annotation", name]
    for name in args.disable_plugin:
        server_args += ["--disable-plugin", name]
    if args.enable_ssl_passthrough:
        server_args.append("--enable-ssl-passthrough")
    if args.nginx_configmap:
        server_args += ["--nginx-configmap", args.nginx_configmap]
    if args.redis:
        server_args += ["--redis", args.redis, "--redis-timeout", str(args.redis_timeout)]
    try:
        server_settings = server_settings_from(server_args)  # the server's own validation of the flags
        objects: list[dict] = []
        problems: list[str] = []
        files = [path for path in args.paths if path != "-"]
        if files:
            found, trouble = read_paths(files)
            objects += found
            problems += trouble
        if "-" in args.paths:
            found, trouble = read_stream(stdin or sys.stdin)
            objects += found
            problems += trouble
        if args.kubernetes:
            objects += read_cluster(args.kubeconfig, args.namespace, args.context)
    except (InputError, UsageError) as exc:  # UsageError: the server's option parser refused a flag
        print(f"ingressd check: {exc}", file=sys.stderr)
        return 2
    redis_status = 0
    if args.redis:
        from ingressd.redis.client import RedisURL
        from ingressd.redis.probe import exit_status, probe

        findings = probe(RedisURL.parse(args.redis), timeout=args.redis_timeout)
        for finding in findings:
            print(finding, file=sys.stderr if args.output == "json" else out)
        redis_status = exit_status(findings)
        if not args.paths and not args.kubernetes:
            return redis_status
    settings = check_settings(args.ingress_class, args.source == "ingress-nginx",
                              watch_ingress_without_class=args.watch_ingress_without_class,
                              allow_cross_namespace_resources=args.allow_cross_namespace_resources,
                              ignore_annotations=server_settings["ignore_annotation"],
                              **({"gateway_controller": args.gateway_controller_name}
                                 if args.gateway_controller_name else {}))
    if args.to == "gateway-api":
        return redis_status or _to_gateway_api(objects, problems, settings, out, args.output == "json")
    report = evaluate(objects, settings, problems=problems, server_settings=server_settings, now=time.time())
    if args.output == "json":
        json.dump(to_json(report), out, indent=2)
        out.write("\n")
    else:
        out.write(to_text(report))
    return redis_status or report.exit_status


def _to_gateway_api(objects: Sequence[Mapping], problems: Sequence[str], settings: TranslateSettings,
                    out: TextIO, as_json: bool = False) -> int:
    """``--to gateway-api``: the YAML on ``out``, the notes and unusable objects on standard error
    (with ``--output json``: one JSON document with the objects, the notes and the problems)."""
    from ingressd.compat.to_gateway import WIDER, convert, to_yaml

    store = ObjectStore()
    problems = list(problems)
    objects = _last_of_each(objects, problems)
    for kind in KINDS:
        store.replace("check", kind, [o for o in objects if o.get("kind") == kind])
    conversion = convert(objects, ingress_selector(store.snapshot(), settings))
    if as_json:
        json.dump({"version": JSON_VERSION, "objects": list(conversion.objects),
                   "notes": [{"ingress": n.ingress, "severity": n.severity, "text": n.text} for n in conversion.notes],
                   "problems": problems}, out, indent=2)
        out.write("\n")
        return conversion.exit_status
    out.write(to_yaml(conversion))
    for problem in problems:
        print(f"ingressd check: {problem}", file=sys.stderr)
    for note in conversion.notes:
        print(note, file=sys.stderr)
    wider = list(dict.fromkeys(note.ingress for note in conversion.notes if note.severity == WIDER))
    if wider:
        print(f"ingressd check: WARNING: the routes converted from {', '.join(wider)} let through requests their "
              "Ingresses refuse (an access control above has no Gateway API equivalent)", file=sys.stderr)
    return conversion.exit_status


__all__ = ["ConfigIndex", "InputError", "Report", "Verdict", "build_config", "check_settings", "evaluate", "main",
           "read_cluster", "read_paths", "read_stream", "server_settings_from", "to_json", "to_text", "verdict_for",
           "IGNORE_ANNOTATION"]
