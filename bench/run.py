#!/usr/bin/env python
"""`make bench`: our models against Surprise on identical splits. Logic: src/cfblend/bench.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cfblend.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
