"""Training throughput (ratings per second per epoch) and peak RSS of a model on one CV fold.

Usage: python bench/scale.py --competition input/synth-25m-random --folds output/synth/folds.csv \
           --model dot --set "epochs=2 batch_size=65536 lr=0.02 trainer=fused"
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without `make install` too

import argparse
import json
import logging
import resource
import time

from cfblend.competition import Competition
from cfblend.competition.folds import read_folds
from cfblend.competition.scoring import rmse
from cfblend.models import make_model, parse_set
from cfblend.runs import side_info

log = logging.getLogger(__name__)


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/scale.py")
    p.add_argument("--competition", required=True)
    p.add_argument("--folds", required=True)
    p.add_argument("--model", default="dot")
    p.add_argument("--set", default="epochs=2", help='config overrides, as `make train SET="..."`')
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    comp = Competition.load(args.competition)
    folds = read_folds(args.folds, comp.train)
    fit_rows, val = comp.train[folds != 0], comp.train[folds == 0]
    log.info("loaded %d train rows in %.1fs; peak RSS %.2f GB", len(comp.train), time.perf_counter() - t0,
             peak_rss_gb())
    overrides = parse_set(args.set, [args.model])[args.model]
    model = make_model(args.model, side_info(comp), overrides)
    t0 = time.perf_counter()
    model.fit(fit_rows)
    fit_s = time.perf_counter() - t0
    epochs = model.config.epochs
    per_epoch = getattr(model, "epoch_seconds_", None)  # the training loop alone, setup excluded
    epoch_s = sorted(per_epoch)[len(per_epoch) // 2] if per_epoch else fit_s / epochs
    result = {"model": args.model, "config": overrides, "fit_rows": len(fit_rows), "fit_seconds": round(fit_s, 2),
              "epoch_seconds": round(epoch_s, 2), "ratings_per_s_per_epoch": round(len(fit_rows) / epoch_s),
              "fold0_rmse": round(rmse(val["rating"], model.predict(val)), 4), "peak_rss_gb": round(peak_rss_gb(), 2)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
