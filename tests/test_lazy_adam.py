"""`LazyAdam` takes the same steps as `torch.optim.SparseAdam` (repeated rows summed, untouched rows
left alone, a padding row kept at zero, several tables updated side by side), and the mini-batch loop uses it
for sparse embeddings on the CPU."""

from __future__ import annotations

import pytest
import torch

from cfblend.models import torch_base
from cfblend.models.lazy_adam import LazyAdam

SHAPES = [(50, 6), (30, 3), (8, 1)]  # several tables: with two threads they are updated side by side


def _run(opt_cls, steps: int = 5) -> list[torch.Tensor]:
    torch.manual_seed(0)
    embs = [torch.nn.Embedding(n, d, padding_idx=0, sparse=True) for n, d in SHAPES]
    opt = opt_cls([e.weight for e in embs], lr=0.05, betas=(0.8, 0.99))
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        opt.zero_grad()
        for e in embs:
            idx = torch.randint(0, 20 if e.num_embeddings > 20 else e.num_embeddings, (64,), generator=gen)
            target = torch.randn(64, e.embedding_dim, generator=gen)  # rows 20.. never touched; many repeats
            ((e(idx) - target) ** 2).sum().backward()
        opt.step()
    return [e.weight.detach().clone() for e in embs]


@pytest.mark.parametrize("threads", [1, 2])
def test_lazy_adam_takes_sparse_adams_steps(threads, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    torch.manual_seed(0)
    start = torch.nn.Embedding(*SHAPES[0], padding_idx=0, sparse=True).weight.detach().clone()
    lazy, reference = _run(LazyAdam), _run(torch.optim.SparseAdam)
    for a, b in zip(lazy, reference, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
        assert torch.equal(a[0], torch.zeros(a.shape[1]))  # the padding (cold-start) row stays zero
    assert not torch.allclose(lazy[0][1:20], start[1:20])  # it moved the touched rows
    assert torch.equal(lazy[0][20:], start[20:])  # and no other


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
