"""Cross-validated training runs: fingerprint the run, call `cv.cross_validate`, write the artifacts.

Artifacts (all written atomically): `oof/<model>.parquet` (id, fold, pred), `test/<model>.parquet`
(id, pred = mean over the fold models), `models/<model>/fold<k>.*`, `scores/<model>.json`.
A model already trained with the same config on the same folds is left as is; a different
config under the same name is refused unless `overwrite` is given.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from cfblend.competition import Competition
from cfblend.competition.folds import check_stamp
from cfblend.errors import ArtifactConflict
from cfblend.io import read_json, write_json, write_parquet
from cfblend.models import ANALYSIS_MODELS, REGISTRY, model_class, model_config
from cfblend.paths import Paths
from cfblend.runs.cache import ModelCache
from cfblend.runs.cv import cross_validate

log = logging.getLogger(__name__)


def fingerprint(name: str, config: dict[str, Any], comp_name: str, folds: np.ndarray) -> str:
    """Identity of a training run: model, config, competition and fold assignment."""
    blob = json.dumps({"model": name, "class": model_class(name).__name__, "config": config,
                       "competition": comp_name}, sort_keys=True).encode() + np.ascontiguousarray(folds).tobytes()
    return hashlib.sha256(blob).hexdigest()[:16]


def trained_members(paths: Paths, with_analysis: bool = False) -> list[str]:
    """Registered models with scores and test predictions in the output folder, in registry order;
    the analysis-only members (`ANALYSIS_MODELS`) unless asked for."""
    return [n for n in REGISTRY if paths.scores(n).exists() and paths.test(n).exists()
            and (with_analysis or n not in ANALYSIS_MODELS)]


def train_cv(name: str, comp: Competition, folds: np.ndarray, paths: Paths,
             overrides: dict[str, Any] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Train model `name` on each fold; write OOF, test predictions, fold models and scores."""
    check_stamp(paths, comp.name)
    config = model_config(name, overrides)
    fp = fingerprint(name, config.to_dict(), comp.name, folds)
    scores_path = paths.scores(name)
    if scores_path.exists():
        old = read_json(scores_path)
        done = all(p.exists() for p in (paths.oof(name), paths.test(name)))
        if old.get("fingerprint") == fp and done and not overwrite:
            log.info("%s: already trained with this config (fingerprint %s); nothing to do", name, fp)
            return old
        if old.get("fingerprint") != fp and not overwrite:
            raise ArtifactConflict(
                f"{scores_path} was written with another config or folds (fingerprint {old.get('fingerprint')}, "
                f"now {fp}); rerun with FORCE=1 (--overwrite) to replace it, or register the config under a new name")

    suffix = model_class(name).suffix
    res = cross_validate(name, comp, folds, overrides, cache=ModelCache(paths.output / "cache"),
                         on_fold=lambda k, model: model.save(paths.models(name) / f"fold{k}{suffix}"))
    train, test = comp.train, comp.test
    write_parquet(pd.DataFrame({"id": train["id"].to_numpy(), "fold": folds, "pred": res.oof}), paths.oof(name))
    write_parquet(pd.DataFrame({"id": test["id"].to_numpy(), "pred": res.test}), paths.test(name))
    scores = {"model": name, "competition": comp.name, "fingerprint": fp, **res.scores(train["rating"].to_numpy()),
              "config": config.to_dict()}
    write_json(scores, scores_path)
    log.info("%s: OOF rmse %.4f (cv %.4f ± %.4f), fit %.1fs; cold-start test rows: %s", name, scores["oof_rmse"],
             scores["cv_rmse_mean"], scores["cv_rmse_std"], scores["fit_seconds"], scores["cold_start"]["test"])
    return scores
