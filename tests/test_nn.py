"""The entity-embedding model: learns, deterministic, round-trips, cold start uses side features."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import check_learns_repeats_and_round_trips

from cfblend.competition.scoring import rmse
from cfblend.models import make_model
from cfblend.models.nn import EntityEmbeddingModel
from cfblend.runs import side_info

FAST = {"epochs": 6, "batch_size": 128, "lr": 0.01, "device": "cpu"}


def test_nn_beats_the_global_mean_and_is_deterministic(comp_env, tmp_path):
    check_learns_repeats_and_round_trips("nn", FAST, comp_env, tmp_path)


def test_cold_start_items_are_predicted_from_their_side_features(comp_env):
    comp, _, _ = comp_env
    model = make_model("nn", side_info(comp), FAST).fit(comp.train)
    items = comp.items.copy()
    user = int(comp.train["user_id"].iloc[0])
    # Two brand-new items, unseen in training, with different genres and years.
    new = pd.DataFrame({"item_id": [10**6, 10**6 + 1], "title": ["x", "y"], "year": [1935.0, 1997.0],
                        "genres": [items["genres"].iloc[0], items["genres"].iloc[1]]})
    model.side = side_info(comp)
    model.side.items = pd.concat([items, new], ignore_index=True)
    rows = pd.DataFrame({"user_id": [user, user], "item_id": [10**6, 10**6 + 1], "timestamp": [885_000_000] * 2})
    enc = model.encoder.transform(rows, model.side.users, model.side.items)
    assert enc["cats"][:, 1].tolist() == [0, 0]  # the unknown-item slot
    p = model.predict(rows)
    assert np.isfinite(p).all() and p[0] != p[1]  # side features still flow and change the answer
    # Precisely the policy: an unseen item is predicted as a seen item with the same side features
    # whose id is hidden (the unknown slot), so only the id's own embedding and bias are lost.
    seen = int(comp.train["item_id"].iloc[0])
    twin = items.loc[items["item_id"] == seen].assign(item_id=10**6 + 2)
    model.side.items = pd.concat([model.side.items, twin], ignore_index=True)
    pair = pd.DataFrame({"user_id": [user, user], "item_id": [10**6 + 2, seen], "timestamp": [885_000_000] * 2})
    cold = model.predict(pair.iloc[:1])
    import torch

    cats, genres, dense = model._inputs(pair.iloc[1:], torch.device("cpu"))
    cats[:, 1] = 0  # hide the seen item's id
    with torch.no_grad():
        hidden = model.net(cats, genres, dense)[0].double().numpy()
    np.testing.assert_allclose(cold, np.clip(hidden, 1, 5), rtol=1e-6)
    assert abs(model.predict(pair.iloc[1:])[0] - cold[0]) > 1e-4  # ...and knowing the id does change it


def test_ids_only_ablation_is_registered(comp_env):
    comp, _, _ = comp_env
    m = make_model("nn_ids", side_info(comp), FAST).fit(comp.train.head(200))
    assert m.encoder.cat_fields == ["user_id", "item_id"] and m.encoder.n_dense == 0


def test_implicit_bags_hold_every_public_pair_and_survive_save_and_load(comp_env, tmp_path):
    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    side = side_info(comp)
    m = make_model("nn", side, {**FAST, "implicit": True}).fit(fit)
    pairs = m.net.imp_pairs.numpy()
    got = set(zip(m.encoder.vocab_index("user_id", side.pairs["user_id"]),
                  m.encoder.vocab_index("item_id", side.pairs["item_id"]), strict=True))
    assert set(zip(*pairs, strict=True)) == {(u, i) for u, i in got if u > 0 and i > 0}
    assert len(set(zip(*pairs, strict=True))) > len(fit)  # the held-out and test pairs are in the bags too
    row_sums = m.net.bag_user.to_dense().pow(2).sum(1)  # 1/sqrt(n) weights: each bag has unit norm
    np.testing.assert_allclose(row_sums[1:][row_sums[1:] > 0].numpy(), 1.0, rtol=1e-5)
    p = m.predict(val)
    assert rmse(val["rating"], p) < rmse(val["rating"], np.full(len(val), fit["rating"].mean())) - 0.05
    m.save(tmp_path / "nn.pt")
    np.testing.assert_array_equal(p, EntityEmbeddingModel.load(tmp_path / "nn.pt", side).predict(val))
    plain = make_model("nn", side, {**FAST, "implicit": False}).fit(fit)
    assert not hasattr(plain.net, "imp_pairs") and not np.allclose(plain.predict(val), p)


def test_sparse_embeddings_learn_about_as_well_as_dense_ones(comp_env):
    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    dense = make_model("nn", side_info(comp), FAST).fit(fit)
    sparse = make_model("nn", side_info(comp), {**FAST, "sparse": True}).fit(fit)
    assert sparse.net.tables[0].sparse and not dense.net.tables[0].sparse
    base = rmse(val["rating"], np.full(len(val), fit["rating"].mean()))
    assert rmse(val["rating"], sparse.predict(val)) < base - 0.05
    assert abs(rmse(val["rating"], sparse.predict(val)) - rmse(val["rating"], dense.predict(val))) < 0.03


def test_fast_dropout_drops_p_of_the_units_keeps_the_mean_and_repeats_by_seed():
    import torch

    from cfblend.models.torch_base import FastDropout

    x = torch.ones(4096, 64)
    drop = FastDropout(0.3, seed=7).train()
    y = drop(x)
    assert abs(float((y == 0).float().mean()) - 0.3) < 0.01  # p to the nearest 1/256
    assert abs(float(y.mean()) - 1.0) < 0.02  # kept units scaled by 1 / (1 - p)
    assert torch.equal(FastDropout(0.3, seed=7).train()(x), y)  # same seed, same mask
    # the mask is PCG64's bytes at or above round(256 p), the kept units scaled by 256 / (256 - 77): the runs
    # of earlier versions are reproduced
    bits = np.frombuffer(np.random.default_rng(7).bytes(x.numel()), dtype=np.uint8).reshape(x.shape)
    assert torch.equal(y, x * torch.from_numpy(np.where(bits >= 77, np.float32(256 / 179), np.float32(0))))
    assert not torch.equal(FastDropout(0.3, seed=8).train()(x), y)
    assert not torch.equal(drop(x), y)  # a fresh mask each call
    assert torch.equal(drop.eval()(x), x)  # identity at predict time
    # gradients flow through the kept units only, with the same scale
    xg = torch.ones(8, 16, requires_grad=True)
    out = FastDropout(0.5, seed=1).train()(xg)
    out.sum().backward()
    assert torch.equal(xg.grad, out.detach())


def test_nn_times_each_training_epoch(comp_env):
    comp, _, _ = comp_env
    model = make_model("nn", side_info(comp), FAST).fit(comp.train)
    assert len(model.epoch_seconds_) == FAST["epochs"] and all(s > 0 for s in model.epoch_seconds_)


def test_a_fold_saved_before_one_table_per_field_predicts_as_it_did(comp_env):
    """`tests/data/nn_separate_tables.pt` was saved by the code of 6f2a198 (separate embedding, bias and FM
    tables per field), fitted on this synthetic competition's fold 0 with {epochs 2, batch 128, lr 0.01,
    implicit, fm_factors 4, layers [8], emb_scale 0.3}; the `.npy` beside it holds its predictions of
    the held-out rows then. Loaded today, it joins the tables column-wise and predicts the same."""
    from pathlib import Path

    comp, folds, _ = comp_env
    data = Path(__file__).parent / "data"
    model = EntityEmbeddingModel.load(data / "nn_separate_tables.pt", side_info(comp))
    assert len(model.net.tables) == len(model.encoder.cardinalities)
    then = np.load(data / "nn_separate_tables.npy")
    np.testing.assert_allclose(model.predict(comp.train[folds == 0]), then, atol=1e-5)
