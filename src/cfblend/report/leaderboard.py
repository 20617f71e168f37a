"""The leaderboard: every trained model scored the same way, CV and Public/Private."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from cfblend.competition.scoring import score_predictions
from cfblend.io import read_json, write_csv, write_text
from cfblend.paths import Paths

log = logging.getLogger(__name__)

COLUMNS = ["model", "cv_rmse_mean", "cv_rmse_std", "oof_rmse", "public_rmse", "private_rmse", "test_rmse",
           "fit_seconds", "weight"]


def model_row(paths: Paths, name: str, solution: pd.DataFrame) -> dict:
    """One leaderboard row from a model's scores file and its test predictions."""
    s = read_json(paths.scores(name))
    test = pd.read_parquet(paths.test(name)).set_index("id").rename(columns={"pred": "rating"})
    return {"model": name, "cv_rmse_mean": s["cv_rmse_mean"], "cv_rmse_std": s["cv_rmse_std"],
            "oof_rmse": s["oof_rmse"], **score_predictions(test, solution), "fit_seconds": s["fit_seconds"]}


def build_leaderboard(paths: Paths, solution: pd.DataFrame, names: list[str], with_blend: bool = True) -> pd.DataFrame:
    """Rows for `names` (and the blend, if `with_blend`), sorted best first by Private RMSE (Kaggle's
    final standing). The caller has checked that every artifact read is current.

    `weight` is each model's weight in the blend (at the average row, for a feature-weighted blend).
    """
    weights = {}
    if with_blend:
        weights = read_json(paths.scores("blend"))["weights"]
        names = [*names, "blend"]
    rows = [{**model_row(paths, n, solution), "weight": weights.get(n, np.nan)} for n in names]
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("private_rmse", kind="stable").reset_index(drop=True)


def to_markdown(df: pd.DataFrame, title: str) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    cols = list(df.columns)

    def fmt(v):
        if isinstance(v, float):
            return "" if np.isnan(v) else (f"{v:.1f}" if v >= 10 else f"{v:.4f}")
        return str(v)

    lines = [f"# {title}", "", "| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_leaderboard(df: pd.DataFrame, paths: Paths, title: str) -> None:
    """`leaderboard.csv` and `leaderboard.md` under the output folder."""
    write_csv(df, paths.output / "leaderboard.csv")
    write_text(to_markdown(df, title), paths.output / "leaderboard.md")
