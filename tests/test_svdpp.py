"""SVD++: learns, deterministic, round-trips, builds its implicit sets from public pairs only, states its
cold-start policy, and its epoch is Koren's SGD step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from conftest import check_learns_repeats_and_round_trips

from cfblend.models import make_model
from cfblend.models.svdpp import _epoch, _seed
from cfblend.runs import side_info

FAST = {"epochs": 15, "factors": 8, "lr": 0.01, "reg": 0.05, "reg_y": 0.1}
NEW = 10**6


def test_svdpp_beats_the_global_mean_is_deterministic_and_round_trips(comp_env, tmp_path):
    check_learns_repeats_and_round_trips("svdpp", FAST, comp_env, tmp_path)


def test_the_implicit_sets_come_from_public_pairs_never_from_ratings(comp_env):
    """Scrambling the training ratings leaves the implicit sets as they were; the sets hold every public
    pair of the user (test and held-out rows too), not only the rows the model is fitted on."""
    comp, folds, _ = comp_env
    fit = comp.train[folds != 0]
    side = side_info(comp)
    a = make_model("svdpp", side, FAST)._implicit(fit)
    scrambled = fit.assign(rating=np.random.default_rng(0).permutation(fit["rating"].to_numpy()))
    b = make_model("svdpp", side, FAST)._implicit(scrambled)
    assert (a != b).nnz == 0
    m = make_model("svdpp", side, FAST)
    C = m._implicit(fit)
    user = comp.test["user_id"].iloc[0]
    rated = set(comp.train.loc[comp.train["user_id"] == user, "item_id"]) | set(
        comp.test.loc[comp.test["user_id"] == user, "item_id"])
    assert set(m.items_.ids[C[m.users_([user])[0]].indices - 1]) == rated


def test_cold_start_policy(comp_env):
    """A user with public pairs but no training rating is predicted from those items (not from the item's
    bias alone, as without the implicit sets); an unseen item from mu + b_u; ids in no pair from mu."""
    comp, folds, _ = comp_env
    fit = comp.train[folds != 0]
    held = comp.train[folds == 0]
    newcomer = held.loc[~held["user_id"].isin(fit["user_id"]), "user_id"]
    side = side_info(comp)
    if not len(newcomer):  # make one: a user's training rows go, their pairs stay public
        gone = fit["user_id"].iloc[0]
        fit, newcomer = fit[fit["user_id"] != gone], pd.Series([gone])
    user, item = newcomer.iloc[0], fit["item_id"].iloc[0]
    rows = pd.DataFrame({"user_id": [user, NEW, fit["user_id"].iloc[0], NEW], "item_id": [item, item, NEW, NEW],
                         "timestamp": 0})
    m = make_model("svdpp", side, FAST).fit(fit)
    p = m._predict(rows)
    bi = m.bi_[m.items_([item])[0]]
    bu = m.bu_[m.users_([rows["user_id"].iloc[2]])[0]]
    np.testing.assert_allclose(p[1:], [m.mu_ + bi, m.mu_ + bu, m.mu_])
    assert abs(p[0] - (m.mu_ + bi)) > 1e-6  # the newcomer's rated items move the prediction
    plain = make_model("svdpp", replace(side, pairs=None), {**FAST, "implicit": False}).fit(fit)
    np.testing.assert_allclose(plain._predict(rows.head(1)), plain.mu_ + plain.bi_[plain.items_([item])[0]])


def test_an_epoch_is_the_textbook_svdpp_update_when_each_user_has_one_rating():
    """With one rating per user, the per-user update (implicit sum once, y_j stepped at the user's end) is
    exactly Koren's per-rating SGD step; the compiled epoch is checked against that step written out."""
    rng = np.random.default_rng(3)
    nu, ni, k = 40, 15, 4
    i = rng.integers(1, ni, nu - 1)
    y = rng.integers(1, 6, nu - 1).astype(np.float64)
    ptr = np.r_[0, np.arange(nu)].astype(np.int64)  # user a >= 1 has row a - 1 alone
    sets = [[]] + [sorted(set(rng.integers(1, ni, rng.integers(0, 6)))) for _ in range(1, nu)]
    imp_ptr = np.r_[0, np.cumsum([len(s) for s in sets])].astype(np.int64)
    imp_item = np.array([j for s in sets for j in s], np.int64)
    nrm = np.array([1 / np.sqrt(len(s)) if s else 0.0 for s in sets])
    users = rng.permutation(nu).astype(np.int64)
    P, Q, Y = (rng.normal(0, 0.1, (m, k)) for m in (nu, ni, ni))
    bu, bi = rng.normal(0, 0.1, nu), rng.normal(0, 0.1, ni)
    mu, lr, reg, reg_b, reg_y = 3.5, 0.05, 0.05, 0.02, 0.1
    want = [t.copy() for t in (P, Q, Y, bu, bi)]
    wP, wQ, wY, wbu, wbi = want
    sq_want = 0.0
    for u in users:  # Koren (2008), eq. (15), one rating at a time
        if u == 0:
            continue
        c, r = i[u - 1], y[u - 1]
        implicit = nrm[u] * wY[sets[u]].sum(axis=0)
        err = r - (mu + wbu[u] + wbi[c] + wQ[c] @ (wP[u] + implicit))
        sq_want += err**2
        wbu[u] += lr * (err - reg_b * wbu[u])
        wbi[c] += lr * (err - reg_b * wbi[c])
        p, q = wP[u].copy(), wQ[c].copy()
        wP[u] += lr * (err * q - reg * p)
        wQ[c] += lr * (err * (p + implicit) - reg * q)
        wY[sets[u]] += lr * (err * nrm[u] * q - reg_y * wY[sets[u]])
    got = [t.copy() for t in (P, Q, Y, bu, bi)]
    _seed(0)
    bd, no_day = np.zeros(1), np.zeros(nu - 1, np.int64)  # no day biases: slot 0 for every row, never stepped
    sq = _epoch(*got, bd, mu, users, ptr, i, no_day, y, np.arange(nu - 1), imp_ptr, imp_item, nrm, lr, reg, reg_b,
                reg_y, 0.5)
    assert bd[0] == 0.0
    np.testing.assert_allclose(sq, sq_want, rtol=1e-9)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_the_day_bias_learns_a_rating_session_and_no_other_day(comp_env, tmp_path):
    """A user who rates one point higher on one day than on another gets a day bias that says so; a row on a
    day the user never rated in training gets no day bias at all (the plain SVD++ prediction), and so does
    every row with `user_day` off. The saved model keeps the day biases."""
    comp, folds, _ = comp_env
    fit = comp.train[folds != 0].copy()
    user = fit["user_id"].value_counts().index[0]
    mine = np.flatnonzero(fit["user_id"].to_numpy() == user)
    happy, sad = mine[::2], mine[1::2]
    day = 86400
    ts = fit["timestamp"].to_numpy().copy()
    ts[happy], ts[sad] = 10_000 * day + 5, 10_001 * day + 5
    rating = fit["rating"].to_numpy(np.float64).copy()
    rating[happy] = np.minimum(rating[happy] + 1.0, 5.0)
    rating[sad] = np.maximum(rating[sad] - 1.0, 1.0)
    fit = fit.assign(timestamp=ts, rating=rating)
    m = make_model("svdpp", side_info(comp), FAST).fit(fit)
    item = fit["item_id"].iloc[mine[0]]
    rows = pd.DataFrame({"user_id": user, "item_id": item, "timestamp": [10_000 * day, 10_001 * day + 86399,
                                                                         20_000 * day]})
    p = m._predict(rows)
    b_happy, b_sad = m.bd_[m.days_(m._user_day(rows.head(2)))]
    assert b_happy - b_sad > 0.5  # (the user bias takes their mean; the happy ratings are mostly clipped at 5)
    np.testing.assert_allclose(p - p[2], [b_happy, b_sad, 0.0], atol=1e-12)
    off = make_model("svdpp", side_info(comp), {**FAST, "user_day": False}).fit(fit)
    assert len(off.days_) == 1 and np.ptp(off._predict(rows)) == 0.0
    m.save(tmp_path / "m.npz")
    back = type(m).load(tmp_path / "m.npz", side_info(comp))
    np.testing.assert_array_equal(back._predict(rows), p)
