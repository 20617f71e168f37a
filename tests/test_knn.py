"""kNNBaseline: learns, deterministic, round-trips; its similarities and predictions are the written-out
formulas; states its cold-start policy; refuses a catalogue too large for dense similarities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import check_learns_repeats_and_round_trips

from cfblend.models import make_model
from cfblend.models.base import SideInfo
from cfblend.models.knn import KNNConfig, KNNModel

NEW = 10**6


@pytest.mark.parametrize("name", ["knn", "knn_user"])
def test_knn_beats_the_global_mean_is_deterministic_and_round_trips(name, comp_env, tmp_path):
    check_learns_repeats_and_round_trips(name, {}, comp_env, tmp_path)


def _ratings(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pairs = {(int(u), int(i)) for u, i in zip(rng.integers(0, 30, 400), rng.integers(0, 20, 400), strict=True)}
    u, i = np.array(sorted(pairs)).T
    return pd.DataFrame({"user_id": u * 7 + 3, "item_id": i * 5 + 1, "rating": rng.integers(1, 6, len(u)),
                         "timestamp": 0})


def _written_out(train: pd.DataFrame, rows: pd.DataFrame, m: KNNModel, user_based: bool) -> np.ndarray:
    """kNNBaseline pair by pair from its definition, over the model's own baselines."""
    c = m.config
    base = {(u, i): m.mu_ + m.bu_[m.users_([u])[0]] + m.bi_[m.items_([i])[0]]
            for u, i in zip(train["user_id"], train["item_id"], strict=True)}
    e = {p: r - base[p] for p, r in zip(zip(train["user_id"], train["item_id"], strict=True), train["rating"],
                                        strict=True)}
    if user_based:  # the same formulas with the roles of users and items swapped
        e = {(i, u): v for (u, i), v in e.items()}
    owners = {}
    for (o, n), v in e.items():
        owners.setdefault(n, {})[o] = v  # neighbour -> {owner: residual}

    def sim(x, y):
        common = set(owners.get(x, {})) & set(owners.get(y, {}))
        num = sum(owners[x][o] * owners[y][o] for o in common)
        den = np.sqrt(sum(owners[x][o] ** 2 for o in common) * sum(owners[y][o] ** 2 for o in common))
        n = len(common)
        return 0.0 if den == 0 else num / den * max(n - 1, 0) / (max(n - 1, 0) + c.shrinkage)

    out = []
    for u, i in zip(rows["user_id"], rows["item_id"], strict=True):
        o, t = (i, u) if user_based else (u, i)
        b = m.mu_ + m.bu_[m.users_([u])[0]] + m.bi_[m.items_([i])[0]]
        rated = [(sim(t, n), v) for (oo, n), v in e.items() if oo == o]
        top = sorted(rated, key=lambda sv: -sv[0])[: c.k]
        pos = [(s, v) for s, v in top if s > 0]
        out.append(b + (sum(s * v for s, v in pos) / sum(s for s, _ in pos) if pos else 0.0))
    return np.array(out)


@pytest.mark.parametrize("user_based", [False, True])
def test_predictions_are_the_written_out_knn_baseline(user_based):
    """Similarities (shrunk Pearson of the baseline residuals over common raters) and the top-k weighted mean
    of positive neighbours, against the formulas computed pair by pair in Python."""
    train = _ratings()
    rng = np.random.default_rng(1)
    rows = pd.DataFrame({"user_id": rng.choice(train["user_id"].unique(), 60),
                         "item_id": rng.choice(train["item_id"].unique(), 60), "timestamp": 0})
    m = KNNModel(KNNConfig(k=5, shrinkage=3.0, user_based=user_based), SideInfo(pd.DataFrame(), pd.DataFrame()))
    m.fit(train)
    np.testing.assert_allclose(m._predict(rows), _written_out(train, rows, m, user_based), atol=1e-5)
    base = m.mu_ + m.bu_[m.users_(rows["user_id"])] + m.bi_[m.items_(rows["item_id"])]
    assert np.ptp(m._predict(rows) - base) > 0.1  # the neighbours move the predictions


def test_baselines_are_the_damped_alternating_means():
    train = _ratings(2)
    m = KNNModel(KNNConfig(iterations=50), SideInfo(pd.DataFrame(), pd.DataFrame())).fit(train)
    a, i, r = m.users_(train["user_id"]), m.items_(train["item_id"]), train["rating"].to_numpy()
    # at convergence each bias is its damped mean residual given the other
    np.testing.assert_allclose(m.bi_[1:], (np.bincount(i, r - m.mu_ - m.bu_[a]) / (np.bincount(i) + 10.0))[1:],
                               atol=1e-9)
    np.testing.assert_allclose(m.bu_[1:], (np.bincount(a, r - m.mu_ - m.bi_[i]) / (np.bincount(a) + 15.0))[1:],
                               atol=1e-9)


def test_cold_start_policy():
    """An unseen user or item gets the baseline with the biases that are known."""
    train = _ratings(3)
    m = make_model("knn", SideInfo(pd.DataFrame(), pd.DataFrame())).fit(train)
    u, i = train["user_id"].iloc[0], train["item_id"].iloc[0]
    rows = pd.DataFrame({"user_id": [NEW, u, NEW], "item_id": [i, NEW, NEW], "timestamp": 0})
    bu, bi = m.bu_[m.users_([u])[0]], m.bi_[m.items_([i])[0]]
    np.testing.assert_allclose(m._predict(rows), [m.mu_ + bi, m.mu_ + bu, m.mu_])


def test_a_catalogue_above_max_items_is_refused_in_one_line():
    train = _ratings(4)
    with pytest.raises(ValueError, match=r"knn: 20 items in training, above max_items=10"):
        KNNModel(KNNConfig(max_items=10), SideInfo(pd.DataFrame(), pd.DataFrame())).fit(train)
