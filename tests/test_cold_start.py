"""Cold start outside `dot`: unseen users and items for biases, nn and gbm, and the report's table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfblend.models import make_model
from cfblend.report.analysis import cold_start_table
from cfblend.runs import side_info

NEW = 10**6


def _rows(train: pd.DataFrame) -> pd.DataFrame:
    u, i, t = int(train["user_id"].iloc[0]), int(train["item_id"].iloc[0]), int(train["timestamp"].iloc[0])
    return pd.DataFrame({"user_id": [u, NEW, u, NEW], "item_id": [i, i, NEW, NEW], "timestamp": [t] * 4})


def test_biases_fall_back_to_the_other_bias_then_the_mean(comp_env):
    comp, _, _ = comp_env
    m = make_model("biases", side_info(comp)).fit(comp.train)
    p = m.predict(_rows(comp.train))
    bu = m.bu_[np.searchsorted(m.users_, comp.train["user_id"].iloc[0])]
    bi = m.bi_[np.searchsorted(m.items_, comp.train["item_id"].iloc[0])]
    np.testing.assert_allclose(p, np.clip([m.mu_ + bu + bi, m.mu_ + bi, m.mu_ + bu, m.mu_], 1, 5))


@pytest.mark.parametrize("name, config", [
    ("nn", {"epochs": 4, "id_dropout": 0.2, "device": "cpu"}),
    ("gbm", {"inner_folds": 2, "max_rounds": 40, "early_stopping": 5, "dot": {"epochs": 3}}),
])
def test_unseen_users_and_items_get_finite_in_scale_predictions_that_use_what_is_known(comp_env, name, config):
    comp, _, _ = comp_env
    m = make_model(name, side_info(comp), config).fit(comp.train)
    p = m.predict(_rows(comp.train))
    assert np.isfinite(p).all() and ((p >= 1) & (p <= 5)).all()
    assert len(np.unique(np.round(p, 6))) > 1  # the known user, the known item change the answer


def test_the_cold_start_table_counts_and_scores_each_group(comp_env):
    comp, _, _ = comp_env
    test = comp.test.copy()
    test.loc[test.index[:3], "item_id"] = NEW  # three rows with an unseen item
    test.loc[test.index[2:4], "user_id"] = NEW  # two with an unseen user, one overlapping
    comp.test = test
    solution = pd.DataFrame({"id": test["id"], "rating": 4.0})
    preds = pd.DataFrame({"m": np.full(len(test), 3.0)}, index=pd.Index(test["id"], name="id"))
    preds.iloc[:4, 0] = 4.0  # exact on the cold rows, one star off elsewhere
    table = cold_start_table(comp, solution, preds).set_index("rows")
    assert table.loc[["unseen_user", "unseen_item", "unseen_any"], "n"].tolist() == [2, 3, 4]
    assert table.loc["unseen_any", "m"] == 0.0 and table.loc["seen_both", "m"] == 1.0
    assert table.loc["seen_both", "n"] == len(test) - 4
