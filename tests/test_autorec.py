"""I-AutoRec: learns, deterministic, round-trips, reads only its training rows, the stated cold-start policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import check_learns_repeats_and_round_trips

from cfblend.models import make_model
from cfblend.runs import side_info

FAST = {"epochs": 40, "hidden": 32, "l2": 5.0, "lr": 0.01, "batch_items": 16, "device": "cpu"}
NEW = 10**6


def test_autorec_beats_the_global_mean_is_deterministic_and_round_trips(comp_env, tmp_path):
    check_learns_repeats_and_round_trips("autorec", FAST, comp_env, tmp_path)


def test_an_items_input_is_exactly_its_training_ratings(comp_env):
    comp, folds, _ = comp_env
    fit = comp.train[folds != 1]
    m = make_model("autorec", side_info(comp), {**FAST, "epochs": 1}).fit(fit)
    slots = torch.arange(1, len(m.items_))
    users, ratings, offsets, row = m.bags_.batch(slots)
    got = pd.DataFrame({"item_id": m.items_.ids[row.numpy()], "user_id": m.users_.ids[users.numpy() - 1],
                        "rating": ratings.numpy()})
    want = fit[["item_id", "user_id", "rating"]].astype({"rating": np.float32})
    key = ["item_id", "user_id"]
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True),
                                  want.sort_values(key).reset_index(drop=True), check_dtype=False)
    assert offsets.tolist() == [int(x) for x in np.r_[0, np.cumsum(fit["item_id"].value_counts().sort_index())[:-1]]]


def test_cold_start_policy(comp_env):
    comp, _, _ = comp_env
    m = make_model("autorec", side_info(comp), FAST).fit(comp.train)
    u, i = int(comp.train["user_id"].iloc[0]), int(comp.train["item_id"].iloc[0])
    rows = pd.DataFrame({"user_id": [NEW, NEW, u, u], "item_id": [i, NEW, NEW, i], "timestamp": 0})
    p = m.predict(rows)
    item_mean = comp.train.loc[comp.train["item_id"] == i, "rating"].mean()
    np.testing.assert_allclose(p[:2], np.clip([item_mean, comp.train["rating"].mean()], 1, 5))
    # an unseen item with a known user: the empty bag's code through the user's decoder row
    with torch.no_grad():
        code = torch.sigmoid(m.net.enc_bias)
        slot = torch.as_tensor(m.users_([u]))
        want = float(m.net.decode(code[None], slot)[0])
    np.testing.assert_allclose(p[2], np.clip(want, 1, 5), rtol=1e-6)
    assert p[3] != p[2]


def test_u_autorec_is_i_autorec_of_the_transposed_ratings(comp_env, tmp_path):
    """`autorec_user` encodes users: its predictions are those of I-AutoRec fitted with the roles of users and
    items swapped (same seed), and it round-trips like the item-based one."""
    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    swap = {"user_id": "item_id", "item_id": "user_id"}
    u = make_model("autorec_user", side_info(comp), FAST).fit(fit)
    i = make_model("autorec", side_info(comp), FAST).fit(fit.rename(columns=swap))
    np.testing.assert_array_equal(u.predict(val), i.predict(val.rename(columns=swap)))
    assert len(u.items_) == fit["user_id"].nunique() + 1  # its "items" are the users
    check_learns_repeats_and_round_trips("autorec_user", FAST, comp_env, tmp_path)


def test_autorec_imp_learns_repeats_and_round_trips(comp_env, tmp_path):
    check_learns_repeats_and_round_trips("autorec_imp", FAST, comp_env, tmp_path)


def test_the_implicit_input_is_every_public_rater_of_an_item_once_weighted_by_their_count(comp_env):
    """`autorec_imp`'s second bag of a training item: each user of the public pairs (train and test, a repeated
    pair once) who is known in training, weighted 1/sqrt(the item's number of public raters, known or not)."""
    comp, folds, _ = comp_env
    fit = comp.train[folds != 1]
    side = side_info(comp)
    stranger = pd.DataFrame({"user_id": NEW, "item_id": fit["item_id"].unique()[:3]})  # a user only in the pairs
    side.pairs = pd.concat([side.pairs, side.pairs.iloc[:50], stranger], ignore_index=True)  # repeats count once
    m = make_model("autorec_imp", side, {**FAST, "epochs": 1}).fit(fit)
    users, weights, _, row = m.implicit_bags_.batch(torch.arange(1, len(m.items_)))
    got = pd.DataFrame({"item_id": m.items_.ids[row.numpy()], "user_id": users.numpy(), "w": weights.numpy()})
    pairs = side.pairs.drop_duplicates()
    pairs = pairs[pairs["item_id"].isin(fit["item_id"])]
    n = pairs["item_id"].map(pairs["item_id"].value_counts())
    want = pd.DataFrame({"item_id": pairs["item_id"], "user_id": m.users_(pairs["user_id"]),
                         "w": (1.0 / np.sqrt(n)).astype(np.float32)})
    assert (want["user_id"] == 0).sum() == 3  # the stranger: no encoder row, but counted in the weights
    key = ["item_id", "user_id", "w"]
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True),
                                  want.sort_values(key).reset_index(drop=True), check_dtype=False)


