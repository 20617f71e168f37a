"""The Bayesian FM member: learns, is seeded, saves and loads, and handles unseen users and items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("myfm", reason="myfm not installed (pip install -r requirements.txt)")

from cfblend.competition.scoring import rmse
from cfblend.models import make_model
from cfblend.models.bfm import BFMModel
from cfblend.runs import side_info

FAST = {"rank": 4, "sweeps": 30, "burn_in": 5}
OWN_CUTPOINTS = {"user_id": 16, "item_id": 12}  # about half the users (items) of a fold have this many rows


@pytest.mark.parametrize("name, chains", [("bfm", 1), ("bfm_op", 1), ("bfm", 2), ("bfm_op", 2), ("bfm_opu", 1),
                                         ("bfm_opu", 2), ("bfm_opi", 1)])
def test_bfm_learns_is_seeded_and_round_trips(comp_env, tmp_path, name, chains):
    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    side = side_info(comp)
    config = {**FAST, "chains": chains, "saved_samples": 25 * chains}
    key = {"bfm_opu": "user_id", "bfm_opi": "item_id"}.get(name)
    if key:  # about half the users (items) have this many training rows here
        config[f"{key[:-3]}_cutpoints"] = OWN_CUTPOINTS[key]
    model = make_model(name, side, config).fit(fit)
    if key:  # a set of cutpoints per heavy user (item), and the shared set for the others
        assert 0 < len(model.cut_ids_) < fit[key].nunique() and model.pooled_
        assert len(model.fms_[0].predictor_.samples[0].cutpoints) == len(model.cut_ids_) + 1
    p = model.predict(val)
    assert np.isfinite(p).all() and (p >= 1).all() and (p <= 5).all()
    assert rmse(val["rating"], p) < rmse(val["rating"], np.full(len(val), fit["rating"].mean())) - 0.05
    np.testing.assert_array_equal(p, make_model(name, side, config).fit(fit).predict(val))  # same seed, same numbers
    if chains == 2:  # two chains are not one chain twice
        assert not np.array_equal(p, make_model(name, side, FAST).fit(fit).predict(val))
    model.save(tmp_path / "m.npz")
    again = BFMModel.load(tmp_path / "m.npz", side)  # every kept sample saved: the same predictions
    np.testing.assert_allclose(again.predict(val), p, atol=1e-5)


@pytest.mark.parametrize("name, key, other", [("bfm_opu", "user_id", "item_id"), ("bfm_opi", "item_id", "user_id")])
def test_own_cutpoints_learn_how_each_user_or_item_reads_the_scale(comp_env, name, key, other):
    """Half the users (`bfm_opu`; items for `bfm_opi`) are rated 1 or 5 only, the others on the full scale,
    from the same latent score: shared cutpoints cannot say both, cutpoints per user (item) can; each row is
    predicted under its user's (item's) set (by hand: P(level <= l) = Phi(c_l - score), averaged over the
    samples)."""
    from scipy.special import ndtr

    from cfblend.models.ids import IdIndex

    comp, _, _ = comp_env
    rng = np.random.default_rng(0)
    u, i = np.meshgrid(comp.train["user_id"].unique(), comp.train["item_id"].unique())  # every pair: 60+ rows each
    df = pd.DataFrame({"user_id": u.ravel(), "item_id": i.ravel(),
                       "timestamp": 880_000_000 + rng.integers(0, 10**7, u.size)})
    z = rng.normal(0, 1, df[other].max() + 1)[df[other]] + rng.normal(0, 0.5, len(df))
    polar = df[key].to_numpy() % 2 == 0
    df["rating"] = np.where(polar, np.where(z < 0, 1, 5), np.digitize(z, [-1.5, -0.5, 0.5, 1.5]) + 1).astype(float)
    held = rng.random(len(df)) < 0.2
    fit, val = df[~held], df[held]
    # timeline off: these rows are not the competition's public pairs, whose timeline a few of them would take
    side, config = side_info(comp), {**FAST, "sweeps": 40, "burn_in": 8, "timeline": 0}
    shared = make_model("bfm_op", side, config).fit(fit).predict(val)
    model = make_model(name, side, {**config, f"{key[:-3]}_cutpoints": 10}).fit(fit)
    own = model.predict(val)
    assert len(model.cut_ids_) == fit[key].nunique() and not model.pooled_  # every user (item) has 10 rows
    # users 0.978 against 1.028; items 0.9217 against 0.9245 (the FM's item factors already say much of it)
    assert rmse(val["rating"], own) < rmse(val["rating"], shared) - {"user_id": 0.02, "item_id": 0.002}[key]
    rows = val.head(5)
    X, rel = model._design(rows)
    want = np.zeros(len(rows))
    for s in model.fms_[0].predictor_.samples:
        cut = np.stack(s.cutpoints)[IdIndex(model.cut_ids_, ordered=True)(rows[key])]
        below = ndtr(cut - s.predict_score(X, rel)[:, None])
        want += np.diff(np.column_stack([np.zeros(len(rows)), below, np.ones(len(rows))]), axis=1) @ [1, 2, 3, 4, 5]
    np.testing.assert_allclose(own[:5], want / len(model.fms_[0].predictor_.samples))
    cold = model.predict(rows.assign(**{key: 10**6}))  # an unknown user (item): the mean of the own sets
    assert np.isfinite(cold).all() and (cold >= 1).all() and (cold <= 5).all()


@pytest.mark.parametrize("name", ["bfm", "bfm_op"])
def test_the_compiled_scorer_gives_myfms_own_predictions(comp_env, name):
    """`_predict` scores each sample with `BlockRows`, not myFM's predictor: the same posterior means as myFM's
    `predict` (`predict_proba` @ levels for the ordered probit), over two chains, with real-valued row columns
    (the neighbours) and rows of unknown users and items; the same numbers on one thread or two."""
    from cfblend.models.fm_predict import BlockRows

    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    model = make_model(name, side_info(comp), {**FAST, "chains": 2, "neighbours": 2}).fit(fit)
    rows = pd.concat([val, val.head(7).assign(user_id=10**6), val.tail(5).assign(item_id=10**6)])
    X, rel = model._design(rows)
    assert X.nnz > 2 * len(rows) and not np.isin(X.data, [0.0, 1.0]).all()  # real-valued neighbour columns
    if name == "bfm":
        want = np.mean([fm.predict(X, rel) for fm in model.fms_], axis=0)
    else:
        want = np.mean([fm.predict_proba(X, rel) for fm in model.fms_], axis=0) @ model.levels_
    got = model._predict(rows)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    model.config.workers = 2
    np.testing.assert_array_equal(model._predict(rows), got)
    sample = model.fms_[0].predictor_.samples[-1]
    scorer = BlockRows(model._row_part(rows), model._block_rows(rows))
    np.testing.assert_allclose(scorer.scores(sample.w0, np.asarray(sample.w), np.asarray(sample.V)),
                               sample.predict_score(X, rel), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="features"):
        scorer.scores(sample.w0, np.asarray(sample.w)[1:], np.asarray(sample.V)[1:])


def test_the_expected_level_under_cutpoints():
    """A score halfway between the middle two of three cutpoints is level 2.5 on average for levels 1..4 by
    symmetry; far below the first cutpoint, level 1; each row reads its own set; a set of the wrong size is
    refused."""
    from cfblend.models.fm_predict import add_expected_level

    levels = np.array([1.0, 2.0, 3.0, 4.0])
    C = np.array([[-1.0, 0.0, 1.0], [9.0, 10.0, 11.0]])
    total = np.ones(3)
    add_expected_level(total, np.array([0.0, -50.0, 10.0]), C, np.array([0, 0, 1]), levels)
    np.testing.assert_allclose(total, 1 + np.array([2.5, 1.0, 2.5]), atol=1e-12)
    with pytest.raises(ValueError, match="cutpoints"):
        add_expected_level(total, np.zeros(3), C[:, :2], np.zeros(3, np.int64), levels)


def test_cutpoints_need_the_ordered_probit_and_one_owner():
    with pytest.raises(ValueError, match="ordered_probit"):
        make_model("bfm", None, {"user_cutpoints": 5})
    with pytest.raises(ValueError, match="one set of cutpoints"):
        make_model("bfm_opu", None, {"item_cutpoints": 5})


def test_unseen_users_and_items_are_predicted_from_what_is_known(comp_env):
    comp, folds, _ = comp_env
    fit = comp.train[folds != 0]
    model = make_model("bfm", side_info(comp), FAST).fit(fit)
    u, i, t = fit["user_id"].iloc[0], fit["item_id"].iloc[0], fit["timestamp"].iloc[0]
    rows = pd.DataFrame({"user_id": [10**6, u, 10**6], "item_id": [i, 10**6, 10**6 + 1], "timestamp": [t] * 3})
    p = model.predict(rows)
    assert np.isfinite(p).all() and (p >= 1).all() and (p <= 5).all()


def test_implicit_sets_come_from_public_pairs_never_from_ratings(comp_env):
    """The blocks depend on which pairs were rated, not on any rating: scrambling the ratings of the
    training rows leaves every feature as it was."""
    comp, folds, _ = comp_env
    fit = comp.train[folds != 0]
    side = side_info(comp)
    a = make_model("bfm", side, FAST)
    a._blocks(fit)
    scrambled = fit.assign(rating=np.random.default_rng(0).permutation(fit["rating"].to_numpy()))
    b = make_model("bfm", side, FAST)
    b._blocks(scrambled)
    assert (a.user_block_ != b.user_block_).nnz == 0 and (a.item_block_ != b.item_block_).nnz == 0
    # The sets hold the test pairs (and the held-out fold's) too: user u's implicit row has one entry
    # per item u rated anywhere, not only in the rows the model is fitted on.
    u = int(comp.test["user_id"].iloc[0])
    no_implicit = make_model("bfm", side, {**FAST, "implicit": False})
    no_implicit._blocks(fit)
    extra = a.user_block_[a.users_([u])].nnz - no_implicit.user_block_[no_implicit.users_([u])].nnz
    everywhere = pd.concat([comp.train, comp.test]).query("user_id == @u")["item_id"].nunique()
    assert extra == everywhere > fit.query("user_id == @u")["item_id"].nunique()
    test_only = comp.test["user_id"][~comp.test["user_id"].isin(fit["user_id"])]
    if len(test_only):  # a user seen only in test still has an implicit row
        assert a.user_block_[a.users_(test_only.iloc[:1])].nnz > 0


def test_items_without_genres_get_an_empty_genre_row(comp_env):
    """ML-25M's "(no genres listed)" loads as an empty list; such an item (and one missing from the side
    table) has no genre entries, and the model still fits."""
    from dataclasses import replace

    comp, folds, _ = comp_env
    fit = comp.train[folds != 0]
    side = side_info(comp)
    items = side.items.copy()
    bare = fit["item_id"].iloc[0]
    items["genres"] = [[] if i == bare else g for i, g in zip(items["item_id"], items["genres"], strict=True)]
    items = items[items["item_id"] != fit["item_id"].iloc[-1]]  # and one item the side table lacks
    model = make_model("bfm", replace(side, items=items), FAST).fit(fit)
    first = model.groups_[model.row_groups_ + model.n_user_groups_]  # the item block: item ids, then the genres
    block = model.item_block_[:, first:first + len({g for gs in items["genres"] for g in gs})]
    for raw in (bare, fit["item_id"].iloc[-1]):
        assert block[model.items_([raw])[0]].nnz == 0
    assert block.nnz > 0
    assert np.isfinite(model.predict(fit.head(50))).all()


def test_each_row_has_its_user_day_when_that_pair_was_seen_in_training(comp_env):
    """The user-day feature: one column per (user, UTC day) of the training rows, one 1 in a row of that pair,
    none for a pair never seen in training (another day of a known user, or an unknown user), none at all
    with `user_day` off; and the item factors are still read off the item-id columns."""
    comp, folds, _ = comp_env
    fit = comp.train[folds != 0]
    model = make_model("bfm", side_info(comp), FAST).fit(fit)
    pairs = {(u, t // 86400) for u, t in zip(fit["user_id"], fit["timestamp"], strict=True)}
    assert len(model.user_days_) == len(pairs)
    n_date = len(model.date_buckets_)
    rows = pd.concat([fit.head(50), fit.head(1).assign(timestamp=fit["timestamp"].max() + 400 * 86400),
                      fit.head(1).assign(user_id=-5)], ignore_index=True)
    X, _ = model._design(rows)
    ud = X[:, n_date:n_date + len(model.user_days_)].toarray()
    assert (ud[:50].sum(1) == 1).all() and ud[50:].sum() == 0
    same = [(a, b) for a in range(50) for b in range(a) if (rows.user_id[a], rows.timestamp[a] // 86400)
            == (rows.user_id[b], rows.timestamp[b] // 86400)]
    for a, b in same:  # the same pair, the same column; different pairs, different columns
        assert ud[a].argmax() == ud[b].argmax()
    assert len({ud[r].argmax() for r in range(50)}) == len({(rows.user_id[r], rows.timestamp[r] // 86400)
                                                            for r in range(50)})
    off = make_model("bfm", side_info(comp), {**FAST, "user_day": False, "timeline": 0}).fit(fit)
    assert off._design(rows)[0].shape[1] == n_date
    ids, factors = model.item_factors()
    row_features = n_date + len(model.user_days_) + model.timeline_width_
    cols = slice(row_features + model.user_block_.shape[1], None)  # after the row features and the user block
    assert len(ids) == len(fit["item_id"].unique()) and factors[0].shape == (len(ids), FAST["rank"])
    np.testing.assert_array_equal(factors[0], np.asarray(model.fms_[0].predictor_.samples[0].V)[cols][:len(ids)])


def test_each_public_pair_has_its_place_in_its_users_timeline(comp_env, tmp_path):
    """The timeline feature: a train or test pair's bucket is its rank among its user's public pairs by time
    (ties by item id) times `timeline` over their count, by hand; a pair that is not public has none; the
    pairs it is read from carry no rating; a loaded model rebuilds the same buckets, and refuses pairs without
    timestamps."""
    from dataclasses import replace

    comp, folds, _ = comp_env
    side = side_info(comp)
    assert "rating" not in side.pairs and "timestamp" in side.pairs
    fit = comp.train[folds != 0]
    model = make_model("bfm", side, {**FAST, "timeline": 4}).fit(fit)
    public = side.pairs.sort_values(["user_id", "timestamp", "item_id"])
    rank = public.groupby("user_id").cumcount()
    want = (4 * rank // public.groupby("user_id")["item_id"].transform("size")).loc[public.index.sort_values()]
    rows = pd.concat([comp.train, comp.test], ignore_index=True)  # side.pairs' own order
    X, _ = model._design(rows)
    n_row = len(model.date_buckets_) + len(model.user_days_)
    got = X[:, n_row:n_row + 4].toarray()
    assert (got.sum(1) == 1).all()
    np.testing.assert_array_equal(got.argmax(1), want.to_numpy())
    assert set(want) == {0, 1, 2, 3}
    seen = set(zip(side.pairs["user_id"], side.pairs["item_id"], strict=True))
    u, i = next((u, i) for u in comp.train["user_id"].unique() for i in comp.train["item_id"].unique()
                if (u, i) not in seen)
    lone = pd.DataFrame({"user_id": [u], "item_id": [i], "timestamp": [rows["timestamp"].iloc[0]]})
    assert model._design(lone)[0][:, n_row:n_row + 4].nnz == 0
    model.save(tmp_path / "m.npz")
    again = BFMModel.load(tmp_path / "m.npz", side)
    np.testing.assert_array_equal(again._timeline(rows), model._timeline(rows))
    with pytest.raises(ValueError, match=r"m\.npz: fitted with 4 timeline buckets"):
        BFMModel.load(tmp_path / "m.npz", replace(side, pairs=side.pairs[["user_id", "item_id"]]))
    assert make_model("bfm", side, {**FAST, "timeline": 0}).fit(fit)._design(rows)[0].shape[1] == n_row


def test_neighbour_columns_are_the_training_ratings_next_to_the_row(comp_env, tmp_path):
    """`neighbours`: a predicted row's columns are `RatingTimeline`'s residuals of the training ratings around it
    (0 where none); a training row's come from the other inner folds' rows alone, so its own rating never
    reaches them; a loaded model predicts the same from the training ratings it kept, and refuses pairs
    without timestamps; a file from before the columns loads."""
    from dataclasses import replace

    from cfblend.models.bfm import NEIGHBOUR_FOLDS
    from cfblend.models.timeline import RatingTimeline, timeline_ranks

    comp, folds, _ = comp_env
    side = side_info(comp)
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    model = make_model("bfm", side, {**FAST, "neighbours": 2}).fit(fit)
    n_row = len(model.date_buckets_) + len(model.user_days_) + model.timeline_width_
    want = RatingTimeline(fit, timeline_ranks(side.pairs), 2)
    for rows in (val, comp.test):
        got = model._design(rows)[0][:, n_row:n_row + 5].toarray()
        np.testing.assert_allclose(got, np.nan_to_num(want.lookup(rows).iloc[:, :5].to_numpy()))
        assert (got != 0).any(axis=1).mean() > 0.9
    mine = model._design(fit, fitting=True)[0][:, n_row:n_row + 5].toarray()
    assert (mine != 0).any(axis=1).mean() > 0.9
    assert not np.allclose(mine, model._design(fit)[0][:, n_row:n_row + 5].toarray())  # not the in-sample columns
    for k in range(NEIGHBOUR_FOLDS):  # any one training row's rating changed: its own columns stay exactly
        row = fit.index[k * 7]
        own = fit.assign(rating=fit["rating"].where(fit.index != row, 1.0 if fit.loc[row, "rating"] > 3 else 5.0))
        theirs = model._design(own, fitting=True)[0][:, n_row:n_row + 5].toarray()
        at = fit.index.get_loc(row)
        np.testing.assert_array_equal(theirs[at], mine[at])
        assert not np.array_equal(np.delete(theirs, at, 0), np.delete(mine, at, 0))  # other rows' columns move
    p = model.predict(val)
    assert not np.allclose(p, make_model("bfm", side, FAST).fit(fit).predict(val))
    model.save(tmp_path / "m.npz")
    np.testing.assert_allclose(BFMModel.load(tmp_path / "m.npz", side).predict(val), p, atol=1e-5)
    with pytest.raises(ValueError, match=r"m\.npz: fitted with neighbour columns"):
        BFMModel.load(tmp_path / "m.npz", replace(side, pairs=side.pairs[["user_id", "item_id"]]))
    plain = make_model("bfm", side, FAST).fit(fit)  # saved as before the neighbour columns: 3 row groups
    plain.save(tmp_path / "plain.npz")
    z = dict(np.load(tmp_path / "plain.npz"))
    assert z["groups"][3] == 0
    z["groups"] = np.delete(z["groups"], 3)
    del z["row_groups"]
    np.savez(tmp_path / "old.npz", **z)
    old = BFMModel.load(tmp_path / "old.npz", side)
    np.testing.assert_allclose(old.predict(val), plain.predict(val), atol=1e-5)
    np.testing.assert_allclose(old.item_factors()[1][0], plain.item_factors()[1][0], atol=1e-6)  # float32 on disk


def test_training_rows_neighbour_columns_hold_out_whole_users_as_the_rows_to_predict_are_unseen(comp_env):
    """The training rows' neighbour columns come from `inner_folds`: with every user of the rows to predict seen,
    nearly every training row has a rating of its user in another inner fold; with public pairs of as many
    unseen users' rows as the rows to predict, about half the training rows have none (their user held out
    whole), as the rows of an unseen user will have none."""
    import copy

    from cfblend.competition.folds import unseen_share_to_predict

    comp, folds, _ = comp_env
    fit = comp.train[folds != 0]
    side = side_info(comp)

    def no_neighbour_share(side) -> float:
        model = make_model("bfm", side, {**FAST, "neighbours": 2})
        model._blocks(fit)
        n_row = len(model.date_buckets_) + len(model.user_days_) + model.timeline_width_
        cols = model._design(fit, fitting=True)[0][:, n_row:n_row + 5].toarray()
        return float((cols == 0).all(axis=1).mean())

    assert unseen_share_to_predict(fit, side.pairs) <= 0.01 and no_neighbour_share(side) < 0.05
    cold = copy.copy(side)
    outside = len(side.pairs) - len(fit)
    new = side.pairs.iloc[:outside].assign(user_id=10**6 + np.arange(outside) % 50)  # 50 users never seen
    cold.pairs = pd.concat([side.pairs, new], ignore_index=True)
    assert unseen_share_to_predict(fit, cold.pairs) == pytest.approx(0.5)
    assert abs(no_neighbour_share(cold) - 0.5) < 0.05


@pytest.mark.parametrize("name", ["bfm", "bfm_opu"])
def test_a_traced_chain_gives_what_a_fit_of_each_sweep_count_predicts(comp_env, name):
    """`trace_chain`: the posterior mean at sweep n is what a fit of n sweeps predicts (the same draws), to the
    last digit; the last row is the traced model's own prediction; inside the burn-in there is no mean."""
    from cfblend.models.bfm_trace import trace_chain

    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    side = side_info(comp)
    config = {**FAST, **({"user_cutpoints": OWN_CUTPOINTS["user_id"]} if name == "bfm_opu" else {})}
    model = make_model(name, side, config)
    points = trace_chain(model, fit, val, every=5)
    assert [p.sweep for p in points] == [5, 10, 15, 20, 25, 30]
    assert [p.kept for p in points] == [0, 5, 10, 15, 20, 25] and np.isnan(points[0].mean_rmse)
    assert points[-1].mean_rmse == pytest.approx(rmse(val["rating"], model.predict(val)), abs=1e-12)
    for p in points[1:4]:
        short = make_model(name, side, {**config, "sweeps": p.sweep}).fit(fit)
        assert p.mean_rmse == pytest.approx(rmse(val["rating"], short.predict(val)), abs=1e-12)
    assert len({round(p.sample_rmse, 6) for p in points}) == len(points)  # each row its own sample
    if name == "bfm":  # the Gaussian likelihood's noise precision is sampled; the probit's is 1
        assert len({p.alpha for p in points}) > 1
    with pytest.raises(ValueError, match="chains=2"):
        trace_chain(make_model(name, side, {**config, "chains": 2}), fit, val)


def test_the_monte_carlo_limit_is_recovered_from_a_curve():
    from cfblend.models.bfm_trace import mc_limit

    kept = np.arange(20, 200, 10)
    b, v = mc_limit(kept, 0.67 + 0.5 / kept)
    assert b == pytest.approx(0.67) and v == pytest.approx(0.5)
    with pytest.raises(ValueError, match="two or more"):
        mc_limit(np.array([50, 50]), np.array([0.7, 0.7]))
