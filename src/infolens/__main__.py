"""``python -m infolens``: the same command line as the ``infolens`` script."""

from __future__ import annotations

from infolens.cli import main

if __name__ == "__main__":
    main(prog_name="infolens")
