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


COLD_MIN_SHARE = 0.01  # test rows of users absent from train: above this share, folds hold out whole users


def cold_user_share(train: pd.DataFrame, test: pd.DataFrame | None) -> float:
    """The share of `test`'s rows whose user has no row in `train` (0 without a test set). Which pairs are in
    the test set is public, as on Kaggle; their ratings are not read."""
    if test is None or not len(test):
        return 0.0
    return float((~test["user_id"].isin(train["user_id"].unique())).mean())


def unseen_share_to_predict(fit: pd.DataFrame, pairs: pd.DataFrame | None) -> float:
    """The share of the public `pairs` outside `fit` (the rows a model fitted on `fit` will be asked about: its
    held-out fold and the test set) whose user has no row in `fit`; 0 without pairs (`inner_folds`' share)."""
    if pairs is None or len(pairs) <= len(fit):
        return 0.0
    unseen = int((~pairs["user_id"].isin(fit["user_id"].unique())).sum())
    return unseen / (len(pairs) - len(fit))


def fold_assignment(rows: pd.DataFrame, k: int, seed: int, cold_share: float = 0.0) -> np.ndarray:
    """One of `k` folds of near-equal size for each of `rows`, seeded.

    The folds are random rows, unless `cold_share` is above `COLD_MIN_SHARE` (the `time` split: the latest
    ratings come mostly from users who joined last, `cold_user_share`). Then that share of the rows is held out
    as whole users (`rows["user_id"]`), drawn at random and each put in one fold, and the other rows are
    spread at random: an OOF row meets an unseen user as often as a test row does, so the blend learns how far
    to trust each member for a user it has never seen (with random folds it never sees one, and fits its
    weights on rows unlike 71% of the test rows of ml-100k's time split)."""
    if k < 2:
        raise ValueError(f"need at least 2 folds, got {k}")
    n = len(rows)
    fold = np.empty(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if cold_share <= COLD_MIN_SHARE:
        fold[rng.permutation(n)] = np.arange(n) % k
        return fold
    users, rows_of = np.unique(rows["user_id"].to_numpy(), return_inverse=True)
    counts = np.bincount(rows_of, minlength=len(users))
    order = rng.permutation(len(users))
    n_cold = int(np.searchsorted(np.cumsum(counts[order]), cold_share * n)) + 1
    cold = order[:min(n_cold, len(users) - 1)]  # at least one user stays warm
    size = np.zeros(k, dtype=np.int64)
    user_fold = np.full(len(users), -1, dtype=np.int64)
    for u in cold[np.argsort(-counts[cold], kind="stable")]:  # largest first, each into the smallest fold
        f = int(np.argmin(size))
        user_fold[u] = f
        size[f] += counts[u]
    fold[:] = user_fold[rows_of]
    warm = np.flatnonzero(fold < 0)
    target = np.full(k, n // k) + (np.arange(k) < n % k)
    fill = np.repeat(np.arange(k), np.maximum(target - size, 0))  # at least len(warm) slots: sizes sum to n
    fold[warm[rng.permutation(len(warm))]] = rng.permutation(fill)[:len(warm)]
    return fold


def make_folds(train: pd.DataFrame, k: int = 5, seed: int = 42, cold_share: float = 0.0) -> pd.DataFrame:
    """Each train row's (by id) fold: `fold_assignment`, holding out whole users for `cold_share` of the rows
    (`ensure_folds` gives the test set's `cold_user_share`)."""
    return pd.DataFrame({"id": train["id"].to_numpy(), "fold": fold_assignment(train, k, seed, cold_share)})


def inner_folds(fit: pd.DataFrame, k: int, seed: int, pairs: pd.DataFrame | None) -> np.ndarray:
    """The inner folds of a member that gives its training rows features from the other inner folds (`gbm`'s
    dot-model features, `bfm`'s neighbour columns): of the outer folds' kind, whole users held out as often as
    the rows it will predict (the public `pairs` outside `fit`) are of users it has not seen."""
    return fold_assignment(fit, k, seed, unseen_share_to_predict(fit, pairs))


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
    share = cold_user_share(comp.train, comp.test)
    folds = make_folds(comp.train, k=k, seed=seed, cold_share=share)
    fold_of = folds["fold"].to_numpy()
    if share > COLD_MIN_SHARE:
        held = ~comp.train["user_id"].isin(comp.train.loc[fold_of != 0, "user_id"].unique())
        log.info("%.0f%% of the test rows are of users with no training row: the folds hold out whole users for "
                 "%.0f%% of the train rows (fold 0: %.0f%%), so the OOF rows meet unseen users as the test rows do",
                 100 * share, 100 * share, 100 * held[fold_of == 0].mean())
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
