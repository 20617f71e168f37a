"""Error analyses read off the artifacts: cold-start rows, side-feature ablation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfblend.competition import Competition
from cfblend.paths import Paths
from cfblend.scoring import rmse


def test_predictions(paths: Paths, models: list[str], ids) -> pd.DataFrame:
    """Test predictions of `models`, one column each, aligned to `ids`."""
    return pd.DataFrame({m: pd.read_parquet(paths.test(m)).set_index("id")["pred"].reindex(ids).to_numpy()
                         for m in models}, index=pd.Index(ids, name="id"))


def cold_start_table(comp: Competition, solution: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    """RMSE of each model on the test rows whose user, item, or either is unseen in train."""
    test = comp.test.set_index("id").loc[preds.index]
    y = solution.set_index("id")["rating"].reindex(preds.index).to_numpy()
    groups = {"unseen_user": ~test["user_id"].isin(comp.train["user_id"]).to_numpy(),
              "unseen_item": ~test["item_id"].isin(comp.train["item_id"]).to_numpy()}
    groups["unseen_any"] = groups["unseen_user"] | groups["unseen_item"]
    groups["seen_both"] = ~groups["unseen_any"]
    rows = []
    for name, mask in groups.items():
        row = {"rows": name, "n": int(mask.sum())}
        for m in preds.columns:
            row[m] = rmse(y[mask], preds[m].to_numpy()[mask]) if mask.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
