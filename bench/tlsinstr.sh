#!/bin/sh
# Instructions per request of the HTTPS paths in memory (bench/tlscost.py), counted by valgrind
# (cachegrind, no cache simulation) as bench/pathinstr.sh counts the plain path's: deterministic,
# so load does not move it. Runs TREE's own bench/tlscost.py (which imports TREE's source: build
# its accelerators in place first) with N1 and with N2 requests and prints
# (I(N2) - I(N1)) / (N2 - N1): the set-up and the warm-up cancel out. The figure includes the
# standard library `ssl` peer's own cost (the same for every version of ingressd).
#
#   bench/tlsinstr.sh [TREE [N1 N2 [PYTHON]]]   # defaults: this tree, 1000 3000, .venv/bin/python
#   TLSINSTR_RIG=--backend-tls bench/tlsinstr.sh          # the HTTPS backend rig (default --ingress-tls)
#   TLSINSTR_ARGS='--access-log on' bench/tlsinstr.sh     # the server's options (default --access-log off)
set -e
tree=$(cd "${1:-$(dirname "$0")/..}" && pwd)
n1=${2:-1000}
n2=${3:-3000}
python=${4:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
rig=${TLSINSTR_RIG:---ingress-tls}
count() {
  (cd "$tree" && PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$python" bench/tlscost.py $rig --args "${TLSINSTR_ARGS:---access-log off}" --rounds 1 --requests "$1" 2>&1 \
    | sed -n 's/.*I *refs: *//p' | tr -d ,)
}
a=$(count "$n1")
b=$(count "$n2")
echo "$tree ($rig): $(( (b - a) / (n2 - n1) )) instructions per request (I($n1) = $a, I($n2) = $b)"
