"""Raw ids (or any category values) to contiguous indices, with index 0 reserved for anything
unseen in training: the one lookup every model uses."""

from __future__ import annotations

import numpy as np
import pandas as pd


class IdIndex:
    """Maps known keys to 1..n and any other value (unseen, missing) to 0, the cold-start slot.

    Keys are sorted and made unique by default; `ordered=True` keeps them as given (a vocabulary
    whose order is already fixed).
    """

    def __init__(self, keys, ordered: bool = False):
        self.ids = np.asarray(keys) if ordered else np.unique(np.asarray(keys))
        self._index = pd.Index(self.ids)

    def __len__(self) -> int:
        """Number of slots, the unknown slot included."""
        return len(self.ids) + 1

    def __call__(self, values) -> np.ndarray:
        """Indices of `values`; 0 for values never seen."""
        return self._index.get_indexer(np.asarray(values)).astype(np.int64) + 1

    def known(self, values) -> np.ndarray:
        """Boolean mask of the values seen in training."""
        return self(values) > 0

    def take(self, table: np.ndarray, values, fill: float = 0.0) -> np.ndarray:
        """Rows of `table` (one per key, in key order) for `values`; `fill` for unseen values."""
        table = np.asarray(table)
        idx = self(values)
        if not len(self.ids):
            return np.full((len(idx), *table.shape[1:]), fill, dtype=table.dtype)
        out = table[np.maximum(idx - 1, 0)]  # a copy (fancy indexing), in the table's dtype
        out[idx == 0] = fill
        return out


def user_day_keys(user_index, timestamps) -> np.ndarray:
    """One integer per row for its (user index, UTC calendar day), for a bias or one-hot per rating session.
    Index 0 (an unknown user) gives keys below 100,000, never those of a known user."""
    return np.asarray(user_index, np.int64) * 100_000 + np.asarray(timestamps, np.int64) // 86400


def cold_start_counts(train: pd.DataFrame, rows: pd.DataFrame) -> dict[str, int]:
    """How many of `rows` have a user, an item, or either, never seen in `train`."""
    new_user = ~rows["user_id"].isin(train["user_id"]).to_numpy()
    new_item = ~rows["item_id"].isin(train["item_id"]).to_numpy()
    return {"rows": len(rows), "unseen_user": int(new_user.sum()), "unseen_item": int(new_item.sum()),
            "unseen_any": int((new_user | new_item).sum())}
