"""One seeded K-fold assignment of the train rows, written once and read by every model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfblend.io import write_csv


def make_folds(train: pd.DataFrame, k: int = 5, seed: int = 42) -> pd.DataFrame:
    """Assign each train row (by id) to one of `k` folds of near-equal size, seeded."""
    if k < 2:
        raise ValueError(f"need at least 2 folds, got {k}")
    n = len(train)
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return pd.DataFrame({"id": train["id"].to_numpy(), "fold": fold})


def write_folds(folds: pd.DataFrame, path) -> None:
    """Write the fold assignment atomically."""
    write_csv(folds, path)


def read_folds(path, train: pd.DataFrame) -> np.ndarray:
    """The fold of each train row, aligned to `train`; refuses a file made for other rows."""
    folds = pd.read_csv(path, engine="pyarrow")
    if len(folds) != len(train) or not np.array_equal(np.sort(folds["id"].to_numpy()), np.sort(train["id"].to_numpy())):
        raise ValueError(f"{path}: fold ids do not match train.csv; rerun `make folds`")
    return folds.set_index("id").loc[train["id"], "fold"].to_numpy()
