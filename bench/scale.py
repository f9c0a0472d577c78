"""Scale figures: route lookup, full rebuild (CPU time), one-Ingress change and memory at N Ingresses.

    python bench/scale.py --ingresses 10000

Generates N Ingresses over N/2 hosts (a tenth of them wildcards), several paths each,
N/10 TLS Secrets (each a distinct host's self-signed ECDSA certificate, served by the
certificate store the server uses), one Service + EndpointSlice per Ingress, then prints:
lookup ns/op at 10 and at N Ingresses (the ratio is what matters), the full rebuild
time, the time to apply a single changed Ingress, the resident memory, whether
memory grows over repeated changes, then ``--changes`` changes of each kind (``CHANGE_KINDS``:
an Ingress modified, added, deleted; a Service, an EndpointSlice, a TLS Secret changed). Figures, not assertions: the machine is shared.

The lookup is measured twice. First with the same traffic at both sizes: 10 routes in
turn (one per Ingress; 10 Ingresses have no more), which isolates the size of the table.
Then with ``--lookup-keys`` routes in turn (1,000 by default): at 10 Ingresses those are
still their 10 routes, at N they are 1,000 different ones, whose objects do not all stay
in the CPU's caches; that ratio measures the table and the spread of the traffic together.
Both measure the table's own work (its memo of recent answers off); one more line gives the
lookup the request path makes, through that memo.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import gc
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

from ingressd.plugin_manager import load_plugins  # noqa: E402
from ingressd.config.reloader import Reloader, State  # noqa: E402
from ingressd.config.store import ObjectStore  # noqa: E402
from ingressd.tls.certificates import CertificateStore  # noqa: E402
from ingressd.config.translate import TranslateSettings  # noqa: E402


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def tls_secret(name: str, namespace: str, host: str) -> dict:
    """A kubernetes.io/tls Secret with a fresh self-signed ECDSA P-256 certificate for ``host``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=90))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                   .sign(key, hashes.SHA256()))
    crt = certificate.public_bytes(serialization.Encoding.PEM)
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return {"metadata": {"name": name, "namespace": namespace}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(pem_key).decode()}}


def objects(count: int, generation: int = 0):
    hosts = max(1, count // 2)
    out = {"Ingress": [], "Service": [], "EndpointSlice": [], "Secret": [], "IngressClass": [
        {"metadata": {"name": "ingressd"}, "spec": {"controller": "ingressd.io/ingress-controller"}}]}
    for i in range(count):
        ns = f"ns{i % 50}"
        host = f"h{i % hosts}.example.com" if i % 10 else f"*.w{i % hosts}.example.com"
        out["Service"].append({"metadata": {"name": f"s{i}", "namespace": ns},
                               "spec": {"ports": [{"name": "http", "port": 80}]}})
        out["EndpointSlice"].append({
            "metadata": {"name": f"s{i}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"]}]})
        paths = [{"path": p, "pathType": t, "backend": {"service": {"name": f"s{i}", "port": {"number": 80}}}}
                 for p, t in ((f"/app{i}", "Prefix"), (f"/app{i}/api", "Prefix"), (f"/x{i}", "Exact"))]
        spec = {"ingressClassName": "ingressd", "rules": [{"host": host, "http": {"paths": paths}}]}
        if i % 5 == 1 and i < hosts:  # 1,000 TLS hosts, each with its own Secret
            spec["tls"] = [{"hosts": [host], "secretName": f"tls{i}"}]
            out["Secret"].append(tls_secret(f"tls{i}", ns, host))
        out["Ingress"].append({"metadata": {"name": f"i{i}", "namespace": ns, "generation": generation,
                                            "creationTimestamp": f"2024-01-01T00:00:{i % 60:02d}Z"},
                               "spec": spec})
    return out


