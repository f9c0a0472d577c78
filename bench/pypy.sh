#!/usr/bin/env bash
# Install ingressd into a PyPy 3.11 virtualenv on Debian 12 (bookworm), without touching the
# system's libraries. See docs/pypy.md.
#
# Debian 12's own pypy3 is Python 3.9 (ingressd and Twisted 26 need >= 3.10). Debian 13 (trixie)
# ships pypy3 7.3.19 (Python 3.11), but it needs glibc >= 2.38 and OpenSSL 3.3+ (bookworm: 2.36,
# 3.0). So this script:
#
#   1. downloads trixie's pypy3, pypy3-lib, pypy3-dev, pypy3-venv debs plus the trixie libraries
#      PyPy links against (libc6 included) from deb.debian.org, checking each SHA256 against
#      trixie's Packages index;
#   2. extracts them with `dpkg -x` into $PREFIX/root (nothing goes to / or /usr);
#   3. writes $PREFIX/root/usr/bin/pypy3-ld, a wrapper that runs PyPy through trixie's own dynamic
#      loader with --library-path (so no LD_LIBRARY_PATH leaks into child processes) and
#      --argv0 "$0" (so sys.executable is the wrapper, or the venv's python symlink: re-exec via
#      sys.executable and console-script shebangs go through the loader too), and links
#      $PREFIX/bin/pypy3 to it;
#   4. points the extracted _sysconfigdata at $PREFIX/root (include dir, python-wheels dir);
#   5. creates the venv $PREFIX/venv with `pypy3 -m venv` (pip from trixie's python3-pip-whl);
#   6. pip-installs ingressd from a copy of this checkout (not in place: no build/ or egg-info
#      is written into the repository), with constraints (see CONSTRAINTS below) that avoid
#      wheels PyPy 7.3.19 cannot load, and checks every extension module's PyPy symbols.
#
# Usage:   bash bench/pypy.sh [--with-tests]   (as root; PYPY_PREFIX=/opt/pypy by default;
#                                               --with-tests adds pytest, hypothesis, websocket-client)
# Then:    $PYPY_PREFIX/venv/bin/twistd -n ingressd ...
#          python3 bench/bench.py --twistd $PYPY_PREFIX/venv/bin/twistd --warmup 15
#
# Idempotent: downloads are cached in $PREFIX/debs and verified; re-running re-extracts, keeps
# the venv and re-installs ingressd from the current checkout.
set -euo pipefail

PREFIX=${PYPY_PREFIX:-/opt/pypy}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
ARCH=amd64
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$PREFIX/root
LIBDIR=$ROOT/usr/lib/x86_64-linux-gnu
VENV=$PREFIX/venv

# pypy3-venv must come after pypy3-lib (it supplies ensurepip); order otherwise does not matter.
PACKAGES=(
  libc6 libgcc-s1 libstdc++6 libbz2-1.0 libexpat1 libffi8 libgdbm6t64 liblzma5 libncursesw6
  libtinfo6 libsqlite3-0 libssl3t64 libzstd1 zlib1g
  pypy3-lib pypy3 pypy3-dev pypy3-venv python3-pip-whl python3-setuptools-whl
)

# Newer PyO3 (Rust) extensions import PyPyModule_FromDefAndSpec2, which PyPy 7.3.19 does not
# export: their pp311 wheels fail at import with "undefined symbol". Hit so far (2026-11):
#   cryptography >= 47  -> 46.0.7; then pyOpenSSL < 26 (26.x wants cryptography >= 49) and
#                          service-identity < 26 (wants >= 47)
#   pydantic-core 2.50  -> pydantic < 2.14 (core 2.46.5); kubernetes 37.0.2 wants pydantic >= 2.14.2,
#                          37.0.1 takes >= 2.13.5 (ingressd needs kubernetes 37.x)
#   hypothesis >= 6.156 -> a Rust _native module (tests only; 6.155.7 is pure Python)
# The check step below scans every extension module in the venv for such symbols.
CONSTRAINTS=$'cryptography<47\npyopenssl<26\nservice-identity<26\nkubernetes<37.0.2\npydantic<2.14\nhypothesis<6.156\n'

