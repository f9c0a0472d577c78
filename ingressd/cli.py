"""The ``ingressd`` console command: ``ingressd check …`` (the server itself is ``twistd ingressd``)."""

from __future__ import annotations

import sys
from typing import Sequence

USAGE = """usage: ingressd check [options] PATH… | - | --kubernetes
       ingressd --version

  check   say what ingressd would do with each Ingress, and find classic mistakes
          (ingressd check --help lists the options)

The server runs as `twistd ingressd` (twistd ingressd --help)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "check":
        from ingressd.compat.check import main as check

        return check(args[1:])
    if args and args[0] in ("--version", "version"):
        from ingressd.startup import version_text

        print(version_text())
        return 0
    if args and args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
