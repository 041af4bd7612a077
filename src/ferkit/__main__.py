"""`python -m ferkit` is the same as the `ferkit` command."""

import sys

from ferkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
