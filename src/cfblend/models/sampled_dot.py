"""`sampled_dot`: the dot products of chosen pairs of rows of two matrices, `a[ia[e]] · b[ib[e]]` for every entry
e, with autograd: `autorec`'s decoder evaluated at the observed (item, user) cells only.

Written with torch's own ops it gathers both rows of every entry into two (entries x width) tensors,
multiplies and sums them, and its backward makes two more of that size and scatters them back: on an ml-1m
step of `autorec_imp` (256 items, about 50k ratings, 500 units) some 100 MB a tensor. Here forward and
backward are each one loop over the entries that reads the two rows in place and adds the gradients straight
into dense tables of the inputs' shapes: about 20 ms a step against about 110 ms (torch profiler, one thread,
one-off; `bench/scale.py` measures what it gains in a fit). The loops are serial, so their sums always run in
the same order: the same inputs give the same numbers. They run on the CPU for float32 tensors; elsewhere
(CUDA, other dtypes, no numba) torch's gathers do the same sums. The encoder's `EmbeddingBag` was written the
same way and gained nothing (12 ms a call either way: reading a random 2 KB row a rating is the cost, not the
ops around it), so it stays torch's.
"""

from __future__ import annotations

import numpy as np
import torch

from cfblend.models.jit import CACHE, njit

if njit is not None:
    @njit(cache=CACHE, fastmath=True)
    def _dot_forward(a, b, ia, ib, out):  # pragma: no cover - compiled
        width = a.shape[1]
        for e in range(ia.shape[0]):
            ra, rb = a[ia[e]], b[ib[e]]
            s = np.float32(0.0)
            for k in range(width):
                s += ra[k] * rb[k]
            out[e] = s

    @njit(cache=CACHE, fastmath=True)
    def _dot_backward(a, b, ia, ib, grad, grad_a, grad_b):  # pragma: no cover - compiled
        width = a.shape[1]
        for e in range(ia.shape[0]):
            g, i, j = grad[e], ia[e], ib[e]
            for k in range(width):
                grad_a[i, k] += g * b[j, k]
                grad_b[j, k] += g * a[i, k]


def _compiled(*tensors: torch.Tensor) -> bool:
    """Whether the loops here can take `tensors`: numba present, every tensor dense and on the CPU, the
    floating ones float32."""
    return njit is not None and all(t.device.type == "cpu" and not t.is_sparse
                                    and (t.dtype == torch.float32 or not t.is_floating_point()) for t in tensors)


class _SampledDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
        a, b, ia, ib = a.detach().contiguous(), b.detach().contiguous(), ia.contiguous(), ib.contiguous()
        out = torch.empty(len(ia), dtype=torch.float32)
        _dot_forward(a.numpy(), b.numpy(), ia.numpy(), ib.numpy(), out.numpy())
        ctx.save_for_backward(a, b, ia, ib)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, b, ia, ib = ctx.saved_tensors
        grad_a, grad_b = torch.zeros_like(a), torch.zeros_like(b)
        _dot_backward(a.numpy(), b.numpy(), ia.numpy(), ib.numpy(), grad.contiguous().numpy(), grad_a.numpy(),
                      grad_b.numpy())
        return grad_a, grad_b, None, None


def sampled_dot(a: torch.Tensor, b: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
    """`(a[ia] * b[ib]).sum(1)` without building `a[ia]` and `b[ib]` (on the CPU, for float32). The gradients of
    `a` and `b` are dense, of their shapes."""
    if not _compiled(a, b, ia, ib):
        return (a.index_select(0, ia) * b.index_select(0, ib)).sum(1)
    for rows, idx, name in ((a, ia, "ia"), (b, ib, "ib")):  # the loops do not check their indices: as index_select
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= len(rows)):
            raise IndexError(f"sampled_dot: {name} holds indices outside [0, {len(rows)})")
    return _SampledDot.apply(a, b, ia.to(torch.int64), ib.to(torch.int64))


__all__ = ["sampled_dot"]
