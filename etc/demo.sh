#!/usr/bin/env bash
# Set up ingressd in .venv and run it on etc/ingressd.yaml (the manifests in etc/examples)
# with two example backends on 127.0.0.1:9001/9002. Then, in another shell:
#   curl -H 'Host: demo.localhost' http://127.0.0.1:8080/
#   curl -H 'Host: demo.localhost' http://127.0.0.1:8080/api/users
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q .
.venv/bin/python etc/demo_backends.py &
backends=$!
trap 'kill $backends 2>/dev/null' EXIT
exec_status=0
.venv/bin/twistd -n --pidfile= ingressd --config etc/ingressd.yaml || exec_status=$?
exit $exec_status
