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
import threading
from concurrent.futures import ThreadPoolExecutor
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
from cfblend.runs.cv import cross_validate, fold_pool, side_by_side_processes

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
    warn_if_worse_than_mean(name, scores["oof_rmse"], comp.train["rating"].to_numpy(), folds)
    return scores


def fold_mean_rmse(y: np.ndarray, folds: np.ndarray) -> float:
    """OOF RMSE of the plainest prediction: each held-out rating predicted by its fold's training mean (what
    `global_mean` scores)."""
    pred = np.empty(len(y))
    for k in np.unique(folds):
        held = folds == k
        pred[held] = y[~held].mean() if (~held).any() else y.mean()
    return float(np.sqrt(np.mean((y - pred) ** 2)))


def warn_if_worse_than_mean(name: str, oof_rmse: float, y: np.ndarray, folds: np.ndarray) -> bool:
    """Log a warning, and return True, when `name`'s OOF RMSE is worse than each fold's training mean: a member
    that cannot beat the mean has learned something wrong for this dataset (on ml-latest-small, whose movies have a
    median of three ratings, AutoRec with its ml-100k defaults copied each training rating back and scored 1.25
    against the mean's 1.04), and the blend should not be trusted to sort it out."""
    base = fold_mean_rmse(y, folds)
    if not oof_rmse > base + 1e-9:  # global_mean itself scores `base`, give or take rounding
        return False
    log.warning("%s: OOF rmse %.4f is worse than predicting each fold's training mean (%.4f): its config does not "
                "suit this dataset; see its docstring (`make models`) and `models/tuned.yaml`", name, oof_rmse, base)
    return True


def train_members(names: list[str], comp: Competition, folds: np.ndarray, paths: Paths,
                  overrides: dict[str, dict[str, Any] | None], overwrite: bool = False,
                  executor=None) -> dict[str, Any]:
    """`train_cv` of each of `names`, in order; their scores by name. In a local run, consecutive members whose
    folds run side by side (`runs.cv.side_by_side_processes`) share one pool of single-threaded processes,
    every fold job of the group queued at once: no core waits at the end of each member for its last fold
    (5 folds on 2 cores: a third round with one fold). The members with the longest folds (`Model.fold_cost` times
    the config's `bags`: the Gibbs samplers, then autorec) are queued first and the others' shorter folds fill the
    cores at the end; the queue's order is fixed, so the schedule is the same from run to run. Members before a
    group are trained before it starts (`gbm` reuses `dot`'s fold models). Scores come back in `names`' order."""
    local = executor is None or executor.name == "local"

    def pooled(name: str) -> int:
        return side_by_side_processes(model_class(name), len(comp.train), int(folds.max()) + 1) if local else 1

    scores: dict[str, Any] = {}
    i = 0
    while i < len(names):
        group = [names[i]]
        while pooled(group[0]) > 1 and i + len(group) < len(names) and pooled(names[i + len(group)]) > 1:
            group.append(names[i + len(group)])
        i += len(group)
        pool = fold_pool(group, len(comp.train), int(folds.max()) + 1) if len(group) > 1 else None
        if pool is None:  # one member (it may still pool its own folds), or memory has shrunk since
            scores |= {n: train_cv(n, comp, folds, paths, overrides.get(n), overwrite, executor) for n in group}
            continue
        threads = ThreadPoolExecutor(len(group))
        try:  # a thread per member submits its fold jobs to the one pool, collects them and commits its artifacts
            runs = {}
            for n in sorted(group, key=lambda n: -model_class(n).fold_cost * model_config(n, overrides.get(n)).bags):
                queue = _Queue(pool)
                runs[n] = threads.submit(train_cv, n, comp, folds, paths, overrides.get(n), overwrite, queue)
                while not (queue.submitted.wait(0.05) or runs[n].done()):  # its folds queued (or nothing to do)
                    pass
            scores |= {n: runs[n].result() for n in group}
        finally:
            pool.close()  # after a failure: the other members' queued folds are cancelled, their staging removed
            threads.shutdown()
    return scores


class _Queue:
    """A shared process pool as one member's run sees it: says when that member's fold jobs are queued."""

    name = "processes"

    def __init__(self, pool):
        self.pool, self.submitted = pool, threading.Event()

    def map(self, fn, jobs):
        """The pool's `map` (every job queued on return), then `submitted` set."""
        results = self.pool.map(fn, jobs)
        self.submitted.set()
        return results
