"""``python -m sparker``: the same command line as the ``sparker`` entry point."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
