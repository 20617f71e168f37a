"""`make report`: train the baselines if missing, then write the leaderboard."""

from __future__ import annotations

import logging

import pandas as pd

from cfblend.analysis import cold_start_table, test_predictions
from cfblend.competition import Competition
from cfblend.folds import read_folds
from cfblend.io import write_csv, write_text
from cfblend.leaderboard import build_leaderboard, to_markdown, write_leaderboard
from cfblend.models import BASELINES, REGISTRY
from cfblend.paths import Paths
from cfblend.runner import train_cv

log = logging.getLogger(__name__)


def trained_models(paths: Paths) -> list[str]:
    """Registered models with scores and test predictions in the output folder."""
    return [n for n in REGISTRY if paths.scores(n).exists() and paths.test(n).exists()]


def run_report(comp: Competition, paths: Paths, html: bool = True) -> pd.DataFrame:
    """Score every trained model (and the baselines) against the hidden solution."""
    folds = read_folds(paths.folds, comp.train)
    for name in BASELINES:
        train_cv(name, comp, folds, paths)
    solution = pd.read_csv(paths.solution(comp.name))
    board = build_leaderboard(paths, solution, trained_models(paths))
    write_leaderboard(board, paths, f"Leaderboard: {comp.name}")
    log.info("leaderboard (%s):\n%s", comp.name, board.to_string(index=False, float_format="%.4f"))
    preds = test_predictions(paths, list(board["model"]), solution["id"])  # the blend included
    cold = cold_start_table(comp, solution, preds)
    write_csv(cold, paths.output / "cold_start.csv")
    log.info("test RMSE on cold-start rows:\n%s", cold.to_string(index=False, float_format="%.4f"))
    if "gbm" in set(board["model"]):
        write_importance(paths, "gbm")
    if {"nn", "nn_ids"} <= set(board["model"]):
        abl = board.set_index("model").loc[["nn", "nn_ids"]].reset_index()
        abl.insert(1, "side_features", ["yes", "no (ids only)"])
        write_text(to_markdown(abl, f"Ablation: nn with and without side features ({comp.name})"),
                   paths.output / "ablation_side_features.md")
    if html:
        from cfblend.report_html import write_report_html

        write_report_html(comp, paths, board, cold, solution, preds)
    return board


def write_importance(paths: Paths, name: str) -> pd.Series:
    """Mean gain over the fold boosters -> `<name>_importance.csv` and `.png`."""
    import lightgbm as lgb

    from cfblend.io import atomic_path
    from cfblend.plots import importance_png

    gains = []
    for f in sorted(paths.models(name).glob("fold*.txt")):
        b = lgb.Booster(model_file=str(f))
        gains.append(pd.Series(b.feature_importance("gain"), index=b.feature_name()))
    gain = pd.concat(gains, axis=1).mean(axis=1).sort_values(ascending=False).rename("gain")
    write_csv(gain.rename_axis("feature").reset_index(), paths.output / f"{name}_importance.csv")
    with atomic_path(paths.output / f"{name}_importance.png") as tmp:
        tmp.write_bytes(importance_png(gain))
    return gain
