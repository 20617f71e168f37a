"""One seeded K-fold assignment of the train rows, written once and read by every model, and the
output folder's stamp: which competition (and which folds) the artifacts in it belong to."""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cfblend.errors import ArtifactConflict
from cfblend.io import read_json, write_csv, write_json
from cfblend.paths import Paths

if TYPE_CHECKING:
    from cfblend.competition.competition import Competition

log = logging.getLogger(__name__)

MAX_FOLDS = 100


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


def folds_fingerprint(folds: np.ndarray) -> str:
    """SHA-256 of a fold assignment (aligned to the train rows)."""
    return hashlib.sha256(np.ascontiguousarray(folds, dtype=np.int64).tobytes()).hexdigest()


def read_stamp(paths: Paths) -> dict:
    """The output folder's stamp (competition name and content hash, k, seed, folds hash)."""
    if not paths.stamp.exists():
        raise FileNotFoundError(f"{paths.stamp} missing: run `make folds` first")
    return read_json(paths.stamp)


def check_stamp(paths: Paths, comp: Competition) -> dict:
    """The stamp, refusing an output folder made for another competition, or for this one before
    its files were rewritten (same name, other content)."""
    stamp = read_stamp(paths)
    if stamp["competition"] != comp.name:
        raise ArtifactConflict(f"{paths.output} holds artifacts of {stamp['competition']}, not {comp.name}; use "
                               f"another OUT=... folder, or FORCE=1 `make folds` to start over there")
    if stamp.get("competition_sha") != comp.fingerprint:
        raise ArtifactConflict(f"{comp.name} was rewritten since the folds in {paths.output} were made (its files "
                               "changed): rerun `make folds FORCE=1`, then retrain (`make all FORCE=1`)")
    return stamp


def load_folds(paths: Paths, comp: Competition) -> tuple[np.ndarray, str]:
    """The fold of each train row and the fingerprint of that assignment, after checking the stamp."""
    stamp = check_stamp(paths, comp)
    folds = read_folds(paths.folds, comp.train)
    sha = folds_fingerprint(folds)
    if sha != stamp.get("folds_sha"):
        raise ArtifactConflict(f"{paths.folds} is not the assignment `make folds` wrote (it was changed since): "
                               "rerun `make folds FORCE=1`, then retrain")
    return folds, sha


def ensure_folds(comp: Competition, paths: Paths, k: int = 5, seed: int = 42, overwrite: bool = False) -> np.ndarray:
    """Write `paths.folds` and the output folder's stamp for this competition; return each train row's fold.

    An identical assignment already there is kept. Another competition's artifacts (or this one's
    before its files were rewritten), or another assignment, are refused unless `overwrite`
    (every model must then be retrained).
    """
    if not 2 <= k <= MAX_FOLDS or k > len(comp.train):
        raise ValueError(f"K={k}: the number of folds must be between 2 and {min(MAX_FOLDS, len(comp.train))}")
    if paths.stamp.exists() and not overwrite:
        check_stamp(paths, comp)
    folds = make_folds(comp.train, k=k, seed=seed)
    fold_of = folds["fold"].to_numpy()
    stamp = {"competition": comp.name, "competition_sha": comp.fingerprint, "k": k, "seed": seed,
             "folds_sha": folds_fingerprint(fold_of)}
    if paths.stamp.exists() and read_json(paths.stamp) == stamp and paths.folds.exists():
        try:
            if np.array_equal(read_folds(paths.folds, comp.train), fold_of):
                log.info("folds unchanged: %s", paths.folds)
                return fold_of
        except (ValueError, KeyError, OSError):
            pass  # a damaged folds file is rewritten below
    if paths.folds.exists() and paths.stamp.exists() and not overwrite:
        raise ArtifactConflict(f"{paths.folds} exists with another assignment; FORCE=1 (--overwrite) replaces it "
                               "(every model must then be retrained)")
    paths.stamp.unlink(missing_ok=True)  # the stamp is written last: a folder without one has no valid folds
    write_folds(folds, paths.folds)
    write_json(stamp, paths.stamp)
    log.info("%d folds of %d train rows -> %s", k, len(folds), paths.folds)
    return fold_of
