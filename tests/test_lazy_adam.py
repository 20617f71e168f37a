"""`LazyAdam` takes the same steps as `torch.optim.SparseAdam` (repeated rows summed, untouched rows
left alone, a padding row kept at zero), and the mini-batch loop uses it for sparse embeddings on the CPU."""

from __future__ import annotations

import pytest
import torch

from cfblend.models import torch_base
from cfblend.models.lazy_adam import LazyAdam


def _run(opt_cls, steps: int = 5) -> torch.Tensor:
    torch.manual_seed(0)
    emb = torch.nn.Embedding(50, 6, padding_idx=0, sparse=True)
    opt = opt_cls([emb.weight], lr=0.05, betas=(0.8, 0.99))
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(0, 20, (64,), generator=gen)  # rows 20..49 never touched; many repeats
        target = torch.randn(64, 6, generator=gen)
        opt.zero_grad()
        ((emb(idx) - target) ** 2).sum().backward()
        opt.step()
    return emb.weight.detach().clone()


def test_lazy_adam_takes_sparse_adams_steps():
    torch.manual_seed(0)
    start = torch.nn.Embedding(50, 6, padding_idx=0, sparse=True).weight.detach().clone()
    lazy, reference = _run(LazyAdam), _run(torch.optim.SparseAdam)
    assert torch.allclose(lazy, reference, atol=1e-5)
    assert not torch.allclose(lazy[1:20], start[1:20])  # it moved the touched rows
    assert torch.equal(lazy[20:], start[20:])  # and no other
    assert torch.equal(lazy[0], torch.zeros(6))  # the padding (cold-start) row stays zero


def test_lazy_adam_refuses_a_dense_gradient():
    w = torch.nn.Parameter(torch.zeros(4, 2))
    opt = LazyAdam([w])
    w.sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients only"):
        opt.step()


def test_the_minibatch_loop_uses_it_for_sparse_embeddings_on_the_cpu(monkeypatch):
    made = []
    monkeypatch.setattr(torch_base, "LazyAdam", type("Spy", (LazyAdam,), {
        "__init__": lambda self, *a, **k: made.append(1) or LazyAdam.__init__(self, *a, **k)}))
    emb, bias = torch.nn.Embedding(10, 3, sparse=True), torch.nn.Parameter(torch.zeros(1))
    idx, y = torch.arange(10), torch.ones(10)
    torch_base.train_minibatch(lambda b: ((emb(b[0]).sum(1) + bias - b[1]) ** 2).mean(), [bias], [idx, y], epochs=1,
                               batch_size=4, lr=0.01, generator=torch.Generator().manual_seed(0),
                               sparse_params=[emb.weight])
    assert made == [1]


def test_for_params_picks_lazy_adam_where_supported_and_sparse_adam_elsewhere():
    cpu32 = torch.nn.Embedding(4, 2, sparse=True).weight
    cpu64 = torch.nn.Embedding(4, 2, sparse=True).double().weight
    assert type(LazyAdam.for_params([cpu32], lr=0.01)) is LazyAdam
    assert type(LazyAdam.for_params([cpu64], lr=0.01)) is torch.optim.SparseAdam