def build(count: int, plugins):
    store = ObjectStore()
    state = State()
    reloader = Reloader(store, state, Clock(), plugins, TranslateSettings())
    certificates = CertificateStore()  # as the server wires it: applied on every rebuild
    reloader.appliers.append(certificates.update)
    store.register("bench")
    for kind, items in objects(count).items():
        store.replace("bench", kind, items)
    store.set_synced("bench")
    started = time.process_time()
    reloader.rebuild()
    elapsed = time.process_time() - started
    served = sum(1 for source, host in certificates.expiries() if host and source != "self-signed")
    return store, state, reloader, elapsed, served


def change_one(store, reloader, ingress: dict, n: int) -> float:
    """Apply change ``n`` to ``ingress`` (a real change: its second path moves, so its routes
    differ) and run the rebuild it schedules; the rebuild's CPU seconds."""
    rule = ingress["spec"]["rules"][0]
    paths = [dict(rule["http"]["paths"][0]), dict(rule["http"]["paths"][1], path=f"/moved{n}"),
             dict(rule["http"]["paths"][2])]
    spec = dict(ingress["spec"], rules=[dict(rule, http={"paths": paths})])
    changed = dict(ingress, metadata=dict(ingress["metadata"], generation=n + 1), spec=spec)
    store.apply("bench", "Ingress", "MODIFIED", changed)
    reloader.stop()  # the rebuild the change scheduled on the (never advanced) Clock: run it now
    started = time.process_time()
    reloader.rebuild()
    return time.process_time() - started


# The change kinds ``change_kind`` makes, in the order ``bench/scale.py`` prints them.
CHANGE_KINDS = ("ingress-modified", "ingress-added", "ingress-deleted", "service", "endpointslice", "secret")


def _timed_rebuild(reloader) -> float:
    reloader.stop()  # the rebuild the change scheduled on the (never advanced) Clock: run it now
    started = time.process_time()
    reloader.rebuild()
    return time.process_time() - started


def _target(count: int, n: int) -> int:
    """The Ingress (and its Service and EndpointSlice) change ``n`` of a kind is made to: spread
    over all ``count``, not always the same one."""
    return (n * 7919 + 1) % count


