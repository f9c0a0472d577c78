#!/bin/sh
# Instructions a one-Ingress change at N Ingresses (bench/scale_change.py), counted by valgrind
# (cachegrind, no cache simulation): deterministic but for the random keys of the TLS Secrets, so
# load does not move it. Runs TREE's bench/scale_change.py with C1 and with C2 changes and prints
# (I(C2) - I(C1)) / (C2 - C1): the build and the warm-up cancel out. Slow: ~2 minutes a run at 10,000.
#
#   bench/scaleinstr.sh [TREE [N [C1 C2 [PYTHON]]]]   # defaults: this tree, 10000, 5 25, TREE/.venv/bin/python
#   KIND=endpointslice bench/scaleinstr.sh ...          # another kind of change (scale_change.py --kind)
set -e
tree=$(cd "${1:-$(dirname "$0")/..}" && pwd)
n=${2:-10000}
c1=${3:-5}
c2=${4:-25}
python=${5:-$tree/.venv/bin/python}
kind=${KIND:-ingress-modified}
count() {
  (cd /tmp && PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$python" "$tree/bench/scale_change.py" --ingresses "$n" --changes "$1" --kind "$kind" 2>&1 \
    | sed -n 's/.*I *refs: *//p' | tr -d ,)
}
a=$(count "$c1")
b=$(count "$c2")
echo "$tree: $(( (b - a) / (c2 - c1) )) instructions a change ($kind) at $n Ingresses (I($c1) = $a, I($c2) = $b)"
