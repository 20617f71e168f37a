"""Cross-validated training runs: fingerprint the run, call `cv.cross_validate`, commit the artifacts.

Artifacts: `oof/<model>.parquet` (id, fold, pred), `test/<model>.parquet` (id, pred = mean over
the fold models), `models/<model>/fold<k>.*` and `scores/<model>.json`, the set's manifest
(`artifacts`). They are staged and become visible together, or not at all. A model already
trained with the same fingerprint (model, config, code, competition content, folds) and intact
files is left as is. A different config under the same name is refused unless `overwrite`;
a run that is only stale (the competition, the folds or the model's code changed, or a
previous run was killed) is redone, saying why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from typing import Any

import numpy as np
import pandas as pd

from cfblend.competition import Competition
from cfblend.competition.folds import check_stamp, folds_fingerprint
from cfblend.errors import ArtifactConflict
from cfblend.io import fault_point, read_json, write_parquet
from cfblend.models import ANALYSIS_MODELS, REGISTRY, model_class, model_config
from cfblend.paths import Paths
from cfblend.runs import artifacts
from cfblend.runs.cache import ModelCache
from cfblend.runs.cv import cross_validate

log = logging.getLogger(__name__)


def fingerprint(name: str, config: dict[str, Any], competition_sha: str, folds_sha: str, code: str) -> str:
    """Identity of a training run: model, config, the model's code, competition content, fold assignment."""
    blob = json.dumps({"model": name, "class": model_class(name).__name__, "config": config, "code": code,
                       "competition_sha": competition_sha, "folds_sha": folds_sha}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def trained_members(paths: Paths, with_analysis: bool = False) -> list[str]:
    """Registered models with any of their artifacts in the output folder (a manifest, or predictions
    of a run that did not finish), in registry order; the analysis-only members (`ANALYSIS_MODELS`)
    unless asked for. Whether their sets are complete and current is `artifacts.check`'s job."""
    return [n for n in REGISTRY if (with_analysis or n not in ANALYSIS_MODELS)
            and any(p.exists() for p in (paths.scores(n), paths.oof(n), paths.test(n)))]


def _same_config(name: str, old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    try:
        return model_class(name).config_cls.from_dict(old or {}).to_dict() == new
    except ValueError:  # keys of an older version
        return False


def train_cv(name: str, comp: Competition, folds: np.ndarray, paths: Paths,
             overrides: dict[str, Any] | None = None, overwrite: bool = False, executor=None) -> dict[str, Any]:
    """Train model `name` on each fold; commit OOF, test predictions, fold models and the manifest. The fold
    jobs run on `executor` (`runs.executor`: here by default, or on Dask)."""
    stamp = check_stamp(paths, comp)
    folds_sha = folds_fingerprint(folds)
    if folds_sha != stamp.get("folds_sha"):
        raise ArtifactConflict(f"the folds given are not the ones stamped in {paths.stamp}: rerun `make folds`")
    config = model_config(name, overrides)
    code = artifacts.code_fingerprint(model_class(name))
    fp = fingerprint(name, config.to_dict(), comp.fingerprint, folds_sha, code)
    scores_path = paths.scores(name)
    if scores_path.exists():
        old = read_json(scores_path)
        if old.get("fingerprint") == fp and not overwrite and artifacts.valid(paths, name, comp.fingerprint, folds_sha):
            log.info("%s: already trained with this config (fingerprint %s); nothing to do", name, fp)
            return old
        if not overwrite and not _same_config(name, old.get("config"), config.to_dict()):
            raise ArtifactConflict(
                f"{scores_path} was written with another config; rerun with FORCE=1 (--overwrite) to replace it, or "
                "register the config under a new name")
        if not overwrite:
            log.info("%s: retraining: its artifacts are stale or incomplete (competition, folds or code changed, or a "
                     "run was stopped)", name)

    suffix = model_class(name).suffix
    stage = artifacts.staging(paths, name)
    try:
        (stage / "models").mkdir(parents=True, exist_ok=True)
        res = cross_validate(name, comp, folds, overrides, cache=ModelCache(paths.output / "cache"),
                             save_dir=stage / "models", suffix=suffix, executor=executor)
        train, test = comp.train, comp.test
        write_parquet(pd.DataFrame({"id": train["id"].to_numpy(), "fold": folds, "pred": res.oof}),
                      stage / "oof.parquet")
        write_parquet(pd.DataFrame({"id": test["id"].to_numpy(), "pred": res.test}), stage / "test.parquet")
        fault_point("train:staged")
        scores = artifacts.commit(paths, name, stage, {
            "model": name, "competition": comp.name, "competition_sha": comp.fingerprint, "folds_sha": folds_sha,
            "fingerprint": fp, "code": code, **res.scores(train["rating"].to_numpy()), "config": config.to_dict()})
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log.info("%s: OOF rmse %.4f (cv %.4f ± %.4f), fit %.1fs; cold-start test rows: %s", name, scores["oof_rmse"],
             scores["cv_rmse_mean"], scores["cv_rmse_std"], scores["fit_seconds"], scores["cold_start"]["test"])
    return scores
