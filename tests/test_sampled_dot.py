"""`sampled_dot`: the compiled loops give torch's gathered products and their gradients, repeated rows
included, and `autorec` fits the same model through either."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cfblend.models.sampled_dot as sd
from cfblend.models import make_model
from cfblend.runs import side_info


def _gathered(a, b, ia, ib):
    return (a[ia] * b[ib]).sum(1)


@pytest.mark.skipif(sd.njit is None, reason="numba is not installed")
def test_values_and_gradients_are_torchs_with_rows_repeated():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, generator=gen), torch.randn(9, 7, generator=gen)
    ia, ib = torch.randint(0, 5, (40,), generator=gen), torch.randint(0, 9, (40,), generator=gen)
    assert len(set(ia.tolist())) < 40 and len(set(ib.tolist())) < 40  # rows repeat: gradients must add up
    grad = torch.randn(40, generator=gen)
    got_a, got_b = a.clone().requires_grad_(), b.clone().requires_grad_()
    want_a, want_b = a.clone().requires_grad_(), b.clone().requires_grad_()
    got, want = sd.sampled_dot(got_a, got_b, ia, ib), _gathered(want_a, want_b, ia, ib)
    assert got.grad_fn is not None and "SampledDot" in type(got.grad_fn).__name__  # the compiled path ran
    torch.testing.assert_close(got, want)
    got.backward(grad)
    want.backward(grad)
    torch.testing.assert_close(got_a.grad, want_a.grad)
    torch.testing.assert_close(got_b.grad, want_b.grad)


def test_other_dtypes_take_torchs_gathers():
    a, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    ia, ib = torch.tensor([0, 2, 2]), torch.tensor([5, 0, 1])
    out = sd.sampled_dot(a, b, ia, ib)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, _gathered(a, b, ia, ib))


@pytest.mark.skipif(sd.njit is None, reason="numba is not installed")
@pytest.mark.parametrize("name", ["autorec", "autorec_imp"])
def test_autorec_fits_the_same_model_through_either_path(comp_env, monkeypatch, name):
    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    cfg = {"epochs": 5, "hidden": 16, "l2": 5.0, "lr": 0.01, "batch_items": 16, "device": "cpu"}
    compiled = make_model(name, side_info(comp), cfg).fit(fit).predict(val)
    monkeypatch.setattr(sd, "_compiled", lambda *tensors: False)
    gathered = make_model(name, side_info(comp), cfg).fit(fit).predict(val)
    np.testing.assert_allclose(compiled, gathered, rtol=1e-4, atol=1e-4)
    assert np.std(compiled) > 0.05  # a model that learned something, not a constant


@pytest.mark.skipif(sd.njit is None, reason="numba is not installed")
def test_an_index_past_the_rows_is_refused_as_by_index_select():
    a, b = torch.randn(3, 4), torch.randn(6, 4)
    with pytest.raises(IndexError, match="ib holds indices outside"):
        sd.sampled_dot(a, b, torch.tensor([0, 1]), torch.tensor([2, 6]))
    with pytest.raises(IndexError, match="ia holds indices outside"):
        sd.sampled_dot(a, b, torch.tensor([-1, 1]), torch.tensor([2, 3]))
