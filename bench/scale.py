#!/usr/bin/env python
"""Throughput and peak memory of the dot (and nn) model on a large competition (e.g. synth-25m).

Usage: python bench/scale.py --competition input/synth-25m-random --folds output/synth/folds.csv
Logic: src/cfblend/scale_bench.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cfblend.scale_bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
