"""The whole competition in one call: data, competition, folds, models, blend, report.

`make all` runs the same steps one command at a time; the Kaggle kernel calls `run_pipeline`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cfblend.blend import BlendConfig, run_blend
from cfblend.competition import Competition, competition_name, make_competition
from cfblend.data import get_spec, load_dataset
from cfblend.data.sources import KAGGLE_INPUT, ensure_dataset
from cfblend.folds import ensure_folds
from cfblend.paths import Paths
from cfblend.report import run_report
from cfblend.runner import train_cv

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("global_mean", "biases", "dot", "nn", "nn_ids", "gbm")


def run_pipeline(dataset: str = "ml-100k", split: str | None = None, paths: Paths | None = None,
                 models: tuple[str, ...] | list[str] = DEFAULT_MODELS, k: int = 5, seed: int = 42,
                 overrides: dict[str, dict[str, Any]] | None = None, kaggle_input: Path | str = KAGGLE_INPUT,
                 network: bool = True, blend_method: str = "auto", html: bool = True) -> Path:
    """Run every step; return the path of the written `submission.csv`."""
    paths = paths or Paths()
    spec = get_spec(dataset)
    split = split or spec.default_split
    raw = ensure_dataset(spec, paths.input, kaggle_input=kaggle_input, network=network)
    name = competition_name(dataset, split)
    folder = make_competition(load_dataset(dataset, raw), split, paths.competition(name), seed=seed)
    comp = Competition.load(folder)
    fold_of = ensure_folds(name, comp.train, paths, k=k, seed=seed)
    for m in models:
        train_cv(m, comp, fold_of, paths, overrides=(overrides or {}).get(m))
    run_blend(comp, paths, BlendConfig(models=list(models), method=blend_method))
    run_report(comp, paths, html=html)
    return paths.output / "submission.csv"
