"""Cross-validated training: fit fold by fold, predict the held-out fold (OOF) and the test set.

Artifacts (all written atomically): `oof/<model>.parquet` (id, fold, pred), `test/<model>.parquet`
(id, pred = mean over the fold models), `models/<model>/fold<k>.*`, `scores/<model>.json`.
A model already trained with the same config on the same folds is left as is; a different
config under the same name is refused unless `overwrite` is given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cfblend.cache import ModelCache
from cfblend.competition import Competition
from cfblend.encoding import cold_start_counts
from cfblend.io import read_json, write_json, write_parquet
from cfblend.models import SideInfo, make_model, model_class, model_config
from cfblend.paths import Paths
from cfblend.scoring import rmse

log = logging.getLogger(__name__)


class ArtifactConflict(RuntimeError):
    """Artifacts exist for a different config or competition; refusing to overwrite silently."""


def side_info(comp: Competition) -> SideInfo:
    """The side tables and rating scale a model may use."""
    return SideInfo(comp.users, comp.items, comp.rating_scale)


def fingerprint(name: str, config: dict[str, Any], comp_name: str, folds: np.ndarray) -> str:
    """Identity of a training run: model, config, competition and fold assignment."""
    blob = json.dumps({"model": name, "class": model_class(name).__name__, "config": config,
                       "competition": comp_name}, sort_keys=True).encode() + np.ascontiguousarray(folds).tobytes()
    return hashlib.sha256(blob).hexdigest()[:16]


def check_stamp(paths: Paths, comp_name: str) -> None:
    """Refuse to mix artifacts of two competitions in one output folder."""
    if not paths.stamp.exists():
        raise FileNotFoundError(f"{paths.stamp} missing: run `make folds` first")
    stamped = read_json(paths.stamp)["competition"]
    if stamped != comp_name:
        raise ArtifactConflict(f"{paths.output} holds artifacts of {stamped}, not {comp_name}; use another "
                               f"OUT=... folder or rerun `make folds` there")


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

    side = side_info(comp)
    train, test = comp.train, comp.test
    k_folds = int(folds.max()) + 1
    oof = np.full(len(train), np.nan)
    test_pred = np.zeros(len(test))
    fold_rmse, fit_seconds, oof_cold = [], [], []
    model_dir = paths.models(name)
    suffix = model_class(name).suffix
    cache = ModelCache(paths.output / "cache")
    for k in tqdm(range(k_folds), desc=f"{name} folds", disable=None):
        fit_rows, val_rows = train[folds != k], train[folds == k]
        model = make_model(name, side, overrides)
        model.cache = cache
        t0 = time.perf_counter()
        model.fit(fit_rows)
        fit_seconds.append(time.perf_counter() - t0)
        if model.cacheable:
            cache.put(model, fit_rows)
        oof[folds == k] = model.predict(val_rows)
        test_pred += model.predict(test) / k_folds
        model.save(model_dir / f"fold{k}{suffix}")
        fold_rmse.append(rmse(val_rows["rating"], oof[folds == k]))
        oof_cold.append(cold_start_counts(fit_rows, val_rows))
        log.info("%s fold %d: rmse %.4f, fit %.1fs", name, k, fold_rmse[-1], fit_seconds[-1])

    write_parquet(pd.DataFrame({"id": train["id"].to_numpy(), "fold": folds, "pred": oof}), paths.oof(name))
    write_parquet(pd.DataFrame({"id": test["id"].to_numpy(), "pred": test_pred}), paths.test(name))
    cold_oof = {key: sum(c[key] for c in oof_cold) for key in oof_cold[0]}
    scores = {
        "model": name,
        "competition": comp.name,
        "fingerprint": fp,
        "fold_rmse": fold_rmse,
        "cv_rmse_mean": float(np.mean(fold_rmse)),
        "cv_rmse_std": float(np.std(fold_rmse)),
        "oof_rmse": rmse(train["rating"], oof),
        "fit_seconds": float(np.sum(fit_seconds)),
        "fold_fit_seconds": fit_seconds,
        "cold_start": {"oof": cold_oof, "test": cold_start_counts(train, test)},
        "config": config.to_dict(),
    }
    write_json(scores, scores_path)
    log.info("%s: OOF rmse %.4f (cv %.4f ± %.4f), fit %.1fs; cold-start test rows: %s", name, scores["oof_rmse"],
             scores["cv_rmse_mean"], scores["cv_rmse_std"], scores["fit_seconds"], scores["cold_start"]["test"])
    return scores
