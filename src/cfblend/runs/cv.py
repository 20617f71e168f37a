"""Cross-validation as a pure computation: fit a model fold by fold, predict the held-out fold
(OOF) and the test set. Nothing here writes artifacts; `runner` fingerprints and writes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cfblend.competition import Competition
from cfblend.competition.scoring import rmse
from cfblend.models import SideInfo, make_model
from cfblend.models.base import Model
from cfblend.models.ids import cold_start_counts
from cfblend.runs.cache import ModelCache

log = logging.getLogger(__name__)


def side_info(comp: Competition) -> SideInfo:
    """What a model may use besides its training rows: the side tables, the rating scale, and the
    (user, item) pairs of every train and test row (never a rating of a row it does not fit on).
    OOF and test rows see the same pairs, so OOF predictions are made as test predictions are."""
    pairs = pd.concat([comp.train[["user_id", "item_id"]], comp.test[["user_id", "item_id"]]], ignore_index=True)
    return SideInfo(comp.users, comp.items, comp.rating_scale, pairs)


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


def cross_validate(name: str, comp: Competition, folds: np.ndarray, overrides: dict[str, Any] | None = None,
                   cache: ModelCache | None = None,
                   on_fold: Callable[[str, Model], None] | None = None) -> CVResult:
    """Fit model `name` on each fold's training part; OOF and test predictions and per-fold scores.

    Test predictions are the mean of the fold models, or, when the model's config says `refit`, the
    predictions of one more model fitted on every train row (OOF predictions always come from the folds).

    `cache` lends fitted models to models built on others (and keeps cacheable fold models);
    `on_fold(label, model)` sees each fitted model, `fold<k>` or `refit` (the runner saves it there).
    """
    side = side_info(comp)
    train, test = comp.train, comp.test
    k_folds = int(folds.max()) + 1
    res = CVResult(oof=np.full(len(train), np.nan), test=np.zeros(len(test)))
    oof_cold = []
    for k in tqdm(range(k_folds), desc=f"{name} folds", disable=None):
        fit_rows, val_rows = train[folds != k], train[folds == k]
        model = make_model(name, side, overrides)
        model.cache = cache
        model.monitor = val_rows  # recorded per epoch for the learning curves, never trained on
        t0 = time.perf_counter()
        model.fit(fit_rows)
        res.fit_seconds.append(time.perf_counter() - t0)
        if model.history_:
            res.curves.append({"fold": k, **model.history_})
        if cache is not None and model.cacheable:
            cache.put(model, fit_rows)
        res.oof[folds == k] = model.predict(val_rows)
        res.test += model.predict(test) / k_folds
        if on_fold is not None:
            on_fold(f"fold{k}", model)
        res.fold_rmse.append(rmse(val_rows["rating"], res.oof[folds == k]))
        oof_cold.append(cold_start_counts(fit_rows, val_rows))
        log.info("%s fold %d: rmse %.4f, fit %.1fs", name, k, res.fold_rmse[-1], res.fit_seconds[-1])
    if getattr(model.config, "refit", False):  # one more fit, on every train row, for the test predictions
        model = make_model(name, side, overrides)
        model.cache = cache
        t0 = time.perf_counter()
        model.fit(train)
        res.fit_seconds.append(time.perf_counter() - t0)
        res.test = model.predict(test)
        if on_fold is not None:
            on_fold("refit", model)
        log.info("%s refit on all %d train rows: %.1fs", name, len(train), res.fit_seconds[-1])
    res.cold_start_oof = {key: sum(c[key] for c in oof_cold) for key in oof_cold[0]}
    res.cold_start_test = cold_start_counts(train, test)
    return res
