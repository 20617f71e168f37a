"""Raw ids to contiguous indices, with index 0 reserved for anything unseen in training."""

from __future__ import annotations

import numpy as np
import pandas as pd


class IdIndex:
    """Maps the ids seen in training to 1..n; any other id maps to 0 (the cold-start slot)."""

    def __init__(self, ids):
        self.ids = np.unique(np.asarray(ids))

    def __len__(self) -> int:
        """Number of slots, the unknown slot included."""
        return len(self.ids) + 1

    def __call__(self, values) -> np.ndarray:
        """Indices of `values`; 0 for ids never seen."""
        values = np.asarray(values)
        pos = np.searchsorted(self.ids, values)
        pos_c = np.minimum(pos, max(len(self.ids) - 1, 0))
        found = (len(self.ids) > 0) & (self.ids[pos_c] == values) if len(self.ids) else np.zeros(len(values), bool)
        return np.where(found, pos_c + 1, 0).astype(np.int64)

    def known(self, values) -> np.ndarray:
        """Boolean mask of the values seen in training."""
        return self(values) > 0


def cold_start_counts(train: pd.DataFrame, rows: pd.DataFrame) -> dict[str, int]:
    """How many of `rows` have a user, an item, or either, never seen in `train`."""
    new_user = ~rows["user_id"].isin(train["user_id"]).to_numpy()
    new_item = ~rows["item_id"].isin(train["item_id"]).to_numpy()
    return {"rows": len(rows), "unseen_user": int(new_user.sum()), "unseen_item": int(new_item.sum()),
            "unseen_any": int((new_user | new_item).sum())}