def change_kind(store, reloader, count: int, kind: str, n: int) -> float:
    """Make change ``n`` of ``kind`` (one of ``CHANGE_KINDS``) to ``objects(count)``'s objects and
    run the rebuild it schedules; the rebuild's CPU seconds. ``ingress-added`` adds Ingress
    ``added{n}`` (three paths on an existing host, of an age among the others'); ``ingress-deleted``
    deletes it again (so make them in pairs: added, then deleted). ``service``: Service ``s{i}``
    gains or loses a second port; ``endpointslice``: its slice gains or loses an endpoint;
    ``secret``: TLS Secret ``tls{i}``'s certificate and key are replaced by another pair."""
    hosts = max(1, count // 2)
    i = _target(count, n)
    ns = f"ns{i % 50}"
    if kind == "ingress-modified":
        return change_one(store, reloader, store.get("Ingress", ("ns1", "i1")), n)
    if kind in ("ingress-added", "ingress-deleted"):
        host = f"h{(i | 1) % hosts}.example.com"
        paths = [{"path": p, "pathType": "Prefix", "backend": {"service": {"name": f"s{i}", "port": {"number": 80}}}}
                 for p in (f"/added{n}", f"/added{n}/api", f"/added{n}/x")]
        obj = {"metadata": {"name": f"added{n}", "namespace": ns, "generation": 1,
                            "creationTimestamp": f"2024-01-01T00:00:{n % 60:02d}Z"},
               "spec": {"ingressClassName": "ingressd", "rules": [{"host": host, "http": {"paths": paths}}]}}
        store.apply("bench", "Ingress", "ADDED" if kind == "ingress-added" else "DELETED", obj)
        return _timed_rebuild(reloader)
    if kind == "service":
        obj = store.get("Service", (ns, f"s{i}"))
        ports = [{"name": "http", "port": 80}]
        if len(obj["spec"]["ports"]) == 1:
            ports.append({"name": "extra", "port": 81})
        store.apply("bench", "Service", "MODIFIED", dict(obj, spec=dict(obj["spec"], ports=ports)))
        return _timed_rebuild(reloader)
    if kind == "endpointslice":
        obj = store.get("EndpointSlice", (ns, f"s{i}-x"))
        endpoints = obj["endpoints"][:1]
        if len(obj["endpoints"]) == 1:
            endpoints.append({"addresses": [f"10.255.{n // 256 % 256}.{n % 256}"]})
        store.apply("bench", "EndpointSlice", "MODIFIED", dict(obj, endpoints=endpoints))
        return _timed_rebuild(reloader)
    if kind == "secret":
        tls = [j for j in range(1, hosts, 5)]  # the Ingresses with a TLS section (``objects``)
        j = tls[n * 7919 % len(tls)]
        store.apply("bench", "Secret", "MODIFIED", _other_secret(f"tls{j}", f"ns{j % 50}", f"h{j}.example.com", n))
        return _timed_rebuild(reloader)
    raise ValueError(f"unknown change kind {kind!r}")


_SECRETS: dict = {}


def _other_secret(name: str, namespace: str, host: str, n: int) -> dict:
    """Secret ``name`` with one of two certificates for ``host`` (made once, so a change costs
    the rebuild, not the key's generation)."""
    made = _SECRETS.get((name, n % 2))
    if made is None:
        made = _SECRETS[name, n % 2] = tls_secret(name, namespace, host)
    return made


def change_kinds(store, reloader, count: int, changes: int, kinds=CHANGE_KINDS,
                 first: int = 0) -> dict[str, list[float]]:
    """``changes`` changes of each of ``kinds`` (numbered from ``first``; an added Ingress followed by
    its deletion, the others in turn), each one's rebuild CPU seconds, by kind."""
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for n in range(first, first + changes):
        for kind in kinds:
            if kind == "ingress-deleted" and "ingress-added" not in kinds:
                change_kind(store, reloader, count, "ingress-added", n)
            times[kind].append(change_kind(store, reloader, count, kind, n))
            if kind == "ingress-added" and "ingress-deleted" not in kinds:
                change_kind(store, reloader, count, "ingress-deleted", n)
    return times


def summary(times: list[float]) -> str:
    """Median, p99 and max of ``times`` (seconds) in ms."""
    times = sorted(times)
    return (f"{times[len(times) // 2] * 1000:6.1f} ms median, {times[int(len(times) * 0.99)] * 1000:.1f} ms p99, "
            f"{times[-1] * 1000:.1f} ms max over {len(times)}")


def lookup_keys(count: int, keys: int = 1000) -> list[tuple[str, str]]:
    """Requests that hit routes: Ingress ``i``'s host and a path under its ``/app{i}/api`` rule,
    for ``keys`` Ingresses spread over all ``count`` (with 10, each is asked for 100 times)."""
    hosts = max(1, count // 2)
    out = []
    for n in range(keys):
        i = (n * 7919) % count
        host = f"h{i % hosts}.example.com" if i % 10 else f"x.w{i % hosts}.example.com"
        out.append((host, f"/app{i}/api/v1/items"))
    return out


def lookup_ns(state, count: int, keys: int = 1000, rounds: int = 200_000, cached: bool = False) -> float:
    """CPU ns per ``RouteTable.match`` over ``lookup_keys(count, keys)``, every one a hit; the
    table's own work (its memo of answers off) unless ``cached``."""
    table = state.table
    if not hasattr(table, "cache"):  # a commit before the memo: the table's work only
        return _lookup_ns(table, count, keys, rounds)
    size = table.cache_size
    table.cache.clear()
    table.cache_size = size if cached else 0
    try:
        return _lookup_ns(table, count, keys, rounds)
    finally:
        table.cache_size = size


def _lookup_ns(table, count: int, keys: int, rounds: int) -> float:
    keys = lookup_keys(count, keys)
    for host, path in keys:
        entry = table.match(host, path)
        if entry is None or not path.startswith(entry.route.path):
            raise SystemExit(f"lookup of {host}{path} did not hit its route")
    started = time.process_time()
    for _ in range(rounds // len(keys)):
        for host, path in keys:
            table.match(host, path)
    return (time.process_time() - started) / rounds * 1e9


def lookup_pair(small_state, large_state, count: int, keys: int = 1000, repeat: int = 5) -> tuple[float, float]:
    """Median ns per lookup at 10 and at ``count`` Ingresses, measured alternately (the
    machine's noise then falls on both)."""
    small, large = [], []
    for _ in range(repeat):
        small.append(lookup_ns(small_state, 10, keys))
        large.append(lookup_ns(large_state, count, keys))
    return statistics.median(small), statistics.median(large)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingresses", type=int, default=10000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--lookup-keys", type=int, default=1000,
                        help="different routes looked up in turn (how many are in use at once)")
    parser.add_argument("--no-kinds", dest="kinds", action="store_false",
                        help="only the one-Ingress change, not each kind of change (CHANGE_KINDS) after it")
    args = parser.parse_args()
    plugins = load_plugins()
    _, small_state, _, _, _ = build(10, plugins)
    before = rss_mib()
    store, state, reloader, full, served = build(args.ingresses, plugins)
    same_small, same_large = lookup_pair(small_state, state, args.ingresses, 10)
    small, large = lookup_pair(small_state, state, args.ingresses, args.lookup_keys)
    cached = statistics.median(lookup_ns(state, args.ingresses, args.lookup_keys, cached=True) for _ in range(5))
    print(f"ingresses                 {args.ingresses}")
    print(f"routes                    {len(state.config.routes)}")
    print(f"TLS Secrets               {len(state.config.secrets)} ({served} hosts served their own certificate)")
    print("lookup, 10 routes in turn at both sizes:")
    print(f"  at 10 Ingresses         {same_small:8.0f} ns")
    print(f"  at {args.ingresses:<6} Ingresses     {same_large:8.0f} ns  (ratio {same_large / same_small:.2f})")
    print(f"lookup, {args.lookup_keys} routes in turn (at 10 Ingresses: their 10):")
    print(f"  at 10 Ingresses         {small:8.0f} ns")
    print(f"  at {args.ingresses:<6} Ingresses     {large:8.0f} ns  (ratio {large / small:.2f})")
    print(f"  at {args.ingresses:<6} Ingresses     {cached:8.0f} ns  through the table's memo of answers "
          f"(the request path's lookup; above: the table's own work)")
    print(f"full rebuild              {full * 1000:8.0f} ms")
    changes = []
    ingress = store.get("Ingress", ("ns1", "i1"))
    for n in range(args.changes):
        changes.append(change_one(store, reloader, ingress, n))
        if n == min(9, args.changes - 1):
            gc.collect()
            rss_after_10 = rss_mib()
    gc.collect()
    changes.sort()
    over = sum(1 for change in changes if change >= 0.1)
    print(f"one-Ingress change        {changes[len(changes) // 2] * 1000:8.0f} ms median, "
          f"{changes[int(len(changes) * 0.99)] * 1000:.0f} ms p99, {changes[-1] * 1000:.0f} ms max "
          f"over {args.changes} ({over} took 100 ms or more)")
    print(f"resident memory           {rss_mib():8.0f} MiB (process; {before:.0f} MiB before the large config)")
    print(f"growth over changes 10..{args.changes}  {rss_mib() - rss_after_10:8.1f} MiB")
    if args.kinds:
        print("each kind of change, in turn (rebuild CPU time):")
        for kind, times in change_kinds(store, reloader, args.ingresses, args.changes).items():
            print(f"  {kind:<22}{summary(times)}")
        gc.collect()
        print(f"resident memory after     {rss_mib():8.0f} MiB")
    print(f"max RSS                   {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.0f} MiB")


if __name__ == "__main__":
    main()
