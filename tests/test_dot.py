"""The dot-product model: learns, is deterministic, round-trips, and follows its cold-start policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cfblend.competition.scoring import rmse
from cfblend.models import make_model
from cfblend.models.dot import DotConfig, DotModel
from cfblend.runs import side_info

FAST = {"epochs": 8, "batch_size": 128, "lr": 0.01, "device": "cpu"}


@pytest.fixture
def fitted(comp_env):
    comp, _, _ = comp_env
    return comp, make_model("dot", side_info(comp), FAST).fit(comp.train)


def test_dot_beats_the_global_mean_on_held_out_rows(comp_env):
    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    model = make_model("dot", side_info(comp), {**FAST, "wd": 0.02}).fit(fit)
    assert rmse(val["rating"], model.predict(val)) < rmse(val["rating"], np.full(len(val), fit["rating"].mean())) - 0.05


def test_predictions_stay_in_the_rating_scale(fitted):
    comp, model = fitted
    p = model.predict(comp.test)
    assert p.shape == (len(comp.test),) and p.min() >= 1.0 and p.max() <= 5.0


def test_same_config_and_seed_give_identical_predictions(comp_env):
    comp, _, _ = comp_env
    a = make_model("dot", side_info(comp), FAST).fit(comp.train).predict(comp.test)
    b = make_model("dot", side_info(comp), FAST).fit(comp.train).predict(comp.test)
    c = make_model("dot", side_info(comp), {**FAST, "seed": 7}).fit(comp.train).predict(comp.test)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_save_load_round_trip(fitted, tmp_path):
    comp, model = fitted
    model.save(tmp_path / "m.pt")
    again = DotModel.load(tmp_path / "m.pt", side_info(comp))
    np.testing.assert_array_equal(model.predict(comp.test), again.predict(comp.test))


def test_cold_start_policy(fitted):
    comp, model = fitted
    net, lo, hi = model.net, *model.config.y_range
    item = int(comp.train["item_id"].iloc[0])
    user = int(comp.train["user_id"].iloc[0])
    rows = pd.DataFrame({"user_id": [10**6, user, 10**6], "item_id": [item, 10**6, 10**6]})
    p = model.predict(rows)
    with torch.no_grad():
        g = float(net.global_bias)
        b_i = float(net.item_bias.weight[model.items_([item])[0], 0])
        b_u = float(net.user_bias.weight[model.users_([user])[0], 0])
    squash = lambda x: float(np.clip(lo + (hi - lo) / (1 + np.exp(-x)), 1, 5))  # noqa: E731
    assert p[0] == pytest.approx(squash(g + b_i), abs=1e-5)  # unseen user: item bias alone
    assert p[1] == pytest.approx(squash(g + b_u), abs=1e-5)  # unseen item: user bias alone
    assert p[2] == pytest.approx(squash(g), abs=1e-5)  # both unseen: the training mean
    assert p[2] == pytest.approx(comp.train["rating"].mean(), abs=0.15)
    emb, bias = model.embeddings("user", [10**6])
    assert not emb.any() and bias[0] == 0.0


def test_unknown_config_keys_are_refused(comp_env):
    comp, _, _ = comp_env
    with pytest.raises(ValueError, match="unknown keys"):
        make_model("dot", side_info(comp), {"factor": 3})


def test_fused_trainer_matches_autograd(comp_env):
    comp, _, _ = comp_env
    fused = make_model("dot", side_info(comp), {**FAST, "trainer": "fused"}).fit(comp.train)
    ref = make_model("dot", side_info(comp), {**FAST, "trainer": "autograd"}).fit(comp.train)
    np.testing.assert_allclose(fused.predict(comp.test), ref.predict(comp.test), atol=2e-3)
    for a, b in zip(fused.net.parameters(), ref.net.parameters(), strict=True):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=2e-3)


def test_one_cycle_schedule_matches_torch():
    from cfblend.models.dot.tables import one_cycle_schedule

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=50)
    lrs, betas = one_cycle_schedule(50, 0.01)
    for s in range(50):
        assert lrs[s] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        assert betas[s] == pytest.approx(opt.param_groups[0]["betas"][0], rel=1e-9)
        opt.step()
        sched.step()


def test_numba_trainer_learns_deterministically_and_keeps_the_cold_start_slot(comp_env):
    from cfblend.models.dot import numba_trainer as dot_numba

    if not dot_numba.available():
        pytest.skip("numba not installed")
    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    cfg = {**FAST, "trainer": "numba", "wd": 0.02, "threads": 1}
    a = make_model("dot", side_info(comp), cfg).fit(fit)
    pa = a.predict(val)
    assert rmse(val["rating"], pa) < rmse(val["rating"], np.full(len(val), fit["rating"].mean())) - 0.05
    np.testing.assert_array_equal(pa, make_model("dot", side_info(comp), cfg).fit(fit).predict(val))
    assert not a.net.user.weight[0].any() and not a.net.item_bias.weight[0].any()
    ref = make_model("dot", side_info(comp), {**cfg, "trainer": "fused"}).fit(fit).predict(val)
    # Same model and loss; lazy (numba) and dense (torch) Adam differ by design in how untouched rows'
    # moments decay, so the fits are close, not equal (here 0.007 apart).
    assert abs(rmse(val["rating"], pa) - rmse(val["rating"], ref)) < 0.02


def test_blocked_numba_trainer_is_as_good_and_does_not_depend_on_the_threads_timing(comp_env, monkeypatch):
    from cfblend.models.dot import numba_trainer as dot_numba

    if not dot_numba.available():
        pytest.skip("numba not installed")
    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    # Small batches: on 800 rows a batch of 128 holds most of a user's ratings, and a row stepped on in
    # its own thread's batches only moves less per epoch than in one loop (not so from ml-100k up).
    cfg = {**FAST, "batch_size": 16, "trainer": "numba", "wd": 0.02}
    one = rmse(val["rating"], make_model("dot", side_info(comp), {**cfg, "threads": 1}).fit(fit).predict(val))
    blocked = make_model("dot", side_info(comp), {**cfg, "threads": 2}).fit(fit)
    pb = blocked.predict(val)
    assert rmse(val["rating"], pb) < rmse(val["rating"], np.full(len(val), fit["rating"].mean())) - 0.05
    assert abs(rmse(val["rating"], pb) - one) < 0.02  # 0.011 apart here
    assert not blocked.net.user.weight[0].any() and not blocked.net.item_bias.weight[0].any()
    # The blocks of a round share no user or item, so two threads and one thread taking the same
    # blocks in turn give the same numbers, bit for bit.
    monkeypatch.setattr(dot_numba.numba.config, "NUMBA_NUM_THREADS", 1)
    serial = make_model("dot", side_info(comp), {**cfg, "threads": 2}).fit(fit)
    np.testing.assert_array_equal(serial.predict(val), pb)


def test_the_blocks_shrink_with_the_data_so_a_block_stays_in_cache():
    from cfblend.models.dot.numba_trainer import block_groups

    c = DotConfig()
    assert [block_groups(c, n) for n in (80_000, 720_150, 18_000_068)] == [2, 2, 16]
    assert block_groups(DotConfig(threads=1), 18_000_068) == 1  # one loop
    assert block_groups(DotConfig(blocks=5), 80_000) == 5  # as asked


@pytest.mark.parametrize("trainer, optimizer, device, chosen", [
    ("auto", "adam", "cpu", "numba"), ("auto", "sgd", "cpu", "autograd"), ("auto", "adam", "cuda", "fused"),
    ("fused", "adam", "cpu", "fused"), ("autograd", "sgd", "cpu", "autograd"), ("numba", "adam", "cpu", "numba"),
])
def test_trainer_choice(trainer, optimizer, device, chosen):
    import torch

    from cfblend.models.dot.model import choose_trainer

    assert choose_trainer(DotConfig(trainer=trainer, optimizer=optimizer), torch.device(device)) == chosen


@pytest.mark.parametrize("trainer, optimizer, device, message", [
    ("numba", "sgd", "cpu", "Adam only"), ("fused", "adamw", "cpu", "Adam only"),
    ("numba", "adam", "cuda", "runs on the CPU"), ("hogwild", "adam", "cpu", "unknown trainer"),
    ("auto", "rmsprop", "cpu", "unknown optimizer"),
])
def test_unsupported_trainer_and_optimizer_is_an_error_not_a_fallback(trainer, optimizer, device, message):
    import torch

    from cfblend.models.dot.model import choose_trainer

    with pytest.raises(ValueError, match=message):
        choose_trainer(DotConfig(trainer=trainer, optimizer=optimizer), torch.device(device))


def test_drop_heavy_raters_leaves_out_the_most_active_users(comp_env):
    from cfblend.models.dot.model import drop_heaviest_raters

    comp, _, _ = comp_env
    counts = comp.train["user_id"].value_counts()
    light = drop_heaviest_raters(comp.train, 0.05)
    n_heavy = round(len(counts) * 0.05)
    assert set(light["user_id"]) == set(counts.index[n_heavy:])
    assert drop_heaviest_raters(comp.train, 0.0) is comp.train


def test_model_files_are_loaded_without_pickle(tmp_path):
    """A model file from elsewhere cannot run code: anything but tensors and plain containers is refused."""
    import pickle

    import torch

    from cfblend.models.torch_base import load_state

    class Payload:
        def __reduce__(self):
            return (print, ("this would have run",))

    torch.save({"config": {}, "net": {}, "x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_state(tmp_path / "evil.pt")


def test_numba_trainer_takes_adams_steps(comp_env):
    """With every rating in each batch, every row with ratings is touched at every step, so lazy Adam
    (numba) and dense Adam (the torch trainer) take the same steps: the two fits give the same tables."""
    from cfblend.models.dot import numba_trainer as dot_numba

    if not dot_numba.available():
        pytest.skip("numba not installed")
    comp, _, _ = comp_env
    full_batch = {**FAST, "epochs": 5, "batch_size": 10**6, "wd": 0.02, "threads": 1}
    lazy = make_model("dot", side_info(comp), {**full_batch, "trainer": "numba"}).fit(comp.train)
    dense = make_model("dot", side_info(comp), {**full_batch, "trainer": "fused"}).fit(comp.train)
    start = make_model("dot", side_info(comp), {**full_batch, "lr": 1e-30}).fit(comp.train)
    for a, b, s in zip(lazy.net.parameters(), dense.net.parameters(), start.net.parameters(), strict=True):
        assert float((a - s).detach().abs().max()) > 5e-4  # five steps moved every table (0.001-0.015 here)
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5)  # 1e-6 apart here
