#!/usr/bin/env bash
# Set up ingressd in .venv and run it on etc/ingressd.yaml (the manifests in etc/examples)
# with two example backends on 127.0.0.1:9001/9002. Then, in another shell:
#   curl -H 'Host: demo.localhost' http://127.0.0.1:8080/
#   curl -H 'Host: demo.localhost' http://127.0.0.1:8080/api/users
# The package is installed into .venv once, and again only when the checkout changed (a
# hash of the sources is kept in .venv/.demo-installed); INGRESSD_DEMO_REINSTALL=1 forces it.
set -euo pipefail
cd "$(dirname "$0")/.."

checkout_hash() {
    find pyproject.toml ingressd plugins twisted -type f \( -name '*.py' -o -name '*.toml' \) -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

stamp=.venv/.demo-installed
wanted=$(checkout_hash)
if [ ! -x .venv/bin/twistd ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] || [ -n "${INGRESSD_DEMO_REINSTALL:-}" ]; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    echo "demo: installing ingressd into .venv" >&2
    .venv/bin/pip install -q --disable-pip-version-check .
    echo "$wanted" > "$stamp"
fi

.venv/bin/python etc/demo_backends.py &
backends=$!
trap 'kill $backends 2>/dev/null' EXIT
exec_status=0
.venv/bin/twistd -n --pidfile= ingressd --config etc/ingressd.yaml || exec_status=$?
exit $exec_status
