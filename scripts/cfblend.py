#!/usr/bin/env python
"""Thin command-line wrapper: `python scripts/cfblend.py <step> ...` (the Makefile calls this)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without `make install` too

from cfblend.cli import main

if __name__ == "__main__":
    sys.exit(main())
