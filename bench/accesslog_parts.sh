#!/bin/sh
# Instructions of each part of the access log (bench/accesslog_parts.py), counted by cachegrind as
# bench/pathinstr.sh counts a request: (I(N2) - I(N1)) / (N2 - N1), each part of each format.
#
#   bench/accesslog_parts.sh [TREE [PYTHON]]       # defaults: this tree, its .venv/bin/python
#   PARTS='lines end' FORMATS=nginx bench/accesslog_parts.sh
#   DURATION=0.00025 bench/accesslog_parts.sh    # a held request time a server would see (default 0.0)
set -e
tree=$(cd "${1:-$(dirname "$0")/..}" && pwd)
python=${2:-$tree/.venv/bin/python}
n1=1000
n2=3000
count() {
  (cd "$tree" && PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$python" bench/accesslog_parts.py "$1" "$2" --count "$3" --duration "${DURATION:-0}" 2>&1 | sed -n 's/.*I *refs: *//p' | tr -d ,)
}
for format in ${FORMATS:-nginx json}; do
  for part in ${PARTS:-noop call end round lines join headers statuses}; do
    [ "$format" = json ] && [ "$part" = join ] && continue
    a=$(count "$format" "$part" "$n1")
    b=$(count "$format" "$part" "$n2")
    echo "$format $part: $(( (b - a) / (n2 - n1) )) instructions"
  done
done
