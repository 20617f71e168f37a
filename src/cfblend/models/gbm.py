"""LightGBM on the learned embeddings, fold-safe; registered as `gbm`.

Features of a (user, item, time) row:
- from a dot-product model: the user's and the item's factors, their biases, and the dot
  model's prediction for the pair;
- raw side features: age, gender, occupation, zip region (LightGBM categoricals), genres
  (multi-hot), release year, the rating's date and the movie's age at rating time;
- aggregates: user and item rating count, mean and spread, item popularity, and the user's
  (damped) affinity for the item's genres;
- the pair's *timeline* (`timeline_table`): where and when it sits in its user's public history,
  from which pairs were rated and when (train and test; never a rating), as `bfm`'s timeline
  bucket; NaN for a pair that is not public;
- the *neighbouring ratings* (`RatingTimeline`): how the user rated the fit rows just before and
  just after the pair in that history, as residuals from the fit rows' damped biases; the same
  weighted by the genres their movies share with the pair's, and the fit rows rated within 0, 60 and
  300 seconds of it. MovieLens users rate in sittings, from lists the site shows, and ratings given
  side by side move together beyond the user's bias and the day's mood.

Fold safety: no feature of a training row is computed from that row's own rating. Inside the
training part, an inner K-fold gives each training row its dot-model features and aggregates
from a model and statistics fitted on the *other* inner folds. The inner folds are the outer ones'
kind (`competition.folds.inner_folds`): where many of the rows it will predict are of users absent
from its training part (the `time` split), they hold out whole users as often, so the trees learn what
to do with a user's zero factors and missing aggregates instead of meeting them first at test time.
The rows to predict (the outer held-out fold, the test set) get features from a dot model and
aggregates fitted on the whole training part, which never saw them. Early stopping holds out a
slice of the training part, never the outer fold. `provenance_` records which rows each feature
model saw, so this can be checked. Dot models come through a content-addressed cache, so the outer
dot model of a fold is the very one `make train MODEL=dot` fitted, and inner ones are fitted once
per config.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cfblend.competition.folds import inner_folds
from cfblend.io import atomic_path, write_json
from cfblend.models.base import Model, ModelConfig, SideInfo
from cfblend.models.dot import DotConfig, DotModel
from cfblend.models.ids import IdIndex
from cfblend.models.side import join_side
from cfblend.models.timeline import RatingTimeline, genre_masks, timeline_of, timeline_ranks, timeline_table

log = logging.getLogger(__name__)

CATEGORICAL = ("gender", "occupation", "zip1", "age_bucket")


@dataclass
class GBMConfig(ModelConfig):
    """LightGBM and feature-pipeline settings."""

    inner_folds: int = 5
    dot: dict[str, Any] = field(default_factory=dict)  # overrides of the registered dot config
    valid_frac: float = 0.1  # early-stopping slice of the training part
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_rounds: int = 3000
    early_stopping: int = 100
    num_threads: int = 0  # 0: OpenMP's default, every core (one in a Dask worker, which sets OMP_NUM_THREADS=1)
    implicit: bool = True  # rating counts of the user and the item over all public (train and test) pairs
    timeline: bool = True  # where and when the pair sits in its user's public history (`timeline_table`)
    neighbours: int = 10  # window of the fit rows' ratings around the pair in its user's history (0: none)
    max_rows: int = 0  # 0: the GBM fits on every training row; else on this many, drawn at random (large data)
    predict_chunk: int = 1_000_000  # rows featurized and predicted at a time (bounds the feature frame's memory)

    limits: ClassVar[dict[str, str]] = {
        "inner_folds": ">=2", "valid_frac": "(0,1)", "learning_rate": ">0", "num_leaves": ">=2",
        "min_data_in_leaf": ">=1", "feature_fraction": "(0,1]", "bagging_fraction": "(0,1]", "lambda_l2": ">=0",
        "max_rounds": ">=1", "early_stopping": ">=1", "num_threads": ">=0", "max_rows": ">=0", "neighbours": ">=0",
        "predict_chunk": ">=1"}

    def __post_init__(self) -> None:
        super().__post_init__()
        DotConfig.from_dict({**DotConfig().to_dict(), **self.dot})  # the inner dot config is checked too


class RatingStats:
    """Per-user and per-item rating count, mean and spread of the rows a model was fitted on: computed
    once, then looked up for any number of row chunks."""

    def __init__(self, fit_rows: pd.DataFrame) -> None:
        self.n_rows = len(fit_rows)
        self.groups = {key: fit_rows.groupby(key)["rating"].agg(["count", "mean", "std"])
                       for key in ("user_id", "item_id")}

    def lookup(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The aggregate features of `rows` (count 0 and NaN mean/spread for an id the fit rows lack)."""
        out = pd.DataFrame(index=rows.index)
        for key, p in (("user_id", "user"), ("item_id", "item")):
            look = self.groups[key].reindex(rows[key].to_numpy())
            out[f"{p}_count"] = look["count"].fillna(0).to_numpy()
            out[f"{p}_mean"] = look["mean"].to_numpy()
            out[f"{p}_std"] = look["std"].to_numpy()
        out["item_popularity"] = out["item_count"] / max(self.n_rows, 1)
        return out


