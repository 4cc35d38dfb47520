"""``python -m oddwatch.cli``: the ``oddwatch`` command."""

from __future__ import annotations

import sys

from oddwatch.cli import main

if __name__ == "__main__":
    sys.exit(main())
