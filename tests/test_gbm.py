"""LightGBM on embeddings: the fold-safety rule, deterministic features, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfblend.competition.scoring import rmse
from cfblend.models import make_model
from cfblend.models.gbm import GBMModel, RatingStats
from cfblend.runs import side_info
from cfblend.runs.cache import ModelCache

FAST = {"inner_folds": 3, "max_rounds": 60, "early_stopping": 10, "min_data_in_leaf": 20,
        "dot": {"epochs": 4, "batch_size": 256, "lr": 0.01, "device": "cpu"}}


@pytest.fixture
def gbm_setup(comp_env, tmp_path):
    comp, folds, _ = comp_env
    model = make_model("gbm", side_info(comp), FAST)
    model.cache = ModelCache(tmp_path / "cache")
    return comp, folds, model


def test_no_training_row_feature_comes_from_its_own_rating(gbm_setup):
    comp, folds, model = gbm_setup
    train = comp.train[folds != 0]
    model._side_vocab()
    # Changing a training row's rating leaves that row's own features unchanged.
    X, _ = model.training_features(train)
    row = train.index[5]
    poisoned = train.copy()
    poisoned.loc[row, "rating"] = 1.0 if train.loc[row, "rating"] > 3 else 5.0
    X2, _ = model.training_features(poisoned)
    pd.testing.assert_series_equal(X.loc[row], X2.loc[row])
    assert not X.drop(index=row).equals(X2.drop(index=row))  # ...while other rows do see it


def test_held_out_and_test_rows_never_reach_the_model_that_predicts_them(comp_env):
    """Poisoning: the held-out fold's and the test rows' ratings (which the model must never see)
    are replaced by extreme values; a model fitted on the training part predicts both exactly as before."""
    comp, folds, _ = comp_env
    train, held_out = comp.train[folds != 0], comp.train[folds == 0]
    side = side_info(comp)
    ref = make_model("gbm", side, FAST).fit(train)
    before = ref.predict(held_out), ref.predict(comp.test)
    flipped = np.where(folds == 0, 6.0 - comp.train["rating"], comp.train["rating"])  # held-out ratings reversed
    again = make_model("gbm", side, FAST).fit(comp.train.assign(rating=flipped)[folds != 0])
    np.testing.assert_array_equal(again.predict(held_out.assign(rating=1.0)), before[0])
    np.testing.assert_array_equal(again.predict(comp.test.assign(rating=5.0)), before[1])
    assert set(ref.provenance_["outer_fit_ids"]) == set(train["id"])
    assert not set(ref.provenance_["early_stop_ids"]) & set(held_out["id"])  # early stopping never looks at it


def test_refitting_gives_identical_features_and_predictions(comp_env):
    """Determinism of refitting, with no cache: every dot model is fitted afresh both times."""
    comp, folds, _ = comp_env
    train, val = comp.train[folds != 1], comp.train[folds == 1]
    a = make_model("gbm", side_info(comp), FAST)
    b = make_model("gbm", side_info(comp), FAST)
    assert a.cache is None and b.cache is None
    a._side_vocab()
    b._side_vocab()
    fa, _ = a.training_features(train)
    fb, _ = b.training_features(train.copy())
    pd.testing.assert_frame_equal(fa, fb)
    assert {"dot_pred", "user_bias", "item_bias", "u0", "i0", "user_count", "item_mean", "genre_affinity"} <= set(fa)
    np.testing.assert_array_equal(a.fit(train).predict(val), b.fit(train).predict(val))


def test_aggregates_use_only_the_fit_rows():
    fit = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [7, 8, 7], "rating": [4.0, 2.0, 5.0]})
    rows = pd.DataFrame({"user_id": [1, 3], "item_id": [7, 9]})
    a = RatingStats(fit).lookup(rows)
    assert a["user_count"].tolist() == [2, 0] and a["user_mean"].iloc[0] == 3.0 and np.isnan(a["user_mean"].iloc[1])
    assert a["item_count"].tolist() == [2, 0] and a["item_mean"].iloc[0] == 4.5
    assert a["item_popularity"].iloc[0] == pytest.approx(2 / 3)


def test_gbm_learns_and_round_trips(gbm_setup, tmp_path):
    comp, folds, model = gbm_setup
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    p = model.fit(fit).predict(val)
    assert rmse(val["rating"], p) < rmse(val["rating"], np.full(len(val), fit["rating"].mean())) - 0.05
    model.save(tmp_path / "m" / "fold0.txt")
    again = GBMModel.load(tmp_path / "m" / "fold0.txt", side_info(comp))
    np.testing.assert_allclose(again.predict(val), p)
    assert model.importance().index.tolist() == model.booster.feature_name()


def test_predicted_rows_get_their_sittings_from_the_fit_rows_times(gbm_setup, tmp_path):
    """The fit rows a model keeps hold their timestamps, so the rows it predicts, fitted or loaded, get the
    sittings by the clock as the training rows did (each user here rates in one sitting, 100 s apart)."""
    from dataclasses import replace

    from cfblend.models.timeline import RatingTimeline, genre_masks

    comp, folds, _ = gbm_setup
    both = pd.concat([comp.train.assign(part=0), comp.test.assign(part=1)], ignore_index=True)
    both = both.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    both["timestamp"] = 10**9 + both["user_id"] * 10**6 + both.groupby("user_id").cumcount() * 100
    both = both.sort_index()
    clocked = replace(comp, train=comp.train.assign(timestamp=both.loc[both["part"] == 0, "timestamp"].to_numpy()),
                      test=comp.test.assign(timestamp=both.loc[both["part"] == 1, "timestamp"].to_numpy()))
    model = make_model("gbm", side_info(clocked), FAST)
    model.cache = ModelCache(tmp_path / "cache")
    fit, val = clocked.train[folds != 0], clocked.train[folds == 0]
    p = model.fit(fit).predict(val)
    model.save(tmp_path / "m" / "fold0.txt")
    again = GBMModel.load(tmp_path / "m" / "fold0.txt", side_info(clocked))
    np.testing.assert_allclose(again.predict(val), p)
    sits = ["nb_sit0", "nb_sit60", "nb_sit300"]
    want = RatingTimeline(fit, model.ranks_, 10, genres=genre_masks(clocked.items)).lookup(val)[sits]
    assert want["nb_sit300"].notna().mean() > 0.5
    for m in (model, again):
        got = m.features(val, m.dot_, m.fit_stats(m.fit_rows_))[sits]
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))


def test_outer_dot_model_is_shared_with_the_dot_runner(comp_env, tmp_path):
    from cfblend.models import model_config
    from cfblend.runs import train_cv

    comp, folds, paths = comp_env
    dot = {"epochs": 3, "batch_size": 256, "device": "cpu"}
    train_cv("dot", comp, folds, paths, overrides=dot)
    cached = {p.name for p in (paths.output / "cache" / "DotModel").iterdir()}
    assert len(cached) == 3  # one per fold
    model = make_model("gbm", side_info(comp), {**FAST, "dot": dot})
    model.cache = ModelCache(paths.output / "cache")
    assert model_config("dot", dot).epochs == 3
    model.fit(comp.train[folds != 0])
    after = {p.name for p in (paths.output / "cache" / "DotModel").iterdir()}
    assert len(after - cached) == 3  # only the inner models were fitted; the outer one came from the cache


def test_max_rows_fits_on_a_sample_whose_features_still_come_from_every_row(gbm_setup):
    """Large-data setting: the GBM fits on `max_rows` rows drawn at random; each inner fold's dot model and
    aggregates are still fitted on every row of the other inner folds; chunked prediction is the whole one."""
    comp, folds, model = gbm_setup
    train, val = comp.train[folds != 0], comp.train[folds == 0]
    n = len(train) // 3
    small = make_model("gbm", model.side, {**FAST, "max_rows": n, "predict_chunk": 97})
    small.cache = model.cache
    small.fit(train)
    assert small.provenance_["sampled"].sum() == n
    featurized = np.concatenate([s["featurized_ids"] for s in small.provenance_["inner"]])
    assert len(featurized) == n and set(featurized) == set(train["id"].to_numpy()[small.provenance_["sampled"]])
    for j, s in enumerate(small.provenance_["inner"]):  # fitted on all rows of the other inner folds
        assert set(s["fit_ids"]) == set(train["id"].to_numpy()[small.provenance_["inner_fold"] != j])
    assert small.booster.num_trees() >= 1
    calls = []
    small.fit_stats = lambda rows: calls.append(len(rows)) or GBMModel.fit_stats(small, rows)
    whole = small.predict(val)
    assert calls == [len(train)]  # the fit rows' statistics are computed once, not once per chunk
    small.config.predict_chunk = len(val) + 1
    np.testing.assert_allclose(small.predict(val), whole, rtol=0, atol=1e-12)
    assert calls == [len(train)]  # nor once per prediction: they belong to the fitted model
    part = train.iloc[: len(train) // 2]
    small.fit(part)  # a refit forgets the old fit rows' statistics
    fresh = make_model("gbm", model.side, {**FAST, "max_rows": n, "predict_chunk": 97})
    fresh.cache = model.cache
    np.testing.assert_allclose(small.predict(val), fresh.fit(part).predict(val), rtol=0, atol=1e-12)


def test_timeline_features_come_from_the_public_pairs_only(gbm_setup):
    """The gbm's timeline columns are the table's values for public pairs (train and test alike, the same with
    any ratings) and NaN for a pair that is not public; off, there are no such columns."""
    comp, folds, model = gbm_setup
    model._side_vocab()
    train = comp.train[folds != 0]
    rows = pd.concat([comp.train.iloc[:5], comp.test.iloc[:5]])
    X = model.features(rows, model._dot(train), model.fit_stats(train))
    cols = ["tl_pos", "tl_same_day", "tl_since_first", "tl_gap_prev", "tl_gap_next"]
    keys = list(zip(rows["user_id"], rows["item_id"], strict=True))
    np.testing.assert_array_equal(X[cols].to_numpy(), model.timeline_.loc[keys, cols].to_numpy())
    assert X["tl_same_day"].notna().all()
    stranger = rows.iloc[:1].assign(item_id=-7)  # not a public pair
    assert X.columns.tolist() == model.features(stranger, model._dot(train), model.fit_stats(train)).columns.tolist()
    assert model.features(stranger, model._dot(train), model.fit_stats(train))[cols].isna().all().all()
    poisoned = train.assign(rating=6.0 - train["rating"])
    X2 = model.features(rows, model._dot(train), model.fit_stats(poisoned))
    pd.testing.assert_frame_equal(X[cols], X2[cols])
    off = make_model("gbm", model.side, {**FAST, "timeline": False})
    off._side_vocab()
    assert not set(cols) & set(off.features(rows, model._dot(train), off.fit_stats(train)).columns)


def test_neighbour_features_see_other_rows_ratings_only(gbm_setup):
    """A row's neighbour features move when a neighbouring fit row's rating changes, never with its own; with
    `neighbours=0` there are none."""
    comp, folds, model = gbm_setup
    model._side_vocab()
    train = comp.train[folds != 0]
    rows = comp.test.iloc[:40]
    dot = model._dot(train)
    X = model.features(rows, dot, model.fit_stats(train))
    cols = [c for c in X if c.startswith("nb_")]
    assert cols == ["nb_prev", "nb_next", "nb_mean3", "nb_mean10", "nb_mean30", "nb_count", "nb_genre10", "nb_sit0",
                    "nb_sit60", "nb_sit300"]
    assert X["nb_mean30"].notna().mean() > 0.9
    assert X["nb_genre10"].notna().mean() > 0.5  # the sittings by the clock: tests/test_timeline.py
    from cfblend.models.timeline import RatingTimeline, genre_masks

    want = RatingTimeline(train, model.ranks_, 10, genres=genre_masks(comp.items)).lookup(rows)[cols]
    pd.testing.assert_frame_equal(X[cols], want)  # row by row
    # the test pair's nearest earlier fit row of its user, found the long way
    row = rows.iloc[0]
    ranks = model.ranks_
    mine = ranks.of([row["user_id"]], [row["item_id"]])[0]
    theirs = train[train["user_id"] == row["user_id"]]
    theirs = theirs.assign(rank=ranks.of(theirs["user_id"], theirs["item_id"]))
    earlier = theirs[theirs["rank"] < mine].sort_values("rank")
    assert len(earlier)
    flipped = train.copy()
    flipped.loc[earlier.index[-1], "rating"] = 6.0 - flipped.loc[earlier.index[-1], "rating"] + 0.5
    X2 = model.features(rows, dot, model.fit_stats(flipped))
    assert X2["nb_prev"].iloc[0] != X["nb_prev"].iloc[0]
    assert abs(X2["nb_prev"].iloc[0] - X["nb_prev"].iloc[0]) > 0.4  # the neighbour's own change, not a bias shift
    moved = [*cols, "user_mean", "user_std", "item_mean", "item_std", "genre_affinity"]  # the flipped rating's
    pd.testing.assert_frame_equal(X.drop(columns=moved), X2.drop(columns=moved))  # the rest come from no rating
    off = make_model("gbm", model.side, {**FAST, "neighbours": 0})
    off._side_vocab()
    assert not [c for c in off.features(rows, dot, off.fit_stats(train)) if c.startswith("nb_")]


def test_inner_folds_hold_out_whole_users_as_often_as_the_rows_to_predict_are_of_unseen_ones(gbm_setup):
    """With every user of the rows to predict seen in training, the inner folds are the plain random ones; with
    public pairs of as many unseen users' rows as the outer rows to predict, about half of the training rows are
    of users held out whole from their inner fold's dot model and aggregates, as those rows' users will be."""
    import copy

    from cfblend.competition.folds import unseen_share_to_predict

    comp, folds, model = gbm_setup
    train = comp.train[folds != 0]
    model._side_vocab()
    _, prov = model.training_features(train)
    plain = np.empty(len(train), dtype=np.int64)
    plain[np.random.default_rng(model.config.seed).permutation(len(train))] = np.arange(len(train)) % 3
    assert unseen_share_to_predict(train, model.side.pairs) <= 0.01 and prov["inner_fold"].tolist() == plain.tolist()

    side = copy.copy(model.side)
    outside = len(side.pairs) - len(train)
    new = side.pairs.iloc[:outside].assign(user_id=10**6 + np.arange(outside) % 50)  # 50 users never seen
    side.pairs = pd.concat([side.pairs, new], ignore_index=True)
    assert unseen_share_to_predict(train, side.pairs) == pytest.approx(0.5)
    cold = make_model("gbm", side, FAST)
    cold.cache = model.cache
    cold._side_vocab()
    _, prov = cold.training_features(train)
    inner, users = prov["inner_fold"], train["user_id"].to_numpy()
    unseen = np.array([not (users[inner != j] == u).any() for j, u in zip(inner, users, strict=True)])
    assert abs(unseen.mean() - 0.5) < 0.02
    for j, s in enumerate(prov["inner"]):  # each inner fold's feature models still see all the other folds' rows
        assert set(s["fit_ids"]) == set(train["id"].to_numpy()[inner != j])
