#!/usr/bin/env python
"""What saving a Bayesian FM keeps: one fit on a competition's train set, its test RMSE in the run,
and after a save and load with N posterior samples (file size too).

Usage: python bench/bfm_saved.py --competition input/ml-100k-u1 --model bfm --samples 32,195
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without `make install` too

import argparse
import tempfile
import time

import pandas as pd

from cfblend.competition import Competition
from cfblend.competition.scoring import rmse
from cfblend.models import make_model, model_class
from cfblend.runs import side_info


def main(argv: list[str]) -> int:
    """CLI of `bench/bfm_saved.py`."""
    p = argparse.ArgumentParser(prog="bench/bfm_saved.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--competition", default="input/ml-100k-u1")
    p.add_argument("--model", default="bfm")
    p.add_argument("--samples", default="32,195", help="saved_samples values to try")
    args = p.parse_args(argv)
    comp = Competition.load(args.competition)
    y = pd.read_csv(Path(args.competition) / "solution" / "solution.csv").set_index("id").loc[comp.test["id"], "rating"]
    side = side_info(comp)
    t0 = time.perf_counter()
    model = make_model(args.model, side).fit(comp.train)
    fit_s = time.perf_counter() - t0
    print(f"{args.model}: fit {fit_s:.1f}s, test RMSE in the run {rmse(y, model.predict(comp.test)):.4f}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.samples.split(",")):
            model.config.saved_samples = n
            path = Path(tmp) / f"m{n}.npz"
            model.save(path)
            again = model_class(args.model).load(path, side).predict(comp.test)
            print(f"  saved {n} samples: {path.stat().st_size / 1e6:.1f} MB, test RMSE after load {rmse(y, again):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
