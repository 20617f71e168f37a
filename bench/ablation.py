#!/usr/bin/env python
"""Blend ablation: what each member adds, read off trained artifacts (nothing is retrained).

For the output folders given (one per split, each trained by `make all` with the members to
compare, by default `MODELS=full`), it writes a table with each member alone (OOF and test RMSE), their
blend, the blend of the fast list (what a plain `make all` trains on ml-100k), the blend whose meta-features
leave out the neighbouring ratings, and the blend with each
member dropped in turn (honest CV and test RMSE). A member whose removal does not worsen the honest CV does
not earn its place in the lists.

Usage: python bench/ablation.py --outs output/u1,output/u2 [--models bfm,bfm_op,...] [--out bench/results/ablation.md]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without `make install` too

import argparse
import logging

import numpy as np
import pandas as pd

from cfblend.competition import Competition
from cfblend.competition.folds import read_stamp
from cfblend.competition.scoring import rmse
from cfblend.ensemble.blend import (
    META_FEATURES,
    MIN_STD,
    NEIGHBOUR_META,
    SIMILAR_META,
    SITTING_META,
    TIMELINE_META,
    BlendConfig,
    blend,
    meta_names,
    oof_and_test_meta,
    public_pairs,
)
from cfblend.ensemble.run import load_predictions
from cfblend.models import FAST_MODELS, default_models, expand_models
from cfblend.paths import Paths
from cfblend.report.leaderboard import to_markdown

log = logging.getLogger("ablation")


def ablate(out: Path, inputs: Path, models: list[str], method: str = "auto") -> pd.DataFrame:
    """Rows: each member alone, the blend of `models` (names or list names; empty: the dataset's full list),
    the blend of the fast list when `models` holds more, the blend without the neighbouring ratings among its
    meta-features nor the timeline (where the rows have timestamps; then also without the sittings, without the
    likeness, and without the timeline alone),
    and the blend of `models` without each member."""
    paths = Paths(inputs, out)
    comp = Competition.load(paths.competition(read_stamp(paths)["competition"]))
    models = expand_models(models, comp.meta["dataset"]) or list(default_models(comp.meta["dataset"], "full"))
    solution = pd.read_csv(paths.solution(comp.name)).set_index("id").loc[comp.test["id"], "rating"].to_numpy()
    X, T, folds = load_predictions(paths, comp, models)
    y = comp.train["rating"].to_numpy(np.float64)
    public = public_pairs(comp.train, comp.test, comp.items)
    M, MT = oof_and_test_meta(comp.train, comp.test, folds, public)
    names = meta_names(public)
    rows = [{"split": comp.name, "variant": f"{m} alone", "oof_or_honest_cv": rmse(y, X[:, j]),
             "test_rmse": rmse(solution, T[:, j])} for j, m in enumerate(models)]

    def blended(keep: list[int], label: str, without: tuple[str, ...] = ()) -> dict:
        keep = [j for j in keep if X[:, j].std() >= MIN_STD]
        meta = [c for c, name in enumerate(names) if name not in without]
        res = blend(X[:, keep], T[:, keep], y, folds, M[:, meta], MT[:, meta], BlendConfig(method=method),
                    comp.rating_scale)
        return {"split": comp.name, "variant": label, "oof_or_honest_cv": float(np.mean(res.fold_rmse)),
                "test_rmse": rmse(solution, res.test)}

    everything = list(range(len(models)))
    rows.append(blended(everything, "blend of all"))
    if M.shape[1] > len(META_FEATURES):
        rows.append(blended(everything, "blend of all, meta-features without the neighbouring ratings",
                            NEIGHBOUR_META + TIMELINE_META))
        rows.append(blended(everything, "blend of all, meta-features without the sittings (clock, genre)",
                            SITTING_META))
        rows.append(blended(everything, "blend of all, meta-features without the likeness (nb_sim10)",
                            SIMILAR_META))
        rows.append(blended(everything, "blend of all, meta-features without the timeline (tl_*)", TIMELINE_META))
    fast = [j for j, m in enumerate(models) if m in FAST_MODELS]
    if len(fast) < len(models):
        dropped = ", ".join(m for m in models if m not in FAST_MODELS)
        rows.append(blended(fast, f"blend of the fast list (without {dropped})"))
    for j, m in enumerate(models):
        rows.append(blended([i for i in everything if i != j], f"blend without {m}"))
    return pd.DataFrame(rows)


def main(argv: list[str]) -> int:
    """CLI of `bench/ablation.py`."""
    p = argparse.ArgumentParser(prog="bench/ablation.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--outs", required=True, help="comma-separated output folders, one per split")
    p.add_argument("--input", default="input")
    p.add_argument("--models", default="", help="comma-separated names or list names (default: full)")
    p.add_argument("--method", default="auto")
    p.add_argument("--out", default="bench/results/ablation.md")
    p.add_argument("--note", default="", help="a line of context for the table (machine, settings)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    models = [m for m in args.models.split(",") if m]
    table = pd.concat([ablate(Path(o), Path(args.input), models, args.method) for o in args.outs.split(",")])
    mean = table.groupby("variant", sort=False)[["oof_or_honest_cv", "test_rmse"]].mean().reset_index()
    md = to_markdown(mean, f"Blend ablation: mean over {table['split'].nunique()} split(s)")
    if table["split"].nunique() > 1:
        md += "\n" + to_markdown(table, "Per split")
    md += ("\n`oof_or_honest_cv`: a member's OOF RMSE, or a blend's honest CV (weights fit on the other folds); "
           f"`test_rmse`: on all test rows. Blend method: {args.method}. {args.note}\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(md)
    log.info("\n%s", mean.to_string(index=False, float_format="%.4f"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
