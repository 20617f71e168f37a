"""Learning curves: each epoch-trained member records its training loss and the held-out fold's RMSE, and
watching the held-out rows changes nothing in the fit."""

from __future__ import annotations

import numpy as np
import pytest

from cfblend.competition.scoring import rmse
from cfblend.models import make_model
from cfblend.runs import side_info

CASES = {
    "dot": {"epochs": 4, "device": "cpu"},
    "dot_torch": {"epochs": 3, "device": "cpu"},
    "nn": {"epochs": 3, "batch_size": 128, "device": "cpu"},
    "autorec": {"epochs": 5, "hidden": 16, "batch_items": 16, "lr": 0.01, "l2": 5.0, "device": "cpu"},
    "gbm": {"inner_folds": 2, "max_rounds": 30, "early_stopping": 30, "dot": {"epochs": 2}},
}


@pytest.mark.parametrize("name", list(CASES))
def test_curves_are_recorded_and_watching_changes_nothing(comp_env, name):
    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    plain = make_model(name, side_info(comp), CASES[name]).fit(fit)
    watched = make_model(name, side_info(comp), CASES[name])
    watched.monitor = val
    watched.fit(fit)
    np.testing.assert_array_equal(plain.predict(val), watched.predict(val))
    h = watched.history_
    if name == "gbm":  # per boosting round: its own training rows and early-stopping slice
        assert len(h["train_rmse"]) == len(h["early_stop_rmse"]) == 30
        assert h["train_rmse"][-1] < h["train_rmse"][0]
        # the early-stopping curve is the one the booster stopped on: its best round is the booster's
        assert int(np.argmin(h["early_stop_rmse"])) + 1 == watched.booster.best_iteration
        return
    epochs = CASES[name]["epochs"]
    assert len(h["train_loss"]) == len(h["valid_rmse"]) == epochs
    assert h["train_loss"][-1] < h["train_loss"][0]
    # the last point is the fitted model's held-out RMSE (before clipping to the rating scale)
    assert rmse(val["rating"], watched.predict(val)) <= h["valid_rmse"][-1] + 1e-6
    assert h["valid_rmse"][-1] - rmse(val["rating"], watched.predict(val)) < 0.02
