#!/usr/bin/env python
"""How much the neighbouring ratings say about a test rating, on a competition's train and test rows.

Residuals are taken from the train rows' damped global, item and user means (`RatingTimeline.residuals`). For each
test row it compares predictors of its residual: the user's mean train residual on the same UTC day, the mean
train residual of up to 10 train ratings on either side of it in the user's public timeline (`nb_mean10`), the
same weighted by shared genres (`nb_genre10`) and by the movies' likeness (`nb_sim10`), and the mean residual of
the train ratings the user gave within five minutes of it (`nb_sit300`). It prints each one's correlation with the
test residual and the RMSE of least-squares fits of the residual (fitted on the test rows themselves: a gauge of
the signal, not a model) on the day mean, the day mean and `nb_mean10`, the blend's five window meta-features,
those and the sittings, and all of `NEIGHBOUR_META`. Reads `solution.csv`: a benchmark, never part of the
pipeline.

Usage: python bench/neighbour_signal.py --competition input/ml-1m-random
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without `make install` too

import argparse

import numpy as np
import pandas as pd

from cfblend.competition import Competition
from cfblend.ensemble.blend import NEIGHBOUR_META, NEIGHBOUR_WINDOW, SIMILAR_META, SITTING_META, public_pairs
from cfblend.models.timeline import RatingTimeline


def main(argv: list[str]) -> int:
    """CLI of `bench/neighbour_signal.py`."""
    p = argparse.ArgumentParser(prog="bench/neighbour_signal.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--competition", required=True)
    args = p.parse_args(argv)
    comp = Competition.load(args.competition)
    solution = pd.read_csv(Path(args.competition) / "solution" / "solution.csv").set_index("id")
    test = comp.test.assign(rating=solution.loc[comp.test["id"], "rating"].to_numpy())
    train = comp.train
    public = public_pairs(comp.train, comp.test, comp.items)
    timeline = RatingTimeline(train, public.ranks, NEIGHBOUR_WINDOW, genres=public.genres, vectors=public.vectors)
    y = timeline.residuals(test)
    day = train.assign(res=timeline.residuals(train), day=train["timestamp"] // 86400).groupby(
        ["user_id", "day"])["res"].mean()
    day_mean = day.reindex(pd.MultiIndex.from_arrays([test["user_id"], test["timestamp"] // 86400])).to_numpy()
    nb = timeline.lookup(test)
    window = nb["nb_mean10"].to_numpy()
    ok = ~np.isnan(day_mean) & ~np.isnan(window)
    y, day_mean, nb = y[ok], day_mean[ok], nb[ok]
    print(f"{comp.name}: {ok.sum()} of {len(test)} test rows with both; residual RMSE {np.sqrt(np.mean(y**2)):.4f}")
    shown = ("nb_mean10", "nb_genre10", "nb_sim10", "nb_sit300")
    for name, x in (("user's mean residual that day", day_mean), *((c, nb[c].to_numpy()) for c in shown)):
        has = ~np.isnan(x)
        print(f"  correlation with {name}: {np.corrcoef(y[has], x[has])[0, 1]:.3f} ({has.mean():.0%} of the rows)")

    def column(x: np.ndarray) -> list[np.ndarray]:
        """A predictor, 0 where missing, and whether it is missing."""
        return [np.nan_to_num(x), np.isnan(x).astype(np.float64)]

    base = [c for c in NEIGHBOUR_META if c not in SITTING_META + SIMILAR_META]
    for name, cols in (("day mean", [day_mean]), ("day mean + nb_mean10", [day_mean, nb["nb_mean10"].to_numpy()]),
                       ("NEIGHBOUR_META less SITTING_META and SIMILAR_META", [nb[c].to_numpy() for c in base]),
                       ("NEIGHBOUR_META less SIMILAR_META", [nb[c].to_numpy() for c in base + list(SITTING_META)]),
                       ("NEIGHBOUR_META", [nb[c].to_numpy() for c in NEIGHBOUR_META])):
        A = np.column_stack([np.ones(len(y)), *(part for x in cols for part in column(x))])
        fit = A @ np.linalg.lstsq(A, y, rcond=None)[0]
        print(f"  least-squares RMSE on {name}: {np.sqrt(np.mean((y - fit) ** 2)):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
