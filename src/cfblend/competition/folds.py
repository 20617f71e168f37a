"""One seeded K-fold assignment of the train rows, written once and read by every model, and the
output folder's stamp: which competition (and which folds) the artifacts in it belong to."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from cfblend.errors import ArtifactConflict
from cfblend.io import read_json, write_csv, write_json
from cfblend.paths import Paths

log = logging.getLogger(__name__)


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


def read_stamp(paths: Paths) -> dict:
    """The output folder's stamp ({"competition", "k", "seed"}); a clear error when there is none."""
    if not paths.stamp.exists():
        raise FileNotFoundError(f"{paths.stamp} missing: run `make folds` first")
    return read_json(paths.stamp)


def check_stamp(paths: Paths, comp_name: str) -> dict:
    """The stamp, refusing an output folder that holds another competition's artifacts."""
    stamp = read_stamp(paths)
    if stamp["competition"] != comp_name:
        raise ArtifactConflict(f"{paths.output} holds artifacts of {stamp['competition']}, not {comp_name}; use "
                               f"another OUT=... folder, or FORCE=1 `make folds` to start over there")
    return stamp


def ensure_folds(comp_name: str, train: pd.DataFrame, paths: Paths, k: int = 5, seed: int = 42,
                 overwrite: bool = False) -> np.ndarray:
    """Write `paths.folds` and the output folder's stamp for this competition; return each train row's fold.

    An identical assignment already there is kept. Another competition's artifacts, or another
    assignment, are refused unless `overwrite` (every model must then be retrained).
    """
    if paths.stamp.exists() and not overwrite:
        check_stamp(paths, comp_name)
    folds = make_folds(train, k=k, seed=seed)
    fold_of = folds["fold"].to_numpy()
    stamp = {"competition": comp_name, "k": k, "seed": seed}
    same = (paths.folds.exists() and paths.stamp.exists() and read_json(paths.stamp) == stamp
            and np.array_equal(read_folds(paths.folds, train), fold_of))
    if same:
        log.info("folds unchanged: %s", paths.folds)
        return fold_of
    if paths.folds.exists() and not overwrite:
        raise ArtifactConflict(f"{paths.folds} exists with another assignment; FORCE=1 (--overwrite) replaces it "
                               "(every model must then be retrained)")
    write_folds(folds, paths.folds)
    write_json(stamp, paths.stamp)
    log.info("%d folds of %d train rows -> %s", k, len(folds), paths.folds)
    return fold_of
