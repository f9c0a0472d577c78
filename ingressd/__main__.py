"""``python -m ingressd check …``: the same as the ``ingressd`` console command."""

import sys

from ingressd.cli import main

sys.exit(main())