@dataclass
class FitStats:
    """Everything the features take from the ratings of the fit rows, computed once per fit-row set."""

    ratings: RatingStats
    users: np.ndarray  # the fit rows' sorted user ids
    affinity: np.ndarray  # users x genres: damped mean residual of the user's ratings in each genre
    timeline: RatingTimeline | None = None  # the fit rows' ratings along their users' timelines


class GBMModel(Model[GBMConfig]):
    """`gbm`: a LightGBM regressor over dot-model embeddings, side features and aggregates."""

    config_cls = GBMConfig
    suffix = ".txt"
    side_by_side = True  # ml-1m, 2 cores: 2 folds as 1-thread processes in 29 s, against 18 s a fold on 2 threads
    fit_bytes_per_rating = 450.0  # a fold of a 22.5M-rating competition peaked at 9.5 GB (large-data setting)

    def _dot(self, rows: pd.DataFrame) -> DotModel:
        from cfblend.models import model_config  # the registered dot config, so the cache is shared

        dot = DotModel(model_config("dot", self.config.dot or None), self.side)
        return self.cache.fit(dot, rows, self.side) if self.cache is not None else dot.fit(rows)

    def fit_stats(self, fit_rows: pd.DataFrame) -> FitStats:
        """The rating statistics of `fit_rows` that `features` looks up."""
        users, aff = self._genre_affinity_table(fit_rows)
        timeline = None if self.ranks_ is None else RatingTimeline(fit_rows, self.ranks_, self.config.neighbours,
                                                                   genres=self.genre_masks_)
        return FitStats(RatingStats(fit_rows), users, aff, timeline)

    def features(self, rows: pd.DataFrame, dot: DotModel, stats: FitStats) -> pd.DataFrame:
        """The feature frame of `rows`, from a dot model and statistics (`fit_stats`) of the same fit rows."""
        pu, bu = dot.embeddings("user", rows["user_id"])
        qi, bi = dot.embeddings("item", rows["item_id"])
        k = pu.shape[1]
        cols = {"dot_pred": dot.predict(rows), "user_bias": bu, "item_bias": bi}
        cols |= {f"u{j}": pu[:, j] for j in range(k)} | {f"i{j}": qi[:, j] for j in range(k)}
        X = pd.DataFrame(cols, index=rows.index)
        side = join_side(rows, self.side.users, self.side.items)
        for c in CATEGORICAL:
            if c in side:
                X[c] = pd.Categorical(side[c], categories=self.categories_[c])
        for c in ("age", "year", "t_years", "movie_age"):
            if c in side:
                X[c] = side[c].to_numpy(dtype=float)
        multi = self._item_genres(rows["item_id"])
        for g, n in self.genres_.items():
            X["genre_" + re.sub(r"\W", "_", g)] = multi[:, n]
        X["genre_affinity"] = self._genre_affinity(stats, rows, multi)
        X = pd.concat([X, stats.ratings.lookup(rows)], axis=1)
        for key, p in (("user_id", "user"), ("item_id", "item")):
            if key in self.pair_counts_:  # counts of public pairs: no rating involved
                X[f"{p}_pairs"] = self.pair_counts_[key].reindex(rows[key].to_numpy()).fillna(0).to_numpy()
        if self.timeline_ is not None:
            look = timeline_of(self.timeline_, rows)
            for col in self.timeline_.columns:
                X[col] = look[col].to_numpy()
        if stats.timeline is not None:
            X = pd.concat([X, stats.timeline.lookup(rows)], axis=1)
        return X

    def _item_genres(self, item_ids) -> np.ndarray:
        return IdIndex(self.side.items["item_id"], ordered=True).take(self.genre_matrix_, item_ids)

    def _genre_affinity_table(self, fit_rows: pd.DataFrame, damping: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
        """The fit rows' sorted user ids and how much more than usual each likes each genre (damped means
        of the residuals from the user's mean rating)."""
        users, u = np.unique(fit_rows["user_id"].to_numpy(), return_inverse=True)
        r = fit_rows["rating"].to_numpy(np.float64)
        resid = r - (np.bincount(u, r) / np.bincount(u))[u]
        G = self._item_genres(fit_rows["item_id"])
        sums = np.zeros((len(users), G.shape[1]))
        counts = np.zeros_like(sums)
        np.add.at(sums, u, G * resid[:, None])
        np.add.at(counts, u, G)
        return users, sums / (counts + damping)

    @staticmethod
    def _genre_affinity(stats: FitStats, rows: pd.DataFrame, multi: np.ndarray) -> np.ndarray:
        """The user's mean affinity over the item's genres; NaN for a user the fit rows lack or no genre."""
        users = stats.users
        pos = np.searchsorted(users, rows["user_id"].to_numpy())
        pos_c = np.minimum(pos, len(users) - 1)
        known = users[pos_c] == rows["user_id"].to_numpy()
        n_g = multi.sum(1)
        score = (stats.affinity[pos_c] * multi).sum(1) / np.maximum(n_g, 1)
        return np.where(known & (n_g > 0), score, np.nan)

    def _side_vocab(self) -> None:
        """Category lists, the genre multi-hot and the public pair counts, from the side tables and pairs (no
        ratings involved)."""
        users, items = self.side.users, self.side.items
        uside = join_side(pd.DataFrame({"user_id": users["user_id"], "item_id": items["item_id"].iloc[0]}),
                          users, items)
        self.categories_ = {c: sorted(uside[c].dropna().unique().tolist()) for c in CATEGORICAL if c in uside}
        self.genres_ = {g: n for n, g in enumerate(sorted({g for gs in items["genres"] for g in gs}))}
        self._side_tables()

    def _side_tables(self) -> None:
        """The genre multi-hot of every item, the public pair counts per user and item and the pairs' timeline
        (side tables and pairs only, so `load` rebuilds them instead of saving them)."""
        pairs = self.side.pairs if self.config.implicit and self.side.pairs is not None else None
        self.pair_counts_ = {} if pairs is None else {k: pairs[k].value_counts() for k in ("user_id", "item_id")}
        self.timeline_, self.ranks_ = None, None
        dated = self.side.pairs is not None and "timestamp" in self.side.pairs
        if self.config.timeline and dated:
            self.timeline_ = timeline_table(self.side.pairs)
        if self.config.neighbours and dated:
            self.ranks_ = timeline_ranks(self.side.pairs)
        self.genre_masks_ = genre_masks(self.side.items) if self.ranks_ is not None else None
        self.genre_matrix_ = np.zeros((len(self.side.items), len(self.genres_)), dtype=np.float32)
        for r, gs in enumerate(self.side.items["genres"]):
            self.genre_matrix_[r, [self.genres_[g] for g in gs if g in self.genres_]] = 1.0

    def training_features(self, train: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
        """Nested out-of-fold features of the training rows the GBM fits on (all, or `max_rows` drawn at
        random), and the bookkeeping of who saw what. The dot models and aggregates of each inner fold are
        fitted on every row of the other inner folds, sampled or not."""
        c = self.config
        inner = inner_folds(train, c.inner_folds, c.seed, self.side.pairs)
        sampled = np.ones(len(train), dtype=bool)
        if c.max_rows and c.max_rows < len(train):
            sampled[:] = False
            sampled[np.random.default_rng(c.seed + 2).choice(len(train), c.max_rows, replace=False)] = True
        parts, seen = [], []
        for j in range(c.inner_folds):
            fit_rows, rows = train[inner != j], train[(inner == j) & sampled]
            parts.append(self.features(rows, self._dot(fit_rows), self.fit_stats(fit_rows)))
            seen.append({"fit_ids": fit_rows["id"].to_numpy() if "id" in fit_rows else fit_rows.index.to_numpy(),
                         "featurized_ids": rows["id"].to_numpy() if "id" in rows else rows.index.to_numpy()})
        return pd.concat(parts).loc[train.index[sampled]], {"inner": seen, "inner_fold": inner, "sampled": sampled}

    def fit(self, train: pd.DataFrame) -> GBMModel:
        c = self.config
        self._side_vocab()
        X, prov = self.training_features(train)
        y = train["rating"].to_numpy(np.float64)[prov["sampled"]]
        rng = np.random.default_rng(c.seed + 1)
        valid = np.zeros(len(X), dtype=bool)
        valid[rng.permutation(len(X))[: round(len(X) * c.valid_frac)]] = True
        params = {"objective": "regression", "metric": "rmse", "learning_rate": c.learning_rate,
                  "num_leaves": c.num_leaves, "min_data_in_leaf": c.min_data_in_leaf,
                  "feature_fraction": c.feature_fraction, "bagging_fraction": c.bagging_fraction, "bagging_freq": 1,
                  "lambda_l2": c.lambda_l2, "seed": c.seed, "deterministic": True, "force_row_wise": True,
                  "num_threads": c.num_threads, "verbosity": -1}
        dtrain = lgb.Dataset(X[~valid], y[~valid], free_raw_data=False)
        dvalid = lgb.Dataset(X[valid], y[valid], reference=dtrain)
        evals: dict = {}
        bar = tqdm(total=c.max_rounds, desc="gbm rounds", leave=False, disable=None)

        def progress(env) -> None:
            bar.update(1)
            if env.iteration % 25 == 0 and env.evaluation_result_list:
                bar.set_postfix(early_stop_rmse=f"{env.evaluation_result_list[-1][2]:.4f}")

        try:  # the training set is recorded for the learning curve; early stopping ignores it
            self.booster = lgb.train(params, dtrain, num_boost_round=c.max_rounds, valid_sets=[dtrain, dvalid],
                                     valid_names=["train", "early_stop"],
                                     callbacks=[lgb.early_stopping(c.early_stopping, verbose=False),
                                                lgb.log_evaluation(0), lgb.record_evaluation(evals), progress])
        finally:
            bar.close()
        self.history_ = {"train_rmse": list(evals["train"]["rmse"]),
                         "early_stop_rmse": list(evals["early_stop"]["rmse"])}
        self.dot_ = self._dot(train)
        keep = ["user_id", "item_id", "rating", *(["timestamp"] if "timestamp" in train else [])]  # the sittings
        self.fit_rows_ = train[keep].reset_index(drop=True)
        self.fit_stats_: FitStats | None = None  # the fit rows' statistics, computed by the first prediction
        self.provenance_ = {**prov, "outer_fit_ids": train["id"].to_numpy() if "id" in train else None,
                            "early_stop_ids": train["id"].to_numpy()[prov["sampled"]][valid] if "id" in train else None}
        log.debug("gbm: %d rounds, early-stop rmse %.4f", self.booster.best_iteration,
                  self.booster.best_score["early_stop"]["rmse"])
        return self

    def _predict(self, df: pd.DataFrame) -> np.ndarray:
        if getattr(self, "fit_stats_", None) is None:  # once per model: every chunk and call looks them up
            self.fit_stats_ = self.fit_stats(self.fit_rows_)
        step = self.config.predict_chunk
        out = [self.booster.predict(self.features(df.iloc[s:s + step], self.dot_, self.fit_stats_),
                                    num_iteration=self.booster.best_iteration) for s in range(0, len(df), step)]
        return np.concatenate(out) if out else np.zeros(0)

    def importance(self) -> pd.Series:
        """Total gain of each feature."""
        return pd.Series(self.booster.feature_importance("gain"), index=self.booster.feature_name())

    def save(self, path: Path) -> None:
        """`fold<k>.txt` (the booster), `fold<k>.dot.pt`, `fold<k>.rows.parquet`, `fold<k>.meta.json`."""
        stem = path.with_suffix("")
        self.dot_.save(stem.with_suffix(".dot.pt"))
        with atomic_path(stem.with_suffix(".rows.parquet")) as tmp:
            self.fit_rows_.to_parquet(tmp, index=False)
        write_json({"config": self.config.to_dict(), "categories": self.categories_, "genres": self.genres_},
                   stem.with_suffix(".meta.json"))
        with atomic_path(path) as tmp:
            self.booster.save_model(str(tmp), num_iteration=self.booster.best_iteration)

    @classmethod
    def load(cls, path: Path, side: SideInfo) -> GBMModel:
        stem = path.with_suffix("")
        meta = json.loads(stem.with_suffix(".meta.json").read_text())
        m = cls(cls.config_cls.from_dict(meta["config"]), side)
        m.categories_, m.genres_ = meta["categories"], meta["genres"]
        m._side_tables()
        m.dot_ = DotModel.load(stem.with_suffix(".dot.pt"), side)
        m.fit_rows_ = pd.read_parquet(stem.with_suffix(".rows.parquet"))
        m.booster = lgb.Booster(model_file=str(path))
        return m


__all__ = ["FitStats", "GBMConfig", "GBMModel", "RatingStats"]
