#!/usr/bin/env python3
"""Write man/kvmtune.1 from the command-line declaration (kvmtune.cli_spec).

    python scripts/make_manpage.py [--out man/kvmtune.1]

Read it with `man -l man/kvmtune.1`; install it as /usr/local/share/man/man1/kvmtune.1.
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from kvmtune.render.man_page import man_page  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "man", "kvmtune.1"))
    args = parser.parse_args()
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(man_page())
    return 0


if __name__ == "__main__":
    sys.exit(main())
