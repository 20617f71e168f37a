"""Bayesian factorization machine (Gibbs sampling, with myFM), registered as `bfm` (Gaussian
likelihood), `bfm_op` (ordered probit over the rating levels), `bfm_opu` (ordered probit with
cutpoints per user) and `bfm_opi` (cutpoints per item).

Features come as *relation blocks* (Rendle 2013, "Scaling factorization machines to relational
data"): each rating row points to one row of a user block and one row of an item block, so the
sampler's cost grows with the number of users and items, not of ratings times their features.

- user block: the user id (users seen in training), age bucket, gender, occupation, and the
  *implicit* set of every item the user rated, in train or in test, weighted 1/sqrt(n);
- item block: the item id (items seen in training), genres (normalised), release-year bucket, and
  the set of every user who rated it, 1/sqrt(n);
- the rating row itself: its date bucket and its *user-day*, a one-hot of the (user, calendar day)
  pairs seen in training: the user's offset and factors on that day (timeSVD++'s day-specific
  user term, Koren 2009, as in Rendle's Bayesian timeSVD++). Ratings are entered in sessions, and a
  session's mood moves every rating of it: on ml-100k u1 it took `bfm` from 0.8752 to 0.8735,
  `bfm_op` from 0.8740 to 0.8720 and the blend from 0.8710 to 0.8693. A (user, day) never seen in
  training has no such feature. Off in the large-data setting (millions of columns at 25M).
- the row's *timeline* bucket: where the pair sits in its user's rating history, by timestamp over
  every public pair of that user (train and test, never a rating), in `timeline` equal buckets (the
  first tenth of the user's ratings, the next...). MovieLens users rate in long sittings from lists the
  site picks, and what they rate early differs from what they rate late: on fold 0 with `bench/scale.py`,
  `bfm` went from 0.8718 to 0.8691 on ml-100k u1 and from 0.8198 to 0.8191 on ml-1m. A pair that is
  not among the public ones (a `make predict` pair) has no such feature. Off in the large-data setting.
- the row's *neighbouring ratings* (`neighbours`, a window; 0: off): the residuals (from the fit rows'
  damped biases) of the training ratings its user gave just before and just after it in that timeline
  (`models/timeline.py`'s `RatingTimeline`; the nearest on each side and the means of up to 3,
  `neighbours` and three times as many on each side), as real-valued columns, 0 where there are none.
  The rows it fits on get theirs as `gbm`'s aggregates: from the training rows of the other
  `NEIGHBOUR_FOLDS` inner folds (residuals, biases and all), so no row's feature comes from its own
  rating; the rows it predicts get theirs from every training row, which the model keeps for that.

Which pairs were rated is public in a Kaggle competition (the test pairs too; never their
ratings), and the implicit sets are built from all of them the same way for every row, so OOF
predictions are made under the same conditions as test predictions. Each feature family is a
group with its own prior. Prediction is the mean over the kept posterior samples (for `bfm_op`,
the expected rating under the predicted class probabilities), each sample's scores computed by
`models/fm_predict.py` (the same scores as myFM's predictor, in a quarter of its time).

Users read the star scale differently: one gives 4 where another gives 5 for the same liking, and a
shift of the score (a user bias) cannot say that one user never gives a 1 or splits 3 from 4 sharply.
`bfm_opu` gives every user with at least `user_cutpoints` training ratings cutpoints of their own
(OrdRec's user thresholds, Koren and Sill 2011), sampled with the rest; lighter and unseen users
share one set. Which users qualify depends on their rating counts, never on a rating. On ml-100k u1,
25 gave the best OOF and blend of the thresholds 1 (every user), 25, 50 and 150; the blend went from
0.8693 to 0.8676 with `bfm_opu` as a third Bayesian member. `bfm_opi` does the same per item
(`item_cutpoints`): a film some love and others hate is read on the scale differently from one every
rater calls "fine". A row has one set of cutpoints, so one member takes users and the other items.

Cold start: an unseen user or item has no id feature but keeps the rest of its block, the
implicit set included (a test-only user is known by the items they rated).

Saving keeps `saved_samples` posterior samples, evenly spaced, as plain float32 arrays (32 samples
of the ml-100k model: 10 MB); a loaded model predicts with those (the run's own OOF and test
predictions use every kept sample; on ml-100k u1 the 32 saved samples score 0.002 worse).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sps

from cfblend.competition.folds import inner_folds
from cfblend.io import atomic_path
from cfblend.models.base import Model, ModelConfig, SideInfo
from cfblend.models.fm_predict import BlockRows, add_expected_level, prediction_threads
from cfblend.models.ids import IdIndex, user_day_keys
from cfblend.models.side import join_side
from cfblend.models.timeline import RatingTimeline, timeline_ranks

LIKELIHOODS = ("regression", "ordered_probit")
ROW_GROUPS = 4  # the feature groups of the rows themselves (date bucket, user-day, timeline, neighbours), then blocks
NEIGHBOUR_COLUMNS = 5  # nb_prev, nb_next and the three window means of `RatingTimeline.lookup`
NEIGHBOUR_FOLDS = 5  # inner folds giving the training rows their neighbour columns


@dataclass
class BFMConfig(ModelConfig):
    """Hyper-parameters of the Bayesian FM."""

    rank: int = 10
    sweeps: int = 200  # Gibbs sweeps
    burn_in: int = 5  # sweeps left out of the posterior mean
    likelihood: str = "regression"  # or "ordered_probit"
    implicit: bool = True  # the users' rated-item sets and the items' rater sets
    use_side: bool = True  # demographics, genres, release year, rating date
    date_days: int = 30  # width of the rating-date buckets (0: no date feature)
    user_day: bool = True  # a one-hot of the row's (user, calendar day), for the pairs seen in training
    timeline: int = 10  # buckets of the pair's place in its user's public history, by time (0: none)
    neighbours: int = 0  # window of the training ratings around the row in its user's history (0: none)
    year_bin: int = 5  # width of the release-year buckets, in years
    init_std: float = 0.1
    user_cutpoints: int = 0  # ordered probit: users with this many training ratings get cutpoints of their own (0: off)
    item_cutpoints: int = 0  # the same per item (one of the two: a row has one set of cutpoints)
    chains: int = 1  # independent Gibbs chains (seeds seed, seed + 1000, ...), averaged
    saved_samples: int = 32  # posterior samples written by `save` (split between the chains)
    workers: int = 1  # prediction threads (the same numbers on any count; at most numba's thread count)

    limits: ClassVar[dict[str, str]] = {"rank": ">=1", "sweeps": ">=2", "burn_in": ">=0", "date_days": ">=0",
                                        "timeline": ">=0", "neighbours": ">=0",
                                        "user_cutpoints": ">=0", "item_cutpoints": ">=0", "chains": ">=1",
                                        "year_bin": ">=1", "init_std": ">0", "saved_samples": ">=1", "workers": ">=1"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"BFMConfig.likelihood: {self.likelihood!r}; use one of {', '.join(LIKELIHOODS)}")
        for key in ("user_cutpoints", "item_cutpoints"):
            if getattr(self, key) and self.likelihood != "ordered_probit":
                raise ValueError(f"BFMConfig.{key}: cutpoints need likelihood=ordered_probit")
        if self.user_cutpoints and self.item_cutpoints:
            raise ValueError("BFMConfig.user_cutpoints, item_cutpoints: a row has one set of cutpoints; set one")
        if self.burn_in >= self.sweeps:
            raise ValueError(f"BFMConfig.burn_in: {self.burn_in} must be below sweeps ({self.sweeps})")


def _one_hot(codes: np.ndarray, width: int) -> sps.csr_matrix:
    """Rows with a 1 in column `codes[r]`; an empty row where the code is negative."""
    rows = np.flatnonzero(codes >= 0)
    return sps.csr_matrix((np.ones(len(rows)), (rows, codes[rows])), shape=(len(codes), width))


def _categories(values: pd.Series) -> tuple[np.ndarray, int]:
    """Codes 0..k-1 of the non-missing values (in sorted order), -1 for missing; and k."""
    index = IdIndex(pd.Series(values).dropna().unique())
    return index(values.to_numpy()) - 1, len(index) - 1


def _bags(owner: np.ndarray, member: np.ndarray, n_owners: int, n_members: int) -> sps.csr_matrix:
    """Row o: the members paired with owner o, each weighted 1/sqrt(their count)."""
    m = sps.csr_matrix((np.ones(len(owner)), (owner, member)), shape=(n_owners, n_members))
    m.data[:] = 1.0  # a repeated pair counts once
    n = np.asarray(m.sum(axis=1)).ravel()
    return sps.diags(1.0 / np.sqrt(np.maximum(n, 1.0))) @ m


def _fit_cutpoint_groups(fm, X: sps.csr_matrix, y: np.ndarray, rel: list, cut: np.ndarray, n_levels: int,
                         groups: list[int], sweeps: int, kept: int, callback=None):
    """`fm.fit` of a `MyFMOrderedProbit` with a set of cutpoints per group of rows (`cut`: each row's group,
    0..G-1). myFM's sampler takes cutpoint groups but its `fit` passes one, so this calls its `_fit` (myfm
    0.4.0 is pinned); with one group it samples exactly what `fit` does (the same numbers)."""
    from myfm._myfm import ConfigBuilder

    n_groups = int(cut.max()) + 1
    order = np.argsort(cut, kind="stable")
    rows = np.split(order, np.cumsum(np.bincount(cut, minlength=n_groups))[:-1])
    builder = ConfigBuilder()
    builder.set_cutpoint_groups([(n_levels, r.tolist()) for r in rows])
    fm.n_cutpoint_groups = n_groups
    fm._fit(X, y, X_rel=rel, n_iter=sweeps, n_kept_samples=kept, group_shapes=groups, config_builder=builder,
            callback=callback)
    return fm


OnSweep = Callable[[int, int, Any, Any], None]  # (chain, sweep, the chain's current state, its hyper-parameters)


def _sweep_callback(fm, chain: int, on_sweep: OnSweep | None):
    """myFM's per-sweep callback calling `on_sweep` (None: myFM's own, the progress bar's status line)."""
    if on_sweep is None:
        return None

    def callback(sweep: int, state, hyper, history) -> tuple[bool, str]:
        on_sweep(chain, sweep, state, hyper)
        return False, fm._status_report(state, hyper)

    return callback


