"""`LazyAdam`: `torch.optim.SparseAdam`'s update for embeddings with sparse gradients, done by one
numba loop per table on the CPU.

SparseAdam coalesces each sparse gradient (a sort and a reduction) and then runs about ten tensor
operations over the touched rows, per table and step; with the sparse tables `nn` had then that was
30 of the 78 ms of a step of 8192 ratings at 25M scale (torch profiler, embeddings a twentieth of
fastai's widths). Here a table's step is one pass: the rows of the batch are summed per distinct
index through a slot array (no sort), and each distinct row gets Adam's update with the same bias
correction as SparseAdam (only the rows a step touches move; the step count is global). The loop releases
the GIL, so a step's tables are updated side by side on torch's intra-op threads (both cores here; one when
two folds run side by side as one-thread processes). Off the CPU,
or without numba, `LazyAdam.for_params` gives SparseAdam itself.

The loop is compiled with `error_model="numpy"`: under numba's default (Python's), every division checks
for a zero divisor, which keeps LLVM from vectorising the row update; with the check gone, the square
roots and divisions run eight or sixteen at a time (a step of 32,768 rows of a 162k x 51 table: 20 ms
-> 8 ms). The divisor is never zero (eps > 0).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from cfblend.models.jit import CACHE as _CACHE
from cfblend.models.jit import njit


def _lazy_adam_py(W, M, V, idx, vals, slot, acc, uniq, step_size, b1, b2, eps):
    """Sum `vals` per distinct row of `idx` (via `slot`, all -1 between calls), then Adam on those rows.

    The per-row update repeats the dot trainer's `_adam_rows` (`models/dot/numba_trainer.py`) on
    purpose: numba's on-disk cache checks only the file of the function it compiled, so a kernel shared
    across the two files would leave the other file's cached code stale after an edit (seen: a changed
    shared row update kept running in the dot trainer until its own file changed)."""
    d = W.shape[1]
    n = 0
    for r in range(idx.shape[0]):
        a = idx[r]
        s = slot[a]
        if s < 0:
            s = n
            slot[a] = s
            uniq[s] = a
            n += 1
            for k in range(d):
                acc[s, k] = vals[r, k]
        else:
            for k in range(d):
                acc[s, k] += vals[r, k]
    one = W.dtype.type(1)
    step_size, b1, b2, eps = W.dtype.type(step_size), W.dtype.type(b1), W.dtype.type(b2), W.dtype.type(eps)
    c1, c2 = one - b1, one - b2
    for s in range(n):
        a = uniq[s]
        slot[a] = -1
        for k in range(d):
            g = acc[s, k]
            m = b1 * M[a, k] + c1 * g
            v = b2 * V[a, k] + c2 * g * g
            M[a, k] = m
            V[a, k] = v
            W[a, k] -= step_size * m / (np.sqrt(v) + eps)


_lazy_adam = njit(cache=_CACHE, fastmath=True, nogil=True, error_model="numpy")(_lazy_adam_py) if njit else None


class LazyAdam(torch.optim.Optimizer):
    """Adam for parameters with sparse gradients (embeddings built with `sparse=True`), updating only
    the rows a step touched, as `torch.optim.SparseAdam` does, in one compiled pass per table on the
    CPU. Takes `lr`, `betas` and `eps` (so `OneCycleLR` can cycle the learning rate and beta1)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        self._pool: ThreadPoolExecutor | None = None
        self._workers = 0

    @staticmethod
    def supported(params) -> bool:
        """True when every parameter is a 2-D float32 CPU tensor and numba is there."""
        return _lazy_adam is not None and all(p.device.type == "cpu" and p.dtype == torch.float32 and p.dim() == 2
                                              for p in params)

    @classmethod
    def for_params(cls, params, lr: float) -> torch.optim.Optimizer:
        """SparseAdam's row update for `params`: this class where `supported`, `torch.optim.SparseAdam` elsewhere."""
        params = list(params)
        return (cls if cls.supported(params) else torch.optim.SparseAdam)(params, lr=lr)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a (sparse) gradient."""
        jobs = []
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not g.is_sparse:
                    raise RuntimeError("LazyAdam takes sparse gradients only (an embedding built with sparse=True)")
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                    st["slot"] = np.full(p.shape[0], -1, dtype=np.int64)
                st["step"] += 1
                idx = g._indices()[0].contiguous().numpy()
                vals = g._values().reshape(len(idx), -1).contiguous().numpy()
                if st.get("acc") is None or st["acc"].shape[0] < len(idx):
                    st["acc"] = np.empty((len(idx), p.shape[1]), dtype=np.float32)
                    st["uniq"] = np.empty(len(idx), dtype=np.int64)
                t = st["step"]
                step_size = group["lr"] * math.sqrt(1 - b2**t) / (1 - b1**t)
                jobs.append((p.detach().numpy(), st["exp_avg"].numpy(), st["exp_avg_sq"].numpy(), idx, vals,
                             st["slot"], st["acc"], st["uniq"], step_size, b1, b2, group["eps"]))
        self._run(jobs)

    def _run(self, jobs: list[tuple]) -> None:
        """The tables' updates, on torch's intra-op thread count at once (the loop releases the GIL), largest first."""
        workers = min(len(jobs), torch.get_num_threads())
        if workers < 2:
            for job in jobs:
                _lazy_adam(*job)
            return
        if self._workers != workers:
            self._pool, self._workers = ThreadPoolExecutor(workers, thread_name_prefix="lazy-adam"), workers
        jobs.sort(key=lambda job: -job[4].size)
        for f in [self._pool.submit(_lazy_adam, *job) for job in jobs]:
            f.result()
