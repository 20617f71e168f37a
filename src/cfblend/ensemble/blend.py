"""Blending as a pure computation: weights from the models' out-of-fold predictions, applied to
their test predictions (`blend`). Reading the predictions and writing the submission: `run`.

Methods: `linear` (non-negative weights plus a free intercept, least squares), `hill`
(Caruana's greedy ensemble selection with replacement), `fwls` (feature-weighted linear
stacking, Sill et al. 2009: each model's weight is a linear function of meta-features, the log
rating counts of the row's user and item, fit by ridge), `stack` (0.6 x `fwls` + 0.4 x a small
LightGBM over the members' predictions and the same meta-features: the linear stack and a
non-linear one, which err differently), `resid` (`fwls` plus a LightGBM of the same size boosted from the
`fwls` prediction: its trees fit what the linear stack leaves), and `auto` (the default): whichever of
`linear`, `fwls`, `stack` and `resid` has the lowest honest CV. On ml-1m (the autoencoders' bags, 2026-12-03)
`resid` beats `stack` (honest CV 0.81065 -> 0.81025, test 0.80687 -> 0.80582); on ml-100k u1 it loses
(0.85555 -> 0.85769, 0.8572 -> 0.8584): a million ratings pin down trees on the residual, 80k do not.
The stack's share and tree size were chosen by honest CV over
the saved predictions of `make bench`'s u1..u5 folders and of ml-1m (one-off sweeps): 0.3 x 15 leaves
x 400 rounds had been best on ml-100k alone; with the neighbouring ratings among the meta-features
0.4 x 31 x 600 is better on both (u1..u5 honest CV 0.85679 -> 0.85641, test 0.85143 -> 0.85113;
ml-1m 0.81176 -> 0.81151, 0.80811 -> 0.80777), where 0.5 x 63 x 800 helps ml-1m more (0.81129,
0.80748) and hurts ml-100k (0.85686, 0.85175). The blend's own CV score is honest: for each fold,
weights are fit on the OOF rows of the other folds and scored on it. The final weights are fit
on all OOF rows and applied to the test predictions.

Meta-features (`META_FEATURES`) are what each prediction's model saw: the log rating counts of the
row's user and item, and their damped mean and std rating; for an OOF row of fold k, from the
other folds (never the row's own rating); for a test row, from the whole train set ((K-1)/K of
its counts: the average over the fold models). The means and stds let the stack correct members
per kind of rater (u1..u5: honest CV 0.8676 -> 0.8673, test 0.8633 -> 0.8628).

Where the rows have timestamps, the meta-features also hold the row's *neighbouring ratings*
(`NEIGHBOUR_META`, `models/timeline.py`): the residuals of the ratings its user gave just before and
just after it (from the other folds for an OOF row, from the whole train set for a test row; never
its own), 0 where there are none. Users rate in sittings and ratings given side by side move together,
which no member but `gbm` sees; the linear stack adds them as a correction and lets each member's
weight depend on them (ml-1m: honest CV 0.81309 -> 0.81249, test 0.80987 -> 0.80889). With the item
genres (`genre_masks`) and timestamps they also hold the window's residuals weighted by shared genres and the
mean residual of the ratings the user gave within 0, 60 and 300 seconds of the row (`SITTING_META`). With the
items' vectors (`item_vectors`: who rated them, never how) the window weighted by how alike the movies are,
`nb_sim10` (`SIMILAR_META`; with the former stack, ml-1m: honest CV 0.81205 -> 0.81176, test 0.80841 -> 0.80811;
u1..u5: 0.8572 -> 0.8568, 0.8518 -> 0.8514).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import nnls

from cfblend.competition.scoring import rmse
from cfblend.models.timeline import (
    RatingTimeline,
    TimelineRanks,
    genre_masks,
    item_vectors,
    timeline_of,
    timeline_ranks,
    timeline_table,
)

MIN_STD = 0.02  # stars: OOF predictions that vary less than this are left out of the blend


@dataclass
class BlendConfig:
    """Which predictions to blend, and how."""

    models: list[str] = field(default_factory=list)  # empty: every trained model (constant ones left out)
    method: str = "auto"  # linear, hill, fwls, stack, resid, or auto
    hill_steps: int = 50
    ridge: float = 1.0  # fwls (and stack's linear half)
    stack_rounds: int = 600  # stack's LightGBM: boosting rounds, leaves per tree, learning rate
    stack_leaves: int = 31
    stack_lr: float = 0.03
    stack_mix: float = 0.4  # stack's prediction: (1 - mix) x fwls + mix x LightGBM
    stack_max_rows: int = 2_000_000  # stack's LightGBM fits on at most this many rows, drawn at random (0: all)


def fit_linear(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares with non-negative weights and an unconstrained intercept.

    The intercept is free, so it is ȳ - x̄·w for the best w, and w solves the non-negative least squares
    of the centred problem; that is solved from its Gram matrix (models x models, built in row blocks), so
    the cost in memory does not grow with the rows: `nnls(Lᵀ, L⁻¹ Xcᵀ yc)` for `Xcᵀ Xc = L Lᵀ` has the
    same minimiser as `nnls(Xc, yc)`."""
    x_mean, y_mean = X.mean(0), float(y.mean())
    G, b = _normal_equations(lambda rows: X[rows] - x_mean, y - y_mean, len(y))
    G += np.eye(len(G)) * 1e-12 * max(np.trace(G), 1.0)  # a duplicated member: still positive definite
    L = np.linalg.cholesky(G)
    w, _ = nnls(L.T, np.linalg.solve(L, b))
    return w, y_mean - float(x_mean @ w)


