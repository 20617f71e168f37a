"""`make report`: train the baselines if missing, then write the leaderboard."""

from __future__ import annotations

import logging

import pandas as pd

from cfblend.competition import Competition
from cfblend.folds import read_folds
from cfblend.leaderboard import build_leaderboard, write_leaderboard
from cfblend.models import BASELINES, REGISTRY
from cfblend.paths import Paths
from cfblend.runner import train_cv

log = logging.getLogger(__name__)


def trained_models(paths: Paths) -> list[str]:
    """Registered models with scores and test predictions in the output folder."""
    return [n for n in REGISTRY if paths.scores(n).exists() and paths.test(n).exists()]


def run_report(comp: Competition, paths: Paths) -> pd.DataFrame:
    """Score every trained model (and the baselines) against the hidden solution."""
    folds = read_folds(paths.folds, comp.train)
    for name in BASELINES:
        train_cv(name, comp, folds, paths)
    solution = pd.read_csv(paths.solution(comp.name))
    board = build_leaderboard(paths, solution, trained_models(paths))
    write_leaderboard(board, paths, f"Leaderboard: {comp.name}")
    log.info("leaderboard (%s):\n%s", comp.name, board.to_string(index=False, float_format="%.4f"))
    return board
