#!/bin/sh
# Instructions per request of the request path in memory (bench/pathcost.py), counted by
# valgrind (cachegrind, no cache simulation): deterministic, so load does not move it, and it
# resolves changes that CPU time cannot on a busy machine. Runs TREE's own bench/pathcost.py
# (which imports TREE's source: build its accelerators in place first) with N1 and with N2
# requests and prints (I(N2) - I(N1)) / (N2 - N1): the set-up cancels out.
#
#   bench/pathinstr.sh [TREE [N1 N2 [PYTHON]]]     # defaults: this tree, 1000 3000, .venv/bin/python
#   PATHCOST_ARGS='--access-log on' bench/pathinstr.sh
set -e
tree=$(cd "${1:-$(dirname "$0")/..}" && pwd)
n1=${2:-1000}
n2=${3:-3000}
python=${4:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
count() {
  (cd "$tree" && PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$python" bench/pathcost.py --args "${PATHCOST_ARGS:---access-log off}" --rounds 1 --requests "$1" 2>&1 \
    | sed -n 's/.*I *refs: *//p' | tr -d ,)
}
a=$(count "$n1")
b=$(count "$n2")
echo "$tree: $(( (b - a) / (n2 - n1) )) instructions per request (I($n1) = $a, I($n2) = $b)"
