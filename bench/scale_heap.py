"""Where the configuration's memory goes at N Ingresses: its Python heap by line and by type,
and the peak of each rebuild step.

    python bench/scale_heap.py --ingresses 10000             # heap by line (top 30) and by type
    python bench/scale_heap.py --ingresses 10000 --depth 8   # ... grouped by 8-frame tracebacks too

Builds bench/scale.py's objects into a store, a reloader and the certificate store as the
server wires them, with ``tracemalloc`` on from the store's first object: prints the traced
total once built (what the configuration holds, not the process), the 30 largest holders by
source line, the largest object types by ``gc.get_objects()`` (their own sizes), and the
traced peak inside the translation and inside ``build_table`` (a transient peak leaves the
allocator's arenas partly used: it shows in the resident figure of bench/scale_process.py long
after it is freed). Deterministic figures: they resolve a change on a loaded machine, where
resident and time figures do not.
"""

from __future__ import annotations

import argparse
import collections
import gc
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

import ingressd.config.reloader as reloader_module  # noqa: E402
from ingressd.config.reloader import Reloader, State  # noqa: E402
from ingressd.config.store import ObjectStore  # noqa: E402
from ingressd.config.translate import TranslateSettings  # noqa: E402
from ingressd.plugin_manager import load_plugins  # noqa: E402
from ingressd.tls.certificates import CertificateStore  # noqa: E402

MIB = 2 ** 20


def _metered(name: str, function, base: int, peaks: dict):
    def call(*args, **kwargs):
        tracemalloc.reset_peak()
        result = function(*args, **kwargs)
        current, peak = tracemalloc.get_traced_memory()
        peaks[name] = ((current - base) / MIB, (peak - base) / MIB)
        return result
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingresses", type=int, default=10000)
    parser.add_argument("--depth", type=int, default=1, help="frames kept per allocation (1: by line only)")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    plugins = load_plugins()
    scale.build(10, plugins)  # imports and first-use caches out of the figures
    objects = scale.objects(args.ingresses)
    gc.collect()
    tracemalloc.start(args.depth)
    base = tracemalloc.get_traced_memory()[0]
    peaks: dict = {}
    reloader_module.build_table = _metered("build_table", reloader_module.build_table, base, peaks)
    store, state = ObjectStore(), State()
    reloader = Reloader(store, state, Clock(), plugins, TranslateSettings())
    translator = reloader._translators[0]
    type(translator).__call__ = _metered("translation (Ingresses)", type(translator).__call__, base, peaks)
    certificates = CertificateStore()
    reloader.appliers.append(certificates.update)
    store.register("bench")
    for kind, items in objects.items():
        store.replace("bench", kind, items)
    store.set_synced("bench")
    stored = (tracemalloc.get_traced_memory()[0] - base) / MIB
    reloader.rebuild()
    del objects
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    total = sum(stat.size for stat in snapshot.statistics("filename")) / MIB
    print(f"{args.ingresses} Ingresses, {len(state.config.routes)} routes")
    print(f"traced: {stored:.1f} MiB once stored, {total:.1f} MiB once built")
    for name, (current, peak) in peaks.items():
        print(f"  {name}: {current:.1f} MiB after, peak {peak:.1f} MiB")
    print(f"\nlargest holders by line (MiB, objects):")
    for stat in snapshot.statistics("lineno")[:args.top]:
        frame = stat.traceback[0]
        print(f"{stat.size / MIB:7.2f} {stat.count:8d}  {frame.filename.split('site-packages/')[-1]}:{frame.lineno}")
    if args.depth > 1:
        print("\nlargest holders by traceback:")
        for stat in snapshot.statistics("traceback")[:12]:
            print(f"--- {stat.size / MIB:.2f} MiB, {stat.count} objects")
            for line in stat.traceback.format()[-2 * args.depth:]:
                print("   ", line)
    tracemalloc.stop()
    counts, sizes = collections.Counter(), collections.Counter()
    for obj in gc.get_objects():
        name = type(obj).__name__
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    print("\nlargest types tracked by gc (their own sizes, MiB):")
    for name, size in sizes.most_common(20):
        print(f"{name:28s} {counts[name]:8d} {size / MIB:7.2f}")


if __name__ == "__main__":
    main()
