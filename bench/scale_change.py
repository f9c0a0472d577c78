"""One-Ingress changes at N Ingresses alone: ``bench/scale.py``'s configuration and change, without
its lookups, for counting the instructions of a change (``bench/scaleinstr.sh``) or a quick CPU time.

    python bench/scale_change.py --ingresses 10000 --changes 20

Builds ``bench/scale.py``'s N Ingresses (this tree's source, as ``bench/scale.py`` imports it: build
the accelerators in place first, ``python setup.py build_ext --inplace``), makes ``--warm`` changes,
then ``--changes`` more, and prints their CPU times (median, p99, max). Figures, not assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402

from ingressd.plugin_manager import load_plugins  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingresses", type=int, default=10000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--warm", type=int, default=3)
    args = parser.parse_args()
    store, _, reloader, full, _ = scale.build(args.ingresses, load_plugins())
    ingress = store.get("Ingress", ("ns1", "i1"))
    for n in range(args.warm):
        scale.change_one(store, reloader, ingress, n)
    times = sorted(scale.change_one(store, reloader, ingress, args.warm + n) for n in range(args.changes))
    if times:
        print(f"full rebuild {full * 1000:.0f} ms; one-Ingress change {statistics.median(times) * 1000:.1f} ms "
              f"median, {times[int(len(times) * 0.99)] * 1000:.1f} ms p99, {times[-1] * 1000:.1f} ms max "
              f"over {len(times)}")


if __name__ == "__main__":
    main()
