"""Changes at N Ingresses alone: ``bench/scale.py``'s configuration and change, without
its lookups, for counting the instructions of a change (``bench/scaleinstr.sh``) or a quick CPU time.

    python bench/scale_change.py --ingresses 10000 --changes 20

Builds ``bench/scale.py``'s N Ingresses (this tree's source, as ``bench/scale.py`` imports it: build
the accelerators in place first, ``python setup.py build_ext --inplace``), makes ``--warm`` changes,
then ``--changes`` more, and prints their CPU times (median, p99, max). ``--kind`` picks the kind of
change (``scale.CHANGE_KINDS``; by default the one-Ingress change). Figures, not assertions.
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
    parser.add_argument("--kind", choices=scale.CHANGE_KINDS, default="ingress-modified",
                        help="the kind of change (bench/scale.py's change_kind); ingress-added and "
                             "ingress-deleted are made in pairs, each timed alone")
    args = parser.parse_args()
    store, _, reloader, full, _ = scale.build(args.ingresses, load_plugins())

    def changes(first: int, many: int) -> list[float]:
        return scale.change_kinds(store, reloader, args.ingresses, many, (args.kind,), first)[args.kind]

    changes(0, args.warm)
    times = sorted(changes(args.warm, args.changes))
    if times:
        print(f"full rebuild {full * 1000:.0f} ms; {args.kind} {statistics.median(times) * 1000:.1f} ms "
              f"median, {times[int(len(times) * 0.99)] * 1000:.1f} ms p99, {times[-1] * 1000:.1f} ms max "
              f"over {len(times)}")


if __name__ == "__main__":
    main()
