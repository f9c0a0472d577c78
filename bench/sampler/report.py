#!/usr/bin/env python3
"""µs per request by function from ``sitecustomize.py``'s counts and the measured CPU per
request (bench.py's "proxy CPU µs/request"): each function's share of the samples × it.

    python3 bench/sampler/report.py /tmp/samples 43.2 [--lines 40]
"""

import argparse


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("samples")
    p.add_argument("per_request", type=float, help="CPU µs per request measured in the same run")
    p.add_argument("--lines", type=int, default=40)
    args = p.parse_args()
    with open(args.samples) as f:
        taken = int(f.readline())
        rows = [line.rstrip("\n").split("\t") for line in f]
    rows = [(int(own), int(total), name) for own, total, name in rows]
    scale = args.per_request / taken if taken else 0.0
    print(f"{taken:,} samples; µs per request at {args.per_request} µs CPU per request")
    print(f"{'self µs':>8} {'total µs':>9}  function")
    for own, total, name in sorted(rows, reverse=True)[:args.lines]:
        print(f"{own * scale:8.2f} {total * scale:9.2f}  {name}")
    print("by total (with callees):")
    for own, total, name in sorted(rows, key=lambda row: -row[1])[:args.lines]:
        print(f"{own * scale:8.2f} {total * scale:9.2f}  {name}")


if __name__ == "__main__":
    main()