def _normal_equations(design, y: np.ndarray, n: int, block: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    """`AᵀA` and `Aᵀy` of the design `A` whose rows `design(rows)` returns, built a block of rows at a time,
    so that at most `block` rows of `A` are ever in memory."""
    G = b = None
    for start in range(0, n, block):
        rows = slice(start, start + block)
        A = design(rows)
        G = A.T @ A if G is None else G + A.T @ A
        b = A.T @ y[rows] if b is None else b + A.T @ y[rows]
    return G, b


def fit_hill(X: np.ndarray, y: np.ndarray, steps: int = 50) -> tuple[np.ndarray, float]:
    """Greedy forward selection with replacement of the model that most lowers the average's RMSE."""
    counts = np.zeros(X.shape[1])
    total = np.zeros(len(X))
    for step in range(1, steps + 1):
        errs = [rmse(y, (total + X[:, j]) / step) for j in range(X.shape[1])]
        j = int(np.argmin(errs))
        counts[j] += 1
        total += X[:, j]
    return counts / counts.sum(), 0.0


META_FEATURES = ("intercept", "log1p_user_count", "log1p_item_count", "user_mean", "item_mean", "user_std",
                 "item_std")
NEIGHBOUR_WINDOW = 10  # the neighbouring ratings: up to 3, 10 and 30 on each side of the row
SITTING_META = ("nb_genre10", "nb_sit0", "nb_sit60", "nb_sit300")  # the sitting by genre and by the clock
SIMILAR_META = ("nb_sim10",)  # the window weighted by the movies' likeness (`item_vectors`)
NEIGHBOUR_META = ("nb_prev", "nb_next", "nb_mean3", "nb_mean10", "nb_mean30", *SITTING_META, *SIMILAR_META)
TIMELINE_META = ("tl_pos", "log1p_tl_same_day", "log1p_tl_since_first", "log1p_tl_gap_prev", "log1p_tl_gap_next")
TIMELINE_NO_GAP = 1e4  # days: the gap before a user's first pair and after their last
STAT_DAMPING = 30.0  # ratings' worth of the global mean (or variance) in a user's or item's damped mean (or std)


def _damped(rows: pd.DataFrame, seen: pd.DataFrame, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The damped mean and std of the ratings in `seen` of each row's `key` (the global ones for an unseen id)."""
    r = seen["rating"].to_numpy(np.float64)
    mu, var = float(r.mean()), float(r.var())
    g = pd.DataFrame({key: seen[key].to_numpy(), "r": r, "r2": r * r}).groupby(key).agg(
        n=("r", "size"), s=("r", "sum"), s2=("r2", "sum"))
    n, s, s2 = g["n"], g["s"], g["s2"]
    mean = (s + STAT_DAMPING * mu) / (n + STAT_DAMPING)
    own_var = (s2 - s * s / n) / n  # the id's own (population) variance
    std = np.sqrt((n * own_var + STAT_DAMPING * var) / (n + STAT_DAMPING))
    ids = rows[key]
    return (ids.map(mean).fillna(mu).to_numpy(np.float64), ids.map(std).fillna(np.sqrt(var)).to_numpy(np.float64))


@dataclass
class PublicPairs:
    """What the public (train and test) pairs tell without a rating (`public_pairs`): their timelines (`ranks`,
    and per pair its place and timing, `table`), the items' vectors (`item_vectors`: who rated them) and genres."""

    ranks: TimelineRanks
    table: pd.DataFrame  # `timeline_table`
    vectors: pd.DataFrame
    genres: pd.Series | None = None  # `genre_masks`


def public_pairs(train: pd.DataFrame, test: pd.DataFrame, items: pd.DataFrame | None = None) -> PublicPairs | None:
    """`PublicPairs` of a competition's train and test rows (`items`: its items, for their genres), or None when
    the rows have no timestamps (then the meta-features are `META_FEATURES` alone)."""
    if "timestamp" not in train or "timestamp" not in test:
        return None
    pairs = pd.concat([train[["user_id", "item_id", "timestamp"]], test[["user_id", "item_id", "timestamp"]]],
                      ignore_index=True)
    genres = genre_masks(items) if items is not None and "genres" in items else None
    return PublicPairs(timeline_ranks(pairs), timeline_table(pairs), item_vectors(pairs), genres)


def _timeline_meta(rows: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """`TIMELINE_META` of `rows` from the public pairs' `timeline_table`: the place in the user's timeline, and
    log1p of the pairs that day, the days since the user's first pair and the days to the previous and next
    pair (`TIMELINE_NO_GAP` days at either end); 0 for a pair that is not public."""
    t = timeline_of(table, rows)
    public = t["tl_pos"].notna().to_numpy()
    cols = np.column_stack([t["tl_pos"], np.log1p(t["tl_same_day"]), np.log1p(t["tl_since_first"]),
                            np.log1p(t["tl_gap_prev"].fillna(TIMELINE_NO_GAP)),
                            np.log1p(t["tl_gap_next"].fillna(TIMELINE_NO_GAP))]).astype(np.float64)
    return np.where(public[:, None], cols, 0.0)


def meta_features(rows: pd.DataFrame, seen: pd.DataFrame, scale: float = 1.0,
                  public: PublicPairs | None = None) -> np.ndarray:
    """`META_FEATURES` of `rows`, from the rows of `seen`: [1, log1p(user count), log1p(item count), the user's
    and the item's damped mean rating, their damped std]. Counts are times `scale`; the means and stds are
    damped toward the global ones by `STAT_DAMPING` ratings. With `public` (`public_pairs`), then
    `NEIGHBOUR_META`: the residuals of `seen`'s ratings next to the row in its user's timeline (by genre, by
    likeness, and by the clock where `rows` and `seen` have timestamps), 0 where none; then `TIMELINE_META`.
    Never a row's own rating: the OOF rows of a fold get them from the other folds (`oof_and_test_meta`)."""
    uc, ic = seen["user_id"].value_counts(), seen["item_id"].value_counts()
    u = np.log1p(rows["user_id"].map(uc).fillna(0).to_numpy(np.float64) * scale)
    i = np.log1p(rows["item_id"].map(ic).fillna(0).to_numpy(np.float64) * scale)
    (um, us), (im, is_) = _damped(rows, seen, "user_id"), _damped(rows, seen, "item_id")
    cols = [np.ones(len(rows)), u, i, um, im, us, is_]
    if public is not None:
        nb = RatingTimeline(seen, public.ranks, NEIGHBOUR_WINDOW, genres=public.genres,
                            vectors=public.vectors).lookup(rows)[list(NEIGHBOUR_META)]
        cols += list(np.nan_to_num(nb.to_numpy(np.float64), nan=0.0).T)
        cols += list(_timeline_meta(rows, public.table).T)
    return np.column_stack(cols)


def meta_names(public: PublicPairs | None) -> list[str]:
    """The names of `meta_features`' columns, with or without what the public pairs tell."""
    return list(META_FEATURES) + (list(NEIGHBOUR_META) + list(TIMELINE_META) if public is not None else [])


def oof_and_test_meta(train: pd.DataFrame, test: pd.DataFrame, folds: np.ndarray,
                      public: PublicPairs | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Meta-features of the train rows (each fold's from the other folds, as its OOF predictions were made) and
    of the test rows (from the whole train set, counts times (K-1)/K: the average over the fold models); with
    `public` (`public_pairs`), the neighbouring ratings and the timeline too."""
    k_folds = int(folds.max()) + 1
    M = np.empty((len(train), len(meta_names(public))))
    for k in range(k_folds):
        M[folds == k] = meta_features(train[folds == k], train[folds != k], public=public)
    return M, meta_features(test, train, scale=(k_folds - 1) / k_folds, public=public)


def _fwls_design(X: np.ndarray, M: np.ndarray) -> np.ndarray:
    return np.column_stack([X[:, [j]] * M for j in range(X.shape[1])] + [M])


def _fwls_predict(X: np.ndarray, M: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """`_fwls_design(X, M) @ coef` without building the design: each model's prediction times its weight
    at the row (a linear function of the meta-features), plus the meta-features' own term."""
    m = M.shape[1]
    out = M @ coef[-m:]
    for j in range(X.shape[1]):
        out += X[:, j] * (M @ coef[j * m:(j + 1) * m])
    return out


def fit_fwls(X: np.ndarray, M: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge coefficients of the feature-weighted linear stack (normal equations built in row blocks: at 22.5M
    rows and 5 models the whole design would be 3.2 GB)."""
    G, b = _normal_equations(lambda rows: _fwls_design(X[rows], M[rows]), y, len(y))
    return np.linalg.solve(G + ridge * np.eye(len(G)), b)


def fit_stack_gbm(X: np.ndarray, M: np.ndarray, y: np.ndarray, cfg: BlendConfig,
                  init: np.ndarray | None = None) -> lgb.Booster:
    """The non-linear half of `stack`: small trees over the predictions and the log counts, shrunk hard
    (L2 10, at least 200 rows a leaf), seeded and deterministic; on at most `stack_max_rows` rows drawn at
    random (seeded): 2M rows pin down a 7-leaf tree, and 20M would take 10 times as long. `init`: the
    prediction the boosting starts from (`resid`: the fwls stack's), so the trees fit what it leaves."""
    if cfg.stack_max_rows and len(y) > cfg.stack_max_rows:
        rows = np.sort(np.random.default_rng(0).choice(len(y), cfg.stack_max_rows, replace=False))
        X, M, y = X[rows], M[rows], y[rows]
        init = None if init is None else init[rows]
    params = {"objective": "regression", "learning_rate": cfg.stack_lr, "num_leaves": cfg.stack_leaves,
              "min_data_in_leaf": 200, "lambda_l2": 10.0, "seed": 0, "deterministic": True, "force_row_wise": True,
              "num_threads": 0, "verbosity": -1}
    return lgb.train(params, lgb.Dataset(np.column_stack([X, M[:, 1:]]), y, init_score=init), cfg.stack_rounds)


@dataclass
class Blender:
    """A fitted blend: `predict(X, M)` for prediction matrix X and meta-features M."""

    method: str
    weights: np.ndarray
    intercept: float = 0.0
    coef: np.ndarray | None = None  # fwls, stack
    booster: Any = None  # stack: its LightGBM half; resid: the trees boosted from the fwls prediction
    mix: float = 0.5  # stack: the LightGBM half's share of the prediction (resid: unused)

    @classmethod
    def fit(cls, method: str, X: np.ndarray, M: np.ndarray, y: np.ndarray, cfg: BlendConfig,
            half: Blender | None = None) -> Blender:
        """`half`: the `fwls` blender already fitted on these rows (`stack`'s linear half), not fitted again."""
        if method == "linear":
            return cls(method, *fit_linear(X, y))
        if method == "hill":
            return cls(method, *fit_hill(X, y, cfg.hill_steps))
        if method == "fwls":
            coef = fit_fwls(X, M, y, cfg.ridge)
            m = M.shape[1]
            mean_meta = M.mean(0)  # report each model's weight at the average row
            weights = np.array([coef[j * m:(j + 1) * m] @ mean_meta for j in range(X.shape[1])])
            return cls(method, weights, float(coef[-m:] @ mean_meta), coef)
        if method == "stack":  # reported weights: the linear half's, at the average row
            half = half or cls.fit("fwls", X, M, y, cfg)
            keep = 1.0 - cfg.stack_mix
            return cls(method, half.weights * keep, half.intercept * keep, half.coef, fit_stack_gbm(X, M, y, cfg),
                       cfg.stack_mix)
        if method == "resid":  # reported weights: the fwls stack's, which the trees correct
            half = half or cls.fit("fwls", X, M, y, cfg)
            trees = fit_stack_gbm(X, M, y, cfg, init=_fwls_predict(X, M, half.coef))
            return cls(method, half.weights, half.intercept, half.coef, trees, 1.0)
        raise ValueError(f"unknown blend method {method!r}; use linear, hill, fwls, stack, resid or auto")

    def predict(self, X: np.ndarray, M: np.ndarray) -> np.ndarray:
        if self.booster is not None:
            trees = self.booster.predict(np.column_stack([X, M[:, 1:]]))  # without the init score
            if self.method == "resid":
                return _fwls_predict(X, M, self.coef) + trees
            return (1.0 - self.mix) * _fwls_predict(X, M, self.coef) + self.mix * trees
        if self.coef is not None:
            return _fwls_predict(X, M, self.coef)
        return X @ self.weights + self.intercept


def honest_cv(method: str, X: np.ndarray, M: np.ndarray, y: np.ndarray, folds: np.ndarray, cfg: BlendConfig,
              scale: tuple[float, float],
              fwls_fits: dict[int, Blender] | None = None) -> tuple[np.ndarray, list[float]]:
    """OOF blend predictions with weights fit on the other folds, and the per-fold RMSE. `fwls_fits`: the
    `fwls` blenders fitted per fold so far, shared by `fwls`, `stack` and `resid` (whose linear part is that fit)."""
    oof = np.empty(len(y))
    fold_rmse = []
    fwls_fits = {} if fwls_fits is None else fwls_fits
    for k in range(int(folds.max()) + 1):
        rows = folds != k
        half = None
        if method in ("fwls", "stack", "resid"):
            half = fwls_fits.get(k) or fwls_fits.setdefault(k, Blender.fit("fwls", X[rows], M[rows], y[rows], cfg))
        b = half if method == "fwls" else Blender.fit(method, X[rows], M[rows], y[rows], cfg, half)
        oof[folds == k] = np.clip(b.predict(X[folds == k], M[folds == k]), *scale)
        fold_rmse.append(rmse(y[folds == k], oof[folds == k]))
    return oof, fold_rmse




@dataclass
class BlendResult:
    """What `blend` returns: the chosen method, its honest CV, the fitted blender and its predictions."""

    method: str
    cv_by_method: dict[str, float]
    fold_rmse: list[float]
    oof: np.ndarray  # honest OOF blend predictions (weights fit on the other folds)
    test: np.ndarray  # the final blender (fit on all OOF rows) on the test predictions, clipped
    blender: Blender


def blend(X: np.ndarray, T: np.ndarray, y: np.ndarray, folds: np.ndarray, M: np.ndarray, MT: np.ndarray,
          cfg: BlendConfig, scale: tuple[float, float]) -> BlendResult:
    """Blend OOF predictions `X` (train rows x models) to fit ratings `y`; apply to test predictions `T`.

    `M`, `MT`: meta-features of the train and test rows (for `fwls`, `stack` and `resid`). `auto` picks whichever
    of `linear`, `fwls`, `stack` and `resid` has the lowest honest CV.
    """
    methods = ["linear", "fwls", "stack", "resid"] if cfg.method == "auto" else [cfg.method]
    fwls_fits: dict[int, Blender] = {}
    cv = {m: honest_cv(m, X, M, y, folds, cfg, scale, fwls_fits) for m in methods}
    cv_rmse = {m: float(np.mean(f)) for m, (_, f) in cv.items()}
    method = min(methods, key=lambda m: cv_rmse[m])
    oof, fold_rmse = cv[method]
    blender = Blender.fit(method, X, M, y, cfg)
    return BlendResult(method, cv_rmse, fold_rmse, oof, np.clip(blender.predict(T, MT), *scale), blender)
