"""``python -m waflow``: the ``waflow`` command, for environments without the console script."""

from __future__ import annotations

import sys

from waflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
