"""`make report`: the leaderboard, the cold-start table, the ablation and the report page, all read
off what `make train` / `make all` wrote. It never trains: a missing member is named in the log, a
stale one (made from another version of the competition or other folds, or incomplete) is left
out with a warning that says what to run, and a stale blend is refused."""

from __future__ import annotations

import logging

import pandas as pd

from cfblend.competition import Competition
from cfblend.competition.folds import load_folds
from cfblend.ensemble.run import check_blend
from cfblend.io import write_csv, write_text
from cfblend.models import ANALYSIS_MODELS, default_models
from cfblend.paths import Paths
from cfblend.report.analysis import cold_start_table, test_predictions
from cfblend.report.leaderboard import build_leaderboard, to_markdown, write_leaderboard
from cfblend.report.similar import EMBEDDING_MEMBERS
from cfblend.runs import artifacts, trained_members
from cfblend.runs.artifacts import StaleArtifact

log = logging.getLogger(__name__)


LOADED = {"dot_no_heavy", "gbm", *EMBEDDING_MEMBERS}  # members whose saved models the report loads


def run_report(comp: Competition, paths: Paths, html: bool = True) -> pd.DataFrame:
    """Score every trained member against the hidden solution and write the report's files."""
    _, folds_sha = load_folds(paths, comp)
    current = []
    for m in trained_members(paths, with_analysis=True):
        try:
            artifacts.check(paths, m, comp.fingerprint, folds_sha, loads_models=m in LOADED)
            current.append(m)
        except StaleArtifact as e:
            log.warning("left out of the report: %s", e)
    members = [m for m in current if m not in ANALYSIS_MODELS]
    if not members:
        raise FileNotFoundError(f"no trained model in {paths.output}: run `make train MODEL=...` or `make all` first")
    missing = [m for m in (*default_models(comp.meta.get("dataset", "")), *ANALYSIS_MODELS) if m not in current]
    if missing:
        log.warning("not trained, so not in the report: %s (`make train MODEL=%s`)", ", ".join(missing),
                    ",".join(missing))
    blend = paths.scores("blend").exists()
    if blend:
        check_blend(paths, comp, folds_sha)
    else:
        log.warning("no blend in %s: run `make blend` for its row and submission.csv", paths.output)
    solution = pd.read_csv(paths.solution(comp.name))
    board = build_leaderboard(paths, solution, members, with_blend=blend)
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
        from cfblend.report.page import write_report_html

        write_report_html(comp, paths, board, cold, solution, preds, current)
    return board


def write_importance(paths: Paths, name: str) -> pd.Series:
    """Mean gain over the fold boosters -> `<name>_importance.csv` and `.png`."""
    import lightgbm as lgb

    from cfblend.io import atomic_path
    from cfblend.report.plots import importance_png

    gains = []
    for f in sorted(paths.models(name).glob("fold*.txt")):
        b = lgb.Booster(model_file=str(f))
        gains.append(pd.Series(b.feature_importance("gain"), index=b.feature_name()))
    gain = pd.concat(gains, axis=1).mean(axis=1).sort_values(ascending=False).rename("gain")
    write_csv(gain.rename_axis("feature").reset_index(), paths.output / f"{name}_importance.csv")
    with atomic_path(paths.output / f"{name}_importance.png") as tmp:
        tmp.write_bytes(importance_png(gain))
    return gain