def test_the_implicit_input_moves_the_codes_and_the_ratings_of_the_other_rows_never_enter(comp_env):
    """The same training rows with other public pairs give other predictions (the implicit encoder is used);
    the ratings of rows outside the fit (fold 0's, the test's) cannot change anything: only pairs are read."""
    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    side = side_info(comp)
    base = make_model("autorec_imp", side, FAST).fit(fit).predict(val)
    fewer = side_info(comp)
    fewer.pairs = fit[["user_id", "item_id"]]  # no test or fold-0 pairs
    assert np.abs(make_model("autorec_imp", fewer, FAST).fit(fit).predict(val) - base).max() > 1e-3
    scrambled = comp.train.copy()
    scrambled.loc[folds == 0, "rating"] = scrambled.loc[folds == 0, "rating"].to_numpy()[::-1]
    np.testing.assert_array_equal(make_model("autorec_imp", side, FAST).fit(scrambled[folds != 0]).predict(val), base)


LARGE = {**FAST, "sparse": True, "exclude_own": True, "center": True}  # the large-data setting's switches


def test_the_large_data_setting_learns_repeats_and_round_trips(comp_env, tmp_path):
    check_learns_repeats_and_round_trips("autorec", LARGE, comp_env, tmp_path)


@pytest.mark.parametrize("name", ["autorec", "autorec_imp"])
def test_sparse_updates_are_adams_when_every_user_is_in_every_step(comp_env, name):
    """With one step an epoch (every item, so every training user, in the batch) the batch estimate of the L2
    penalty is the penalty itself and the lazy row update is Adam's: the same model as the dense fit (whose
    codes come from the bags, where the sparse fit sums the rows it gathered once)."""
    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    one_step = {**FAST, "batch_items": 10**6, "epochs": 10}
    dense = make_model(name, side_info(comp), one_step).fit(fit)
    sparse = make_model(name, side_info(comp), {**one_step, "sparse": True}).fit(fit)
    assert sparse.net.encoder.sparse and not dense.net.encoder.sparse
    # autorec_imp: up to 1.6e-4 apart (the same before the rows were gathered once): float-order differences in
    # the gradients, which Adam's normalisation enlarges where a row's gradient is near zero
    np.testing.assert_allclose(sparse.predict(val), dense.predict(val), atol=1e-4 if name == "autorec" else 5e-4)


def test_the_sparse_penalty_is_an_unbiased_estimate_of_the_papers(comp_env):
    """Over all training ratings the batch estimate equals `l2 / 2 / N * (|W|² + |V|²)`; over one user's
    ratings it is that user's share, `l2 / 2 / N * (|W_u|² + |V_u|²)` times N / n_u."""
    comp, folds, _ = comp_env
    fit = comp.train[folds != 0]
    m = make_model("autorec", side_info(comp), {**LARGE, "epochs": 2}).fit(fit)
    u = torch.as_tensor(m.users_(fit["user_id"]))
    sparse, dense = m._sparse_penalty(u.numpy(), u.device), m._dense_penalty(len(fit))
    with torch.no_grad():
        np.testing.assert_allclose(float(sparse(u, m.net.rows(u))), float(dense(u, None)), rtol=1e-5)
        one = u[u == u[0]]
        row = float(m.net.encoder.weight[u[0]].pow(2).sum() + m.net.decoder.weight[u[0]].pow(2).sum())
        np.testing.assert_allclose(float(sparse(one, m.net.rows(one))), LARGE["l2"] / 2 * row / len(one), rtol=1e-5)


def test_exclude_own_reconstructs_each_rating_from_its_items_other_ratings(comp_env):
    """With `exclude_own` the code a training rating is reconstructed from is the item's code computed without
    that rating (its bag less that entry); with `center` the encoder sees ratings less the training mean."""
    comp, folds, _ = comp_env
    fit = comp.train[folds != 0]
    m = make_model("autorec", side_info(comp), {**LARGE, "epochs": 2}).fit(fit)
    item = torch.as_tensor([int(np.argmax(np.diff(m.bags_.indptr.numpy())))])  # the most rated item
    with torch.no_grad():
        users, ratings, inputs, offsets, row, _ = m._bags(item)
        pre = m.net.preactivate(users, inputs, offsets)
        np.testing.assert_allclose(inputs.numpy(), ratings.numpy() - m.global_mean_, rtol=1e-6)
        got = m.net.own_out_codes(pre.index_select(0, row), users, inputs)
        for k in (0, len(users) // 2, len(users) - 1):
            keep = torch.arange(len(users)) != k
            want = m.net.encode(users[keep], inputs[keep], torch.zeros(1, dtype=torch.long))
            np.testing.assert_allclose(got[k].numpy(), want[0].numpy(), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(got[0], m.net.encode(users, inputs, torch.zeros(1, dtype=torch.long))[0])
