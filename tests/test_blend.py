"""The blend: weights, honest CV, alignment checks, and a checked submission."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfblend.competition.scoring import rmse
from cfblend.ensemble import BlendConfig, load_predictions, run_blend
from cfblend.ensemble.blend import fit_hill, fit_linear
from cfblend.io import read_json
from cfblend.runs import train_cv

FAST = {"epochs": 3, "batch_size": 256, "device": "cpu"}


def test_linear_weights_are_non_negative_with_free_intercept():
    rng = np.random.default_rng(0)
    y = rng.normal(3.5, 1, 2000)
    good, noisy, anti = y + rng.normal(0, 0.3, 2000), y + rng.normal(0, 0.8, 2000), -y + rng.normal(0, 0.1, 2000)
    w, b = fit_linear(np.column_stack([good, noisy, anti]), y)
    assert (w >= 0).all() and w[2] == 0 and w[0] > w[1]
    biased = np.column_stack([good - 1.0])  # predicts a star too low: the intercept corrects it
    w, b = fit_linear(biased, y)
    assert b > 0.9 and (biased @ w + b).mean() == pytest.approx(y.mean(), abs=1e-6)


def test_hill_climbing_picks_the_best_model_with_replacement():
    rng = np.random.default_rng(1)
    y = rng.normal(3.5, 1, 1000)
    X = np.column_stack([y + rng.normal(0, 0.2, 1000), y + rng.normal(0, 2.0, 1000)])
    w, b = fit_hill(X, y, steps=20)
    assert w.sum() == pytest.approx(1.0) and w[0] > 0.9 and b == 0.0


def test_blend_is_honest_and_writes_a_checked_submission(comp_env):
    comp, folds, paths = comp_env
    for m in ("dot", "biases", "global_mean"):
        train_cv(m, comp, folds, paths, overrides=FAST if m == "dot" else None)
    s = run_blend(comp, paths, BlendConfig(method="linear"))
    assert set(s["weights"]) == {"dot", "biases", "global_mean"}
    X, _, f = load_predictions(paths, comp, list(s["weights"]))
    y = comp.train["rating"].to_numpy(float)
    # Honest: fold 0's blend predictions come from weights fit without fold 0.
    w, b = fit_linear(X[f != 0], y[f != 0])
    oof = pd.read_parquet(paths.oof("blend"))
    np.testing.assert_allclose(oof["pred"][f == 0], np.clip(X[f == 0] @ w + b, 1, 5))
    assert s["oof_rmse"] == pytest.approx(rmse(y, oof["pred"]))
    sub = pd.read_csv(paths.output / "submission.csv")
    sample = pd.read_csv(paths.competition(comp.name) / "sample_submission.csv")
    assert list(sub.columns) == ["id", "rating"] and sub["id"].tolist() == sample["id"].tolist()
    assert sub["rating"].between(1, 5).all() and not sub["rating"].isna().any()
    assert read_json(paths.scores("blend"))["method"] == "linear"


def test_auto_uses_the_stacker_only_when_it_wins_honestly(comp_env):
    comp, folds, paths = comp_env
    for m in ("dot", "biases"):
        train_cv(m, comp, folds, paths, overrides=FAST if m == "dot" else None)
    s = run_blend(comp, paths, BlendConfig(method="auto"))
    assert s["method"] == min(s["cv_by_method"], key=s["cv_by_method"].get)
    assert s["cv_rmse_mean"] == pytest.approx(s["cv_by_method"][s["method"]])


def test_missing_or_misaligned_predictions_are_clear_errors(comp_env):
    comp, folds, paths = comp_env
    with pytest.raises(FileNotFoundError, match=r"oof/dot\.parquet missing"):
        load_predictions(paths, comp, ["dot"])
    train_cv("biases", comp, folds, paths)
    test = pd.read_parquet(paths.test("biases"))
    test.iloc[:-1].to_parquet(paths.test("biases"))
    with pytest.raises(ValueError, match=r"test/biases\.parquet is not aligned"):
        load_predictions(paths, comp, ["biases"])


def test_constant_predictions_are_left_out_of_the_blend(comp_env, monkeypatch):
    import cfblend.ensemble.run

    comp, folds, paths = comp_env
    train_cv("biases", comp, folds, paths)
    train_cv("global_mean", comp, folds, paths)  # constant within a fold, near-constant across folds
    # 1,200 synthetic rows: the fold means differ by more than on real data, so widen the threshold
    monkeypatch.setattr(cfblend.ensemble.run, "MIN_STD", 0.05)
    assert pd.read_parquet(paths.oof("global_mean"))["pred"].std() < 0.05 < pd.read_parquet(
        paths.oof("biases"))["pred"].std()
    assert set(run_blend(comp, paths, BlendConfig(method="linear"))["weights"]) == {"biases"}
    s = run_blend(comp, paths, BlendConfig(models=["biases", "global_mean"], method="fwls"))
    assert set(s["weights"]) == {"biases"}


def _synthetic(n=3000, k=5, seed=0, regime=False):
    """Two predictors of y; with `regime`, the first is good where meta-feature 1 is high, the second elsewhere."""
    rng = np.random.default_rng(seed)
    y = rng.normal(3.5, 1.0, n)
    M = np.column_stack([np.ones(n), rng.uniform(0, 5, n), rng.uniform(0, 5, n)])
    high = M[:, 1] > 2.5
    if regime:
        a = y + rng.normal(0, np.where(high, 0.2, 1.5), n)
        b = y + rng.normal(0, np.where(high, 1.5, 0.2), n)
    else:
        a, b = y + rng.normal(0, 0.4, n), y + rng.normal(0, 0.9, n)
    folds = np.arange(n) % k
    return np.column_stack([a, b]), y, folds, M


@pytest.mark.parametrize("method", ["linear", "hill", "fwls", "stack"])
def test_every_fold_of_every_method_is_predicted_by_weights_fit_without_it(method):
    from cfblend.ensemble.blend import Blender, blend

    X, y, folds, M = _synthetic(regime=True)
    T, MT = X[:500] + 0.01, M[:500]
    cfg = BlendConfig(method=method)
    res = blend(X, T, y, folds, M, MT, cfg, (1.0, 5.0))
    for k in range(5):
        b = Blender.fit(method, X[folds != k], M[folds != k], y[folds != k], cfg)
        np.testing.assert_allclose(res.oof[folds == k], np.clip(b.predict(X[folds == k], M[folds == k]), 1, 5))
        assert res.fold_rmse[k] == pytest.approx(rmse(y[folds == k], res.oof[folds == k]))
    final = Blender.fit(method, X, M, y, cfg)  # the test rows get the weights fit on all OOF rows
    np.testing.assert_allclose(res.test, np.clip(final.predict(T, MT), 1, 5))


@pytest.mark.parametrize("regime, winner", [(True, "stack"), (False, "linear")])
def test_auto_picks_the_stacker_only_when_it_wins_honestly(regime, winner):
    from cfblend.ensemble.blend import blend, honest_cv

    X, y, folds, M = _synthetic(n=600 if not regime else 3000, regime=regime, seed=3)
    cfg = BlendConfig(method="auto", ridge=1.0)
    res = blend(X, X[:10], y, folds, M, M[:10], cfg, (-10.0, 20.0))
    own = {m: float(np.mean(honest_cv(m, X, M, y, folds, cfg, (-10.0, 20.0))[1]))
           for m in ("linear", "fwls", "stack", "resid")}
    assert res.method == min(own, key=own.get)
    assert (res.method in ("stack", "resid")) if winner == "stack" else res.method == winner
    assert res.cv_by_method == pytest.approx(own)


def test_stack_mixes_fwls_and_its_trees_and_catches_what_a_linear_stack_cannot():
    """`stack` predicts (1 - stack_mix) x the fwls stack + stack_mix x a LightGBM over predictions and
    meta-features; where the best member depends on a threshold of the meta-features, it beats fwls honestly."""
    from cfblend.ensemble.blend import Blender, blend, fit_stack_gbm

    rng = np.random.default_rng(5)
    n = 4000
    y = rng.normal(3.5, 1.0, n)
    M = np.column_stack([np.ones(n), rng.uniform(0, 5, n), rng.uniform(0, 5, n)])
    cut = (M[:, 1] > 3.5) | (M[:, 2] < 1.0)  # no linear function of the counts follows this
    X = np.column_stack([y + rng.normal(0, np.where(cut, 0.1, 1.2), n), y + rng.normal(0, np.where(cut, 1.2, 0.1), n)])
    folds = np.arange(n) % 5
    cfg = BlendConfig(method="auto")
    st = Blender.fit("stack", X, M, y, cfg)
    fw = Blender.fit("fwls", X, M, y, cfg)
    trees = fit_stack_gbm(X, M, y, cfg).predict(np.column_stack([X, M[:, 1:]]))
    assert cfg.stack_mix == 0.4
    np.testing.assert_allclose(st.predict(X, M), 0.6 * fw.predict(X, M) + 0.4 * trees)
    np.testing.assert_allclose(st.weights, fw.weights * 0.6)
    half = Blender.fit("stack", X, M, y, BlendConfig(stack_mix=0.5))
    np.testing.assert_allclose(half.predict(X, M), (fw.predict(X, M) + trees) / 2)
    res = blend(X, X[:10], y, folds, M, M[:10], cfg, (-10.0, 20.0))
    assert res.cv_by_method["stack"] < res.cv_by_method["fwls"] - 0.01


def test_resid_boosts_its_trees_from_the_fwls_prediction():
    """`resid` predicts the fwls stack plus trees boosted from the fwls prediction (LightGBM's init score, left
    out of the trees' own prediction): not the stack's trees, which start from the mean rating."""
    from cfblend.ensemble.blend import Blender, fit_stack_gbm

    rng = np.random.default_rng(6)
    n = 4000
    y = rng.normal(3.5, 1.0, n)
    M = np.column_stack([np.ones(n), rng.uniform(0, 5, n), rng.uniform(0, 5, n)])
    cut = (M[:, 1] > 3.5) | (M[:, 2] < 1.0)
    X = np.column_stack([y + rng.normal(0, np.where(cut, 0.1, 1.2), n), y + rng.normal(0, np.where(cut, 1.2, 0.1), n)])
    cfg = BlendConfig(stack_rounds=50)
    fw = Blender.fit("fwls", X, M, y, cfg)
    base = fw.predict(X, M)
    rs = Blender.fit("resid", X, M, y, cfg)
    trees = fit_stack_gbm(X, M, y, cfg, init=base).predict(np.column_stack([X, M[:, 1:]]))
    assert abs(trees.mean()) < 0.05  # corrections around the fwls prediction, not ratings
    np.testing.assert_allclose(rs.predict(X, M), base + trees)
    np.testing.assert_allclose(rs.weights, fw.weights)
    assert np.sqrt(np.mean((rs.predict(X, M) - y) ** 2)) < np.sqrt(np.mean((base - y) ** 2)) - 0.01


def test_stack_trees_fit_on_at_most_stack_max_rows_rows_drawn_at_random(monkeypatch):
    """Large data: the stacker's LightGBM sees `stack_max_rows` rows, the same ones every time, drawn from the
    whole set (not its head); below the cap it sees every row."""
    import lightgbm as lgb

    from cfblend.ensemble.blend import fit_stack_gbm

    seen = []

    class Recorded(lgb.Dataset):
        def __init__(self, data, label=None, **kw):
            seen.append((np.array(data), np.array(label)))
            super().__init__(data, label, **kw)

    monkeypatch.setattr(lgb, "Dataset", Recorded)
    rng = np.random.default_rng(2)
    n = 3000
    y = rng.normal(3.5, 1.0, n)
    M = np.column_stack([np.ones(n), rng.uniform(0, 5, n), rng.uniform(0, 5, n)])
    X = np.column_stack([np.arange(n, dtype=float), y])  # column 0: the row number
    cfg = BlendConfig(stack_max_rows=1000, stack_rounds=5)
    a, b = fit_stack_gbm(X, M, y, cfg), fit_stack_gbm(X, M, y, cfg)
    (data, label), (data2, _) = seen
    rows = data[:, 0].astype(int)
    assert len(rows) == 1000 and len(set(rows)) == 1000 and (data2 == data).all()
    assert (label == y[rows]).all() and (data[:, 2:] == M[rows, 1:]).all()  # rows kept whole
    assert (rows < n // 3).sum() > 200 and (rows > 2 * n // 3).sum() > 200  # drawn from the whole set
    assert a.model_to_string() == b.model_to_string()
    fit_stack_gbm(X, M, y, BlendConfig(stack_max_rows=n, stack_rounds=5))
    assert len(seen[-1][0]) == n


def test_linear_and_fwls_built_by_row_blocks_solve_the_whole_design_problem(monkeypatch):
    """The normal equations are summed a block of rows at a time (memory bounded at any size); the weights are
    those of the problem on the whole design: scipy's nnls on [X, 1, -1] for `linear`, the ridge solve on the
    full fwls design for `fwls`, whose predictions are the design times the coefficients."""
    import importlib

    from scipy.optimize import nnls

    from cfblend.ensemble.blend import _fwls_design, _fwls_predict, fit_fwls

    blend_module = importlib.import_module("cfblend.ensemble.blend")  # the package exports a function `blend`

    rng = np.random.default_rng(7)
    n = 2500
    y = rng.normal(3.5, 1.0, n)
    X = np.column_stack([y + rng.normal(0, 0.4, n), y + rng.normal(0, 0.9, n), 7 - y + rng.normal(0, 0.5, n),
                         0.5 * y + 1 + rng.normal(0, 0.3, n)])
    M = np.column_stack([np.ones(n), rng.uniform(0, 5, n), rng.uniform(0, 5, n)])
    real = blend_module._normal_equations
    blocks = []

    def small_blocks(design, target, rows, block=1_000_000):
        blocks.append(rows)
        return real(design, target, rows, block=300)  # 9 blocks, the last one short

    monkeypatch.setattr(blend_module, "_normal_equations", small_blocks)
    w, b = fit_linear(X, y)
    A = np.column_stack([X, np.ones(n), -np.ones(n)])
    ref, _ = nnls(A, y)
    assert w[2] == 0.0  # an anti-correlated member gets no weight
    np.testing.assert_allclose(w, ref[:-2], atol=1e-9)
    assert b == pytest.approx(ref[-2] - ref[-1], abs=1e-9)
    coef = fit_fwls(X, M, y, ridge=1.0)
    D = _fwls_design(X, M)
    np.testing.assert_allclose(coef, np.linalg.solve(D.T @ D + np.eye(D.shape[1]), D.T @ y), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(_fwls_predict(X, M, coef), D @ coef, rtol=1e-12)
    assert blocks == [n, n]


def test_auto_fits_the_fwls_of_a_fold_once_for_fwls_stack_and_resid(monkeypatch):
    """`stack`'s linear half (and `resid`'s base) is `fwls` fitted on the same rows: in `auto`'s honest CV each
    fold's fwls is fitted once and shared (five folds, plus one final fit on every row for the winner), with the
    same results."""
    import importlib

    blend_module = importlib.import_module("cfblend.ensemble.blend")  # the module (the package exports `blend`)
    X, y, folds, M = _synthetic(n=3000, regime=True, seed=3)
    cfg = BlendConfig(method="auto", ridge=1.0)
    before = blend_module.blend(X, X[:10], y, folds, M, M[:10], cfg, (-10.0, 20.0))
    calls = []
    fit = blend_module.fit_fwls
    monkeypatch.setattr(blend_module, "fit_fwls", lambda *a: calls.append(1) or fit(*a))
    after = blend_module.blend(X, X[:10], y, folds, M, M[:10], cfg, (-10.0, 20.0))
    assert after.method in ("stack", "resid") and len(calls) == 5 + 1
    assert after.cv_by_method == before.cv_by_method
    np.testing.assert_array_equal(after.test, before.test)


def test_meta_features_of_a_fold_come_from_the_other_folds_never_its_own_ratings(comp_env):
    """The OOF rows of fold k get counts, damped means and stds from the other folds: scrambling fold k's
    ratings leaves its rows' meta-features as they were (and moves the other folds'); a user's damped mean
    is (sum + STAT_DAMPING * mu) / (n + STAT_DAMPING) over their ratings in the other folds."""
    from cfblend.ensemble.blend import (
        META_FEATURES,
        NEIGHBOUR_META,
        STAT_DAMPING,
        TIMELINE_META,
        TIMELINE_NO_GAP,
        meta_features,
        oof_and_test_meta,
        public_pairs,
    )
    from cfblend.models.timeline import RatingTimeline

    comp, folds, _ = comp_env
    public = public_pairs(comp.train, comp.test, comp.items)
    ranks, genres, vectors = public.ranks, public.genres, public.vectors
    assert genres is not None and len(vectors) == comp.train["item_id"].nunique()
    names = [*META_FEATURES, *NEIGHBOUR_META, *TIMELINE_META]
    M, MT = oof_and_test_meta(comp.train, comp.test, folds, public)
    assert M.shape == (len(comp.train), len(names)) and MT.shape == (len(comp.test), len(names))
    np.testing.assert_array_equal(oof_and_test_meta(comp.train, comp.test, folds)[0], M[:, :len(META_FEATURES)])
    k0 = folds == 0
    r = comp.train["rating"].to_numpy().copy()
    r[k0] = np.random.default_rng(0).permutation(r[k0])
    M2, _ = oof_and_test_meta(comp.train.assign(rating=r), comp.test, folds, public)
    np.testing.assert_array_equal(M2[k0], M[k0])
    assert np.abs(M2[~k0] - M[~k0]).max() > 1e-3
    nb = slice(len(META_FEATURES), len(META_FEATURES) + len(NEIGHBOUR_META))
    assert np.abs(M2[~k0, nb] - M[~k0, nb]).max() > 1e-3  # the neighbouring ratings move with the other folds'
    want = RatingTimeline(comp.train[~k0], ranks, 10, genres=genres,
                          vectors=vectors).lookup(comp.train[k0])[list(NEIGHBOUR_META)]
    np.testing.assert_allclose(M[k0, nb], np.nan_to_num(want.to_numpy()))
    assert (M[k0, nb] != 0).any(axis=1).mean() > 0.9
    assert (M[k0, names.index("nb_sim10")] != 0).mean() > 0.5  # the likeness is there, not a column of zeros
    want = RatingTimeline(comp.train, ranks, 10, genres=genres, vectors=vectors).lookup(comp.test)[list(NEIGHBOUR_META)]
    np.testing.assert_allclose(MT[:, nb], np.nan_to_num(want.to_numpy()))  # test rows: from every train row
    row = int(np.flatnonzero(k0)[0])
    tl = slice(nb.stop, None)
    np.testing.assert_array_equal(np.vstack([M2, MT])[:, tl], np.vstack([M, MT])[:, tl])  # never from a rating
    t = public.table.loc[(comp.train["user_id"].iloc[row], comp.train["item_id"].iloc[row])].fillna(TIMELINE_NO_GAP)
    np.testing.assert_allclose(M[row, tl], [t["tl_pos"], *np.log1p(t[["tl_same_day", "tl_since_first", "tl_gap_prev",
                                                                      "tl_gap_next"]].to_numpy(np.float64))])
    for end in ("log1p_tl_gap_prev", "log1p_tl_gap_next"):  # a user's first pair, a user's last
        assert np.isin(np.vstack([M, MT])[:, names.index(end)], np.log1p(TIMELINE_NO_GAP)).sum() >= 1
    made_up = comp.test.head(1).assign(item_id=-1)  # a pair that is not public: no timeline
    assert (meta_features(made_up, comp.train, public=public)[0, tl] == 0).all()
    other = comp.train[~k0]
    mine = other.loc[other["user_id"] == comp.train["user_id"].iloc[row], "rating"]
    want = (mine.sum() + STAT_DAMPING * other["rating"].mean()) / (len(mine) + STAT_DAMPING)
    assert M[row, META_FEATURES.index("user_mean")] == pytest.approx(want)
    assert M[row, META_FEATURES.index("log1p_user_count")] == pytest.approx(np.log1p(len(mine)))
    dev = ((mine - mine.mean()) ** 2).sum() + STAT_DAMPING * other["rating"].var(ddof=0)
    assert M[row, META_FEATURES.index("user_std")] == pytest.approx(np.sqrt(dev / (len(mine) + STAT_DAMPING)))