say() { printf '\n==> %s\n' "$*"; }

[ "$(uname -m)" = x86_64 ] || { echo "only x86_64 is handled" >&2; exit 1; }

say "host tools (curl, xz, dpkg-deb, gcc for httptools/pyyaml/zope.interface)"
need=()
command -v curl >/dev/null || need+=(curl ca-certificates)
command -v xz >/dev/null || need+=(xz-utils)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v nm >/dev/null || need+=(binutils)
[ -e /usr/include/stdio.h ] || need+=(libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "apt-get install -y ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
else
  echo "all present"
fi

mkdir -p "$PREFIX/debs" "$PREFIX/bin" "$ROOT"
INDEX=$PREFIX/debs/$SUITE-Packages
say "trixie Packages index -> $INDEX"
if [ ! -s "$INDEX" ]; then
  curl -fsSL "$MIRROR/dists/$SUITE/main/binary-$ARCH/Packages.xz" | xz -dc > "$INDEX.tmp"
  mv "$INDEX.tmp" "$INDEX"
else
  echo "cached (delete it to refresh)"
fi

say "download + verify + extract ${#PACKAGES[@]} debs into $ROOT"
for pkg in "${PACKAGES[@]}"; do
  # Filename and SHA256 of the stanza whose Package: is exactly $pkg
  file= sha=
  read -r file sha < <(awk -v p="$pkg" '
      /^Package: / { cur = $2 }
      cur == p && /^Filename: / { f = $2 }
      cur == p && /^SHA256: / { s = $2 }
      /^$/ { if (f != "") { print f, s; f = ""; exit } }
      END { if (f != "") print f, s }' "$INDEX") || true
  [ -n "${file:-}" ] || { echo "package $pkg not in $INDEX" >&2; exit 1; }
  deb=$PREFIX/debs/$(basename "$file")
  if [ -s "$deb" ] && echo "$sha  $deb" | sha256sum -c --status; then
    echo "  $pkg: cached $(basename "$deb")"
  else
    echo "  $pkg: $MIRROR/$file"
    curl -fsSL -o "$deb.tmp" "$MIRROR/$file"
    echo "$sha  $deb.tmp" | sha256sum -c --status || { echo "SHA256 mismatch: $file" >&2; exit 1; }
    mv "$deb.tmp" "$deb"
  fi
  dpkg -x "$deb" "$ROOT"
done

PYLIB=$(cd "$ROOT/usr/lib" && ls -d pypy3.[0-9]* | sort -V | tail -1)   # pypy3.11
PYBIN=$ROOT/usr/bin/$PYLIB                                             # the ELF executable
[ -x "$PYBIN" ] && [ -x "$LIBDIR/ld-linux-x86-64.so.2" ] || { echo "unexpected layout" >&2; exit 1; }

say "point $PYLIB's _sysconfigdata at $ROOT"
# Debian's build-time values are absolute /usr paths: the headers (pypy3-dev) and the
# ensurepip wheels (python3-pip-whl) live under $ROOT here. dpkg -x rewrote the file, so this
# runs every time.
for f in "$ROOT/usr/lib/$PYLIB"/_sysconfigdata_*.py; do
  sed -i -e "s|'/usr/include/|'$ROOT/usr/include/|g" \
         -e "s|'/usr/share/python-wheels/'|'$ROOT/usr/share/python-wheels/'|" \
         -e "s|'LIBDIR': '/usr/lib/|'LIBDIR': '$ROOT/usr/lib/|" "$f"
  grep -n "$ROOT" "$f" | sed 's/^/  /'
done

say "wrapper $ROOT/usr/bin/pypy3-ld, linked from $PREFIX/bin/pypy3"
# The wrapper sits next to the real binary: PyPy finds its stdlib from sys.executable (argv[0],
# symlinks resolved), i.e. $ROOT/usr/bin/.. -> $ROOT/usr/lib/$PYLIB.
cat > "$ROOT/usr/bin/pypy3-ld" <<EOF
#!/bin/sh
# Generated by ingressd's bench/pypy.sh: runs trixie's PyPy with trixie's glibc via its own
# dynamic loader. --library-path is not inherited by child processes (unlike LD_LIBRARY_PATH);
# --argv0 keeps sys.executable = how this was invoked (e.g. a venv's bin/python symlink).
exec "$LIBDIR/ld-linux-x86-64.so.2" --library-path "$LIBDIR" --argv0 "\$0" "$PYBIN" "\$@"
EOF
chmod 755 "$ROOT/usr/bin/pypy3-ld"
ln -sfn ../root/usr/bin/pypy3-ld "$PREFIX/bin/pypy3"
"$PREFIX/bin/pypy3" -c 'import sys, ssl, sqlite3, lzma, bz2, ctypes; print(" ", sys.executable, sys.version.replace("\n", " "), ssl.OPENSSL_VERSION)'

say "venv $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  "$PREFIX/bin/pypy3" -m venv "$VENV"
else
  echo "exists"
fi
"$VENV/bin/python" -c 'import sys; assert sys.prefix != sys.base_prefix, sys.prefix; print(" ", sys.executable, sys.prefix)'

say "install ingressd from $REPO (copied to a temp dir first)"
SRC=$(mktemp -d /tmp/ingressd-src.XXXXXX)
trap 'rm -rf "$SRC"' EXIT
tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=./.hypothesis --exclude=./.pytest_cache \
    --exclude='./test_kube_*' --exclude='./_trial_temp*' -cf - . | tar -C "$SRC" -xf -
printf '%s' "$CONSTRAINTS" > "$PREFIX/constraints.txt"
echo "  constraints ($PREFIX/constraints.txt): $(tr '\n' ' ' < "$PREFIX/constraints.txt")"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$PREFIX/constraints.txt" "$SRC"
if [ "${1:-}" = --with-tests ]; then
  say "test dependencies (pytest, hypothesis, websocket-client)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$PREFIX/constraints.txt" \
      pytest hypothesis websocket-client
fi

say "check"
"$VENV/bin/python" -c '
import sys, httptools, yaml, bcrypt, cryptography, OpenSSL, twisted, h2, ingressd
print("  python", sys.version.split()[0], sys.implementation.name, "| twisted", twisted.__version__,
      "| cryptography", cryptography.__version__, "| pyOpenSSL", OpenSSL.__version__,
      "| httptools", httptools.__version__, "| bcrypt", bcrypt.__version__)'
"$VENV/bin/twistd" --help | grep -q ingressd && echo "  twistd --help lists ingressd"
# Every PyPy C-API symbol an extension module needs must be exported by libpypy (see CONSTRAINTS).
nm -D --defined-only "$LIBDIR/lib$PYLIB-c.so" | awk '{print $3}' | sort -u > "$PREFIX/exports.txt"
bad=0
while IFS= read -r so; do
  miss=$(nm -D --undefined-only "$so" | awk '{print $2}' | grep -E '^_?PyPy' | sort -u \
         | comm -23 - "$PREFIX/exports.txt" | tr '\n' ' ' || true)
  if [ -n "$miss" ]; then echo "  MISSING in $so: $miss"; bad=1; fi
done < <(find "$VENV/lib" -name '*.so')
[ "$bad" = 0 ] || { echo "some extension modules will not import under this PyPy" >&2; exit 1; }
echo "  all extension modules resolve against lib$PYLIB-c.so"
echo
echo "done: $VENV/bin/twistd -n ingressd ...   (python: $VENV/bin/python)"
