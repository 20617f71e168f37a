"""Train/test splits of a ratings frame (in file order), returned as a boolean test mask.

ml-100k's official splits are reproduced from `u.data`'s line order by the rules of the
dataset's own `mku.sh` and `allbut.pl`: u{k}.test is lines 20000(k-1)+1 .. 20000k; ua/ub
test sets take each user's ratings 1-10 / 11-20 in file order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OFFICIAL_100K = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
SPLITS = (*OFFICIAL_100K, "random", "time")


def split_mask(ratings: pd.DataFrame, split: str, seed: int = 42, test_frac: float = 0.1) -> np.ndarray:
    """Boolean mask over `ratings` rows (file order) marking the test rows of `split`."""
    n = len(ratings)
    if split in ("u1", "u2", "u3", "u4", "u5"):
        if n != 100_000:
            raise ValueError(f"split {split} is defined on ml-100k's 100,000 ratings, got {n}")
        k = int(split[1])
        mask = np.zeros(n, dtype=bool)
        mask[20_000 * (k - 1): 20_000 * k] = True
        return mask
    if split in ("ua", "ub"):
        start, stop = (1, 10) if split == "ua" else (11, 20)
        nth = ratings.groupby("user_id", sort=False).cumcount().to_numpy() + 1
        return (nth >= start) & (nth <= stop)
    if not 0.0 < test_frac < 1.0:
        raise ValueError(f"test_frac must be in (0, 1), got {test_frac}")
    n_test = round(n * test_frac)
    mask = np.zeros(n, dtype=bool)
    if split == "random":
        mask[np.random.default_rng(seed).permutation(n)[:n_test]] = True
        return mask
    if split == "time":  # the latest ratings; ties broken by file order
        order = np.argsort(ratings["timestamp"].to_numpy(), kind="stable")
        mask[order[n - n_test:]] = True
        return mask
    raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