def _myfm():
    """The myfm module, imported without its pkg_resources deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import myfm
    return myfm


class BFMModel(Model[BFMConfig]):
    """`bfm` / `bfm_op`: a Bayesian factorization machine over user and item relation blocks."""

    config_cls = BFMConfig
    suffix = ".npz"
    single_threaded = True  # myFM's Gibbs sampler runs on one thread
    fold_cost = 6.0  # ml-1m fold 0: 190-271 s (rank 24-32), gbm 41 s
    fit_bytes_per_rating = 560.0  # a fold of a 22.5M-rating competition peaked at 10.5 GiB (bfm), 11.7 (bfm_op)
    requires = "myfm"

    # --- features -----------------------------------------------------------------------------

    def _blocks(self, train: pd.DataFrame) -> None:
        """The user and item blocks (row 0 of each: anything unknown) and the feature groups."""
        c, side = self.config, self.side
        pairs = side.pairs if side.pairs is not None else train[["user_id", "item_id"]]
        users = np.unique(np.concatenate([side.users["user_id"].to_numpy(), pairs["user_id"].to_numpy(),
                                          train["user_id"].to_numpy()]))
        items = np.unique(np.concatenate([side.items["item_id"].to_numpy(), pairs["item_id"].to_numpy(),
                                          train["item_id"].to_numpy()]))
        self.users_, self.items_ = IdIndex(users), IdIndex(items)
        seen_u, seen_i = IdIndex(train["user_id"]), IdIndex(train["item_id"])
        self.seen_items_ = seen_i.ids  # the item-id columns, in order (for `item_factors`)
        ublocks: list[tuple[str, sps.csr_matrix]] = [("user", _one_hot(seen_u(users) - 1, len(seen_u) - 1))]
        iblocks: list[tuple[str, sps.csr_matrix]] = [("item", _one_hot(seen_i(items) - 1, len(seen_i) - 1))]
        if c.use_side:
            us = join_side(pd.DataFrame({"user_id": users, "item_id": -1}), side.users, side.items)
            for col in ("age_bucket", "gender", "occupation"):
                if col in us and us[col].notna().any():
                    ublocks.append((col, _one_hot(*_categories(us[col]))))
            its = join_side(pd.DataFrame({"user_id": -1, "item_id": items}), side.users, side.items)
            vocab = sorted({g for gs in side.items["genres"] for g in gs})
            gcol = {g: n for n, g in enumerate(vocab)}
            r, k, v = [], [], []
            for row, gs in enumerate(its["genres"]):
                gs = [g for g in gs if g in gcol] if isinstance(gs, list) else []
                if not gs:  # "(no genres listed)", or an item missing from items.csv: an empty row
                    continue
                r += [row] * len(gs)
                k += [gcol[g] for g in gs]
                v += [1.0 / len(gs)] * len(gs)
            iblocks.append(("genre", sps.csr_matrix((v, (r, k)), shape=(len(items), len(vocab)))))
            iblocks.append(("year", _one_hot(*_categories(np.floor(its["year"] / c.year_bin)))))
        if c.implicit:
            pu, pi = self.users_(pairs["user_id"]) - 1, self.items_(pairs["item_id"]) - 1
            ublocks.append(("rated_items", _bags(pu, pi, len(users), len(items))))
            iblocks.append(("raters", _bags(pi, pu, len(items), len(users))))
        self.user_block_ = sps.vstack([sps.csr_matrix((1, sum(b.shape[1] for _, b in ublocks))),
                                       sps.hstack([b for _, b in ublocks])]).tocsr()
        self.item_block_ = sps.vstack([sps.csr_matrix((1, sum(b.shape[1] for _, b in iblocks))),
                                       sps.hstack([b for _, b in iblocks])]).tocsr()
        self.date_buckets_ = np.unique(self._date_bucket(train)) if c.use_side and c.date_days else np.zeros(0)
        self.user_days_ = np.unique(self._user_day(train)) if c.use_side and c.user_day else np.zeros(0, np.int64)
        self.n_user_groups_ = len(ublocks)
        self.row_groups_ = ROW_GROUPS
        self._index_rows()
        neighbours = bool(c.neighbours) and self.ranks_ is not None
        self.fit_rows_ = train[["user_id", "item_id", "rating"]].reset_index(drop=True) if neighbours else None
        self._rating_timeline()
        self.groups_ = [len(self.date_buckets_), len(self.user_days_), self.timeline_width_,  # ROW_GROUPS
                        NEIGHBOUR_COLUMNS if neighbours else 0,
                        *(b.shape[1] for _, b in ublocks), *(b.shape[1] for _, b in iblocks)]

    def _index_rows(self) -> None:
        """The lookups of the row features' vocabularies, built once (every `_design` call uses them)."""
        self.date_index_ = IdIndex(self.date_buckets_, ordered=True)
        self.user_day_index_ = IdIndex(self.user_days_, ordered=True)
        c, pairs = self.config, self.side.pairs if self.side is not None else None
        dated = pairs is not None and "timestamp" in pairs  # timelines come from the pairs alone: `load` rebuilds them
        self.ranks_ = timeline_ranks(pairs) if c.use_side and (c.timeline or c.neighbours) and dated else None
        self.timeline_width_ = c.timeline if self.ranks_ is not None else 0

    def _rating_timeline(self) -> None:
        """The training ratings along the users' timelines, for the neighbour columns (None with them off)."""
        self.rating_timeline_ = None if self.ranks_ is None or getattr(self, "fit_rows_", None) is None else \
            RatingTimeline(self.fit_rows_, self.ranks_, self.config.neighbours)

    def _timeline(self, df: pd.DataFrame) -> np.ndarray:
        """Each row's timeline bucket; -1 for a pair that is not public (or with the feature off)."""
        if not self.timeline_width_:
            return np.full(len(df), -1, np.int64)
        return self.ranks_.buckets(df["user_id"].to_numpy(), df["item_id"].to_numpy(), self.timeline_width_)

    def _date_bucket(self, df: pd.DataFrame) -> np.ndarray:
        return np.floor(df["timestamp"].to_numpy(np.float64) / (86400.0 * self.config.date_days)).astype(np.int64)

    def _user_day(self, df: pd.DataFrame) -> np.ndarray:
        """One integer per row for its (user, UTC calendar day); unknown users never match a trained key."""
        return user_day_keys(self.users_(df["user_id"]), df["timestamp"])

    def _neighbours(self, df: pd.DataFrame, fitting: bool = False) -> list[sps.csr_matrix]:
        """The neighbour columns of the rows of `df` (residuals, 0 where none), as one block; none with them off
        (or in a model saved before them). Rows to predict: from every training row. The training rows
        (`fitting`): each from the training rows of the other inner folds, never from its own rating."""
        if getattr(self, "rating_timeline_", None) is None:
            return []
        if not fitting:
            nb = self.rating_timeline_.lookup(df)
        else:
            inner = inner_folds(df, NEIGHBOUR_FOLDS, self.config.seed, self.side.pairs)
            rows = df[["user_id", "item_id", "rating"]]
            k = self.config.neighbours
            nb = pd.concat([RatingTimeline(rows[inner != j], self.ranks_, k).lookup(rows[inner == j])
                            for j in range(NEIGHBOUR_FOLDS)]).loc[df.index]
        nb = nb.filter(regex=r"^nb_(prev|next|mean)")  # NEIGHBOUR_COLUMNS: the nearest two and the window means
        return [sps.csr_matrix(np.nan_to_num(nb.to_numpy(np.float64), nan=0.0))]

    def _row_part(self, df: pd.DataFrame, fitting: bool = False) -> sps.csr_matrix:
        """The row features (date bucket, user-day, timeline, neighbours) of the rows of `df` (`fitting`: the
        training rows, whose neighbour columns come from the other inner folds)."""
        return sps.hstack([_one_hot(self.date_index_(self._date_bucket(df)) - 1, len(self.date_buckets_)),
                           _one_hot(self.user_day_index_(self._user_day(df)) - 1, len(self.user_days_)),
                           _one_hot(self._timeline(df), self.timeline_width_), *self._neighbours(df, fitting)],
                          format="csr")

    def _block_rows(self, df: pd.DataFrame) -> list[tuple[np.ndarray, sps.csr_matrix]]:
        """Each row's place in the user block and in the item block, with the blocks."""
        return [(self.users_(df["user_id"]), self.user_block_), (self.items_(df["item_id"]), self.item_block_)]

    def _design(self, df: pd.DataFrame, fitting: bool = False) -> tuple[sps.csr_matrix, list]:
        """The row features and the two relation blocks of the rows of `df`, as myFM takes them."""
        RelationBlock = _myfm().RelationBlock
        return self._row_part(df, fitting), [RelationBlock(index, block) for index, block in self._block_rows(df)]

    # --- fit and predict ------------------------------------------------------------------------

    def fit(self, train: pd.DataFrame, on_sweep: OnSweep | None = None) -> BFMModel:
        """Sample the posterior. `on_sweep(chain, sweep, state, hyper)`, if given, is called after every Gibbs sweep
        (0-based) with the chain's current state, which `sample_predictor`'s function takes, and its
        hyper-parameters (`hyper.alpha`: the noise precision): what `bench/gibbs_trace.py` traces a chain by."""
        myfm = _myfm()
        c = self.config
        self._blocks(train)
        X, rel = self._design(train, fitting=True)
        y = train["rating"].to_numpy(np.float64)
        groups = [g for g in self.groups_ if g]  # a group without columns has no prior to sample
        kept = c.sweeps - c.burn_in
        self.levels_ = np.unique(y) if c.likelihood == "ordered_probit" else np.zeros(0)
        ids, counts = np.unique(train[self._cut_key()].to_numpy(), return_counts=True)
        threshold = c.user_cutpoints or c.item_cutpoints
        self.cut_ids_ = ids[counts >= threshold] if threshold else ids[:0]
        cut = self._cut_groups(train)
        self.pooled_ = bool((cut == 0).any())  # the shared cutpoints had rows to learn from
        self.fms_ = []
        for chain in range(c.chains):  # independent Gibbs chains, averaged: less Monte Carlo noise
            seed = c.seed + 1000 * chain
            if c.likelihood == "regression":
                fm = myfm.MyFMRegressor(rank=c.rank, init_stdev=c.init_std, random_seed=seed)
                fm.fit(X, y, X_rel=rel, n_iter=c.sweeps, n_kept_samples=kept, group_shapes=groups,
                       callback=_sweep_callback(fm, chain, on_sweep))
            else:  # one set of cutpoints (what `MyFMOrderedProbit.fit` does), or one per user or item
                fm = myfm.MyFMOrderedProbit(rank=c.rank, init_stdev=c.init_std, random_seed=seed)
                fm = _fit_cutpoint_groups(fm, X, np.searchsorted(self.levels_, y), rel, cut, len(self.levels_), groups,
                                          c.sweeps, kept, _sweep_callback(fm, chain, on_sweep))
            self.fms_.append(fm)
        return self

    def _cut_key(self) -> str:
        """The column whose values own cutpoints: `item_id` with `item_cutpoints`, else `user_id`."""
        return "item_id" if self.config.item_cutpoints else "user_id"

    def _cut_groups(self, df: pd.DataFrame) -> np.ndarray:
        """Each row's set of cutpoints: k for the k-th user (or item) with cutpoints of their own, 0 (shared) for
        the rest."""
        return IdIndex(self.cut_ids_, ordered=True)(df[self._cut_key()])

    def sample_predictor(self, df: pd.DataFrame) -> Callable[[Any], np.ndarray]:
        """A function of one posterior sample (a kept one, or a chain's state in `fit`'s `on_sweep`) giving its
        prediction of the rows of `df`: the score, or (ordered probit) the expected rating, each row under its
        own set of cutpoints: P(level <= l) = Phi(c_l - score); rows on the shared set when no training row was
        on it take the mean of the users' (items') sets. Scored by `BlockRows` (myFM's scores, in a quarter of
        its own predictor's time)."""
        rows = BlockRows(self._row_part(df), self._block_rows(df))
        cut = self._cut_groups(df) if len(self.cut_ids_) else np.zeros(len(df), np.int64)

        def predict(sample) -> np.ndarray:
            score = rows.scores(sample.w0, np.asarray(sample.w), np.asarray(sample.V))
            if not len(self.levels_):
                return score
            C = np.stack(sample.cutpoints)
            if not self.pooled_:
                C[0] = C[1:].mean(0)
            expected = np.zeros(len(score))
            add_expected_level(expected, score, C, cut, self.levels_)
            return expected

        return predict

    def _predict(self, df: pd.DataFrame) -> np.ndarray:
        """The posterior mean of `sample_predictor`'s prediction over every kept sample of every chain."""
        if not len(df):
            return np.zeros(0)
        predict = self.sample_predictor(df)
        total, n = np.zeros(len(df)), 0
        with prediction_threads(self.config.workers):
            for fm in self.fms_:
                for sample in fm.predictor_.samples:
                    total += predict(sample)
                    n += 1
        return total / n

    def item_factors(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The ids of the items seen in training and, per kept posterior sample, their id factors."""
        start = sum(self.groups_[:self.row_groups_ + self.n_user_groups_])  # the item ids: after row and user groups
        rows = slice(start, start + len(self.seen_items_))
        return self.seen_items_, [np.asarray(s.V)[rows] for fm in self.fms_ for s in fm.predictor_.samples]

    # --- save and load ----------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Blocks, vocabularies and `saved_samples` evenly spaced posterior samples, as plain arrays."""
        states = []
        per_chain = max(1, self.config.saved_samples // len(self.fms_))
        for fm in self.fms_:  # evenly spaced samples of every chain
            samples = fm.predictor_.samples
            keep = np.unique(np.linspace(0, len(samples) - 1, min(per_chain, len(samples))).round())
            states += [samples[int(k)].__getstate__() for k in keep]
        arrays = {"w0": np.array([s[0] for s in states]), "w": np.stack([s[1] for s in states]).astype(np.float32),
                  "V": np.stack([s[2] for s in states]).astype(np.float32),
                  "cutpoints": np.stack([np.stack(s[3]) if s[3] else np.zeros((0, 0)) for s in states]),
                  "cut_ids": self.cut_ids_, "pooled": np.array(self.pooled_),
                  "users": self.users_.ids, "items": self.items_.ids, "date_buckets": self.date_buckets_,
                  "user_days": self.user_days_,
                  "levels": self.levels_, "groups": np.array(self.groups_), "seen_items": self.seen_items_,
                  "n_user_groups": np.array(self.n_user_groups_), "row_groups": np.array(self.row_groups_)}
        if self.rating_timeline_ is not None:  # the training ratings the neighbour columns come from
            arrays |= {f"fit_{k}": self.fit_rows_[k].to_numpy() for k in ("user_id", "item_id", "rating")}
        for name, m in (("user_block", self.user_block_), ("item_block", self.item_block_)):
            arrays |= {f"{name}_data": m.data, f"{name}_indices": m.indices, f"{name}_indptr": m.indptr,
                       f"{name}_shape": np.array(m.shape)}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # not compressed: the samples shrink by 7% and
            # reading them back through zlib took 3 s a fold on ml-100k (the report loads them all)
            np.savez(f, config=np.array(json.dumps(self.config.to_dict())), **arrays)

    @classmethod
    def load(cls, path: Path, side: SideInfo) -> BFMModel:
        myfm = _myfm()
        from myfm._myfm import FM, Predictor, TaskType

        z = np.load(path)  # no pickle: allow_pickle stays False
        m = cls(cls.config_cls.from_dict(json.loads(str(z["config"]))), side)
        m.users_, m.items_ = IdIndex(z["users"], ordered=True), IdIndex(z["items"], ordered=True)
        m.date_buckets_, m.levels_, m.groups_ = z["date_buckets"], z["levels"], z["groups"].tolist()
        m.user_days_, m.pooled_ = z["user_days"], bool(z["pooled"])
        m.cut_ids_ = z["cut_ids"] if "cut_ids" in z else z["cut_users"]  # files saved before item cutpoints
        m.row_groups_ = int(z["row_groups"]) if "row_groups" in z else 3  # files saved before the neighbours
        m._index_rows()
        m.fit_rows_ = pd.DataFrame({k: z[f"fit_{k}"] for k in ("user_id", "item_id", "rating")}) \
            if "fit_rating" in z else None
        m._rating_timeline()
        if m.row_groups_ > 3 and m.groups_[3] and m.rating_timeline_ is None:
            raise ValueError(f"{path}: fitted with neighbour columns, which need the public pairs' timestamps "
                             "(SideInfo.pairs: user_id, item_id, timestamp)")
        fitted_width = m.groups_[2]  # the timeline's group, the third of the row features
        if m.timeline_width_ != fitted_width:
            raise ValueError(f"{path}: fitted with {fitted_width} timeline buckets, read off the public pairs' "
                             "timestamps; the pairs given have none (SideInfo.pairs needs user_id, item_id, timestamp)")
        m.seen_items_, m.n_user_groups_ = z["seen_items"], int(z["n_user_groups"])
        m.user_block_, m.item_block_ = (
            sps.csr_matrix((z[f"{b}_data"], z[f"{b}_indices"], z[f"{b}_indptr"]), shape=tuple(z[f"{b}_shape"]))
            for b in ("user_block", "item_block"))
        fms = []
        for k in range(len(z["w0"])):
            fm = FM.__new__(FM)
            fm.__setstate__((float(z["w0"][k]), z["w"][k].astype(np.float64), np.asfortranarray(z["V"][k], np.float64),
                             list(z["cutpoints"][k]) if len(m.levels_) else []))
            fms.append(fm)
        predictor = Predictor.__new__(Predictor)
        task = TaskType.ORDERED if len(m.levels_) else TaskType.REGRESSION
        predictor.__setstate__((m.config.rank, z["w"].shape[1], task, fms))
        fm = (myfm.MyFMOrderedProbit if len(m.levels_) else myfm.MyFMRegressor)(rank=m.config.rank)
        fm.predictor_ = predictor
        m.fms_ = [fm]  # the saved samples of every chain, in one predictor
        return m


__all__ = ["BFMConfig", "BFMModel"]
