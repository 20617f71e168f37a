"""The whole competition in one call: data, competition, folds, models, blend, report.

`make all` runs the same steps one command at a time; the Kaggle kernel calls `run_pipeline`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cfblend.competition import Competition, competition_name, make_competition
from cfblend.competition.folds import ensure_folds
from cfblend.data import get_spec, load_dataset
from cfblend.data.sources import KAGGLE_INPUT, ensure_dataset
from cfblend.ensemble import BlendConfig, run_blend
from cfblend.ensemble.predict import export_embeddings
from cfblend.models import ANALYSIS_MODELS, available, default_models, model_class, parse_set
from cfblend.paths import Paths
from cfblend.report.run import run_report
from cfblend.runs import train_members
from cfblend.runs.tune import with_tuned

log = logging.getLogger(__name__)


def run_pipeline(dataset: str = "ml-100k", split: str | None = None, paths: Paths | None = None,
                 models: tuple[str, ...] | list[str] | None = None, k: int = 5, seed: int = 42,
                 overrides: str = "", kaggle_input: Path | str = KAGGLE_INPUT, network: bool = True,
                 blend_method: str = "auto", html: bool = True, data_dir: Path | str | None = None,
                 device: str = "", overwrite: bool = False, executor=None) -> Path:
    """Run every step; return the path of the written `submission.csv`.

    `models` (default: `default_models(dataset)`) are trained and blended; the analysis members
    (`ANALYSIS_MODELS`) are trained for the report. `overrides`: config overrides in the `SET` syntax
    (`"epochs=2 gbm.inner_folds=2"`); `device` goes to every model that has one unless `overrides` sets
    it; `overwrite` replaces folds and models made with another config (`FORCE=1`); `executor` runs the
    fold jobs (`runs.executor`; default: in this process).
    """
    paths = paths or Paths()
    models = default_models(dataset) if models is None else models
    spec = get_spec(dataset)
    split = split or spec.default_split
    missing = [m for m in models if not available(m)]
    if missing:  # Kaggle's image has no myFM, and the kernel runs offline
        log.warning("left out: %s (needs %s, not installed here)", ", ".join(missing),
                    ", ".join(sorted({str(model_class(m).requires) for m in missing})))
        models = [m for m in models if m not in missing]
    trained = [*models, *(m for m in ANALYSIS_MODELS if m not in models)]
    defaults = {"seed": seed, **({"device": device} if device else {})}
    per_model = with_tuned(dataset, parse_set(overrides, trained, defaults))
    raw = ensure_dataset(spec, paths.input, data_dir=data_dir, kaggle_input=kaggle_input, network=network)
    name = competition_name(dataset, split)
    folder = make_competition(load_dataset(dataset, raw), split, paths.competition(name), seed=seed)
    comp = Competition.load(folder)
    fold_of = ensure_folds(comp, paths, k=k, seed=seed, overwrite=overwrite)
    train_members(trained, comp, fold_of, paths, {m: per_model[m] or None for m in trained}, overwrite, executor)
    run_blend(comp, paths, BlendConfig(models=list(models), method=blend_method))
    export_embeddings(paths, comp)
    run_report(comp, paths, html=html)
    return paths.output / "submission.csv"
