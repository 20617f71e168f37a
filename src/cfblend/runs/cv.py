"""Cross-validation as a pure computation: fit a model fold by fold, predict the held-out fold
(OOF) and the test set. Nothing here writes artifacts; `runner` fingerprints and writes."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cfblend.competition import Competition
from cfblend.competition.scoring import rmse
from cfblend.models import SideInfo, make_model, model_class, model_config
from cfblend.models.ids import cold_start_counts
from cfblend.runs.allocator import reuse_freed_memory
from cfblend.runs.artifacts import model_file
from cfblend.runs.cache import ModelCache

log = logging.getLogger(__name__)


def side_info(comp: Competition) -> SideInfo:
    """What a model may use besides its training rows: the side tables, the rating scale, and the
    (user, item, timestamp) of every train and test row (never a rating of a row it does not fit on).
    OOF and test rows see the same pairs, so OOF predictions are made as test predictions are."""
    cols = ["user_id", "item_id", "timestamp"]
    pairs = pd.concat([comp.train[cols], comp.test[cols]], ignore_index=True)
    return SideInfo(comp.users, comp.items, comp.rating_scale, pairs)


def available_memory() -> int:
    """Bytes of memory this machine can still give (Linux's MemAvailable; else the free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


SIDE_BY_SIDE_ROWS = (50_000, 5_000_000)  # train rows for which a `side_by_side` member's folds run side by side


def side_by_side_processes(cls: type, n_train: int, n_jobs: int) -> int:
    """How many fold fits of model class `cls` a local run puts side by side, one single-threaded process each
    (1: one after another in this process). A `single_threaded` member always, as far as memory holds; a
    `side_by_side` one for a train set of `SIDE_BY_SIDE_ROWS`: below, starting the processes costs more than
    it saves; above, a fold's large batches keep every core busy and two folds may not fit in memory."""
    if cls.single_threaded or (cls.side_by_side and SIDE_BY_SIDE_ROWS[0] <= n_train <= SIDE_BY_SIDE_ROWS[1]):
        return fold_processes(cls.fit_bytes_per_rating, n_train, n_jobs)
    return 1


def fold_pool(names: list[str], n_train: int, n_jobs: int):
    """A `ProcessExecutor` of single-threaded processes for the fold jobs of the members `names` (as many as
    `side_by_side_processes` allows for every one of them), or None when they run one after another here."""
    from cfblend.runs.executor import ProcessExecutor

    n = min(side_by_side_processes(model_class(m), n_train, n_jobs) for m in names)
    if n <= 1:
        return None
    log.info("%s: folds run %d at a time in single-threaded processes of their own", ", ".join(names), n)
    return ProcessExecutor(n, threads=1)


def fold_processes(bytes_per_rating: float, n_train: int, n_jobs: int) -> int:
    """How many fold fits of a one-core member may run side by side: one per core, as many as there are
    jobs, and no more than the available memory holds at `bytes_per_rating` of the training set (plus 1 GB)
    each: at 25M ratings a Bayesian FM fold takes 10.5 GB, and two of them would not fit in 24 GB."""
    need = bytes_per_rating * n_train + 2**30
    return max(1, min(os.cpu_count() or 1, n_jobs, int(available_memory() // need)))


@dataclass
class CVResult:
    """OOF predictions (one per train row), test predictions (mean of the fold models) and scores."""

    oof: np.ndarray
    test: np.ndarray
    fold_rmse: list[float] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    cold_start_oof: dict[str, int] = field(default_factory=dict)
    cold_start_test: dict[str, int] = field(default_factory=dict)
    curves: list[dict[str, Any]] = field(default_factory=list)  # per fold: epoch losses (train, held-out)

    def scores(self, y: np.ndarray) -> dict[str, Any]:
        """The summary every scores file holds, given the train ratings `y`."""
        return {"fold_rmse": self.fold_rmse, "cv_rmse_mean": float(np.mean(self.fold_rmse)),
                "cv_rmse_std": float(np.std(self.fold_rmse)), "oof_rmse": rmse(y, self.oof),
                "fit_seconds": float(np.sum(self.fit_seconds)), "fold_fit_seconds": self.fit_seconds,
                "cold_start": {"oof": self.cold_start_oof, "test": self.cold_start_test},
                "learning_curves": self.curves}


def fit_fold(name: str, comp: Competition, side: SideInfo, folds: np.ndarray, k: int,
             overrides: dict[str, Any] | None = None, cache_dir: Path | None = None,
             save_to: Path | None = None, with_test: bool = True) -> dict[str, Any]:
    """One job of a cross-validation: fit `name` on the rows outside fold `k` (every train row for `k=-1`, the
    refit), predict the held-out fold and (`with_test`) the test rows, save the model to `save_to`. A pure
    function of its arguments, so any executor (this process, a Dask worker) can run it. `side`: `side_info(comp)`.

    With `bags` > 1 in the model's config, the job fits that many models on the same rows, seeded `seed`,
    `seed + 1`, ..., and its predictions are their mean; bag b > 0 is saved beside the first
    (`artifacts.model_file`). The first bag is the model `bags=1` fits, and the one the cache lends."""
    train, test = comp.train, comp.test
    # this process: freed step temporaries reused, not faulted in again
    reuse_freed_memory(len(train), model_class(name).large_step_blocks)
    fit_rows = train if k < 0 else train[folds != k]
    val_rows = train.iloc[:0] if k < 0 else train[folds == k]
    cache = ModelCache(cache_dir) if cache_dir is not None else None
    cfg = model_config(name, overrides)
    out: dict[str, Any] = {"k": k, "fit_seconds": 0.0}
    if with_test:
        out["test"] = np.zeros(len(test))
    if k >= 0:
        out["oof"] = np.zeros(len(val_rows))
    for b in range(cfg.bags):
        model = make_model(name, side, {**(overrides or {}), "seed": cfg.seed + b})
        model.cache = cache
        model.monitor = val_rows if len(val_rows) else None  # for the learning curves, never trained on
        t0 = time.perf_counter()
        model.fit(fit_rows)
        out["fit_seconds"] += time.perf_counter() - t0
        if b == 0:
            out["history"] = model.history_
            if cache is not None and model.cacheable and k >= 0:
                cache.put(model, fit_rows)
        if with_test:
            out["test"] += model.predict(test) / cfg.bags
        if k >= 0:
            out["oof"] += model.predict(val_rows) / cfg.bags
        if save_to is not None:
            model.save(model_file(save_to, b))
        if cfg.bags > 1:
            log.info("%s fold %d: bag %d of %d fitted", name, k, b + 1, cfg.bags)
    if k >= 0:
        out["rmse"] = rmse(val_rows["rating"], out["oof"])
        out["cold"] = cold_start_counts(fit_rows, val_rows)
    return out


def cross_validate(name: str, comp: Competition, folds: np.ndarray, overrides: dict[str, Any] | None = None,
                   cache: ModelCache | None = None, save_dir: Path | None = None, suffix: str = ".pt",
                   executor=None) -> CVResult:
    """Fit model `name` on each fold's training part; OOF and test predictions and per-fold scores.

    Test predictions are the mean of the fold models, or, when the model's config says `refit`, the
    predictions of one more model fitted on every train row (OOF predictions always come from the folds).

    Each fold is one job (`fit_fold`) run by `executor` (`runs.executor`; default: here, in order, except
    that the folds of a model that fits on one core, or runs faster so, run side by side, a single-threaded
    process per core: `side_by_side_processes`).
    `cache` lends fitted models to models built on others (and keeps cacheable fold models); with
    `save_dir`, each fitted model is saved there as `fold<k><suffix>` or `refit<suffix>`.
    """
    from cfblend.runs.executor import LocalExecutor

    executor = executor or LocalExecutor()
    k_folds = int(folds.max()) + 1
    refit = model_config(name, overrides).refit
    side = side_info(comp)  # once: every job shares it
    jobs = [{"name": name, "comp": comp, "side": side, "folds": folds, "k": k, "overrides": overrides,
             "cache_dir": cache.folder if cache is not None else None,
             "save_to": save_dir / f"{'refit' if k < 0 else f'fold{k}'}{suffix}" if save_dir is not None else None}
            for k in [*range(k_folds), *([-1] if refit else [])]]
    res = CVResult(oof=np.full(len(comp.train), np.nan), test=np.zeros(len(comp.test)))
    oof_cold = []
    pool = fold_pool([name], len(comp.train), len(jobs)) if executor.name == "local" else None
    executor = pool or executor
    try:
        for out in tqdm(_results(executor, jobs), total=len(jobs), desc=f"{name} folds", disable=None):
            k = out["k"]
            res.fit_seconds.append(out["fit_seconds"])
            if k < 0:
                res.test = out["test"]
                log.info("%s refit on all %d train rows: %.1fs", name, len(comp.train), out["fit_seconds"])
                continue
            res.oof[folds == k] = out["oof"]
            if not refit:
                res.test += out["test"] / k_folds
            res.fold_rmse.append(out["rmse"])
            oof_cold.append(out["cold"])
            if out["history"]:
                res.curves.append({"fold": k, **out["history"]})
            log.info("%s fold %d: rmse %.4f, fit %.1fs", name, k, out["rmse"], out["fit_seconds"])
    finally:
        if pool is not None:
            pool.close()
    res.cold_start_oof = {key: sum(c[key] for c in oof_cold) for key in oof_cold[0]}
    res.cold_start_test = cold_start_counts(comp.train, comp.test)
    return res


def _results(executor, jobs: list[dict[str, Any]]):
    """The jobs' results in job order: one at a time here (so progress shows), all at once elsewhere."""
    if executor.name == "local":
        for job in jobs:
            yield fit_fold(**job)
    else:
        yield from executor.map(fit_fold, jobs)
