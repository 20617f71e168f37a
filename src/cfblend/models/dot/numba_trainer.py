"""The dot model's CPU trainer: a training loop compiled with numba, per-row gradients, lazy (sparse) Adam.

The loss is the dot model's (squared error through the sigmoid, per-rating L2 on the factors and
biases used), on the same augmented tables as the torch trainer: user row [p_u, b_u, 1], item
row [q_i, 1, b_i]. Adam is *lazy*: only the rows a mini-batch touches get their moments and
values updated, as in `torch.optim.SparseAdam`, so a step costs O(batch), not O(table). On a CPU
this removes the per-step Python and dense-optimiser overhead that bounds the torch trainer at
small batches; on large data it needs no dense pass over 160k x 60k-row tables. CPU only.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from cfblend.models.dot.tables import copy_back, fill_tables, masks, schedule, table_rmse

if TYPE_CHECKING:
    from cfblend.models.dot.model import DotConfig, DotNet

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is in requirements.txt
    njit = None

# numba caches compiled code beside this file; inside a zip (the Kaggle kernel) it cannot.
_CACHE = os.path.isfile(__file__)


def _adam_rows_py(T, M, S, Gr, touched, n_touched, seen, step_size, b1, b2, inv_bc2, eps):
    """Adam on the rows a step touched (row 0, the cold-start slot, never moves); clears their grads."""
    c1, c2 = 1 - b1, 1 - b2
    for t in range(n_touched):
        a = touched[t]
        seen[a] = False
        if a == 0:
            Gr[a, :] = 0
            continue
        for k in range(T.shape[1]):
            g = Gr[a, k]
            Gr[a, k] = 0
            m = b1 * M[a, k] + c1 * g
            s = b2 * S[a, k] + c2 * g * g
            M[a, k] = m
            S[a, k] = s
            T[a, k] -= step_size * m / (np.sqrt(s * inv_bc2) + eps)


def _seed_py(seed):
    np.random.seed(seed)


def _lazy_adam_epoch(U, V, G, state, moments, grads, seen_u, seen_v, touched_u, touched_v, u, i, y, step, lrs, b1s,
                     B, lo, hi, reg_u, reg_v, mask_u, mask_v):
    """One epoch over the rows in a fresh random order; returns the global step reached and the epoch's
    training MSE (each row's error before its step). `state` holds the global bias's Adam moments."""
    K = U.shape[1]
    mU, vU, mV, vV = moments
    gU, gV = grads
    b2, eps, span = np.float32(0.999), np.float32(1e-8), hi - lo
    one, two = np.float32(1.0), np.float32(2.0)
    ru = np.empty_like(reg_u)
    rv = np.empty_like(reg_v)
    n = len(y)
    sq = 0.0
    perm = np.random.permutation(n)
    for s in range(0, n, B):
        end = min(s + B, n)
        nb = end - s
        inv = two / np.float32(nb)
        for k in range(K):
            ru[k] = inv * reg_u[k]
            rv[k] = inv * reg_v[k]
        ntu, ntv, gsum = 0, 0, np.float32(0.0)
        for r in range(s, end):
            row = perm[r]
            a, b = u[row], i[row]
            x = G[0]
            for k in range(K):
                x += U[a, k] * V[b, k]
            sig = one / (one + np.exp(-x))
            diff = lo + span * sig - y[row]
            sq += diff * diff
            e = inv * diff * span * sig * (one - sig)
            gsum += e
            if not seen_u[a]:
                seen_u[a] = True
                touched_u[ntu] = a
                ntu += 1
            if not seen_v[b]:
                seen_v[b] = True
                touched_v[ntv] = b
                ntv += 1
            for k in range(K):
                pu, qi = U[a, k], V[b, k]
                gU[a, k] += mask_u[k] * e * qi + ru[k] * pu
                gV[b, k] += mask_v[k] * e * pu + rv[k] * qi
        lr, b1 = lrs[step], b1s[step]
        step += 1
        step_size = lr / (one - b1**step)
        inv_bc2 = one / (one - b2**step)
        _adam_rows(U, mU, vU, gU, touched_u, ntu, seen_u, step_size, b1, b2, inv_bc2, eps)
        _adam_rows(V, mV, vV, gV, touched_v, ntv, seen_v, step_size, b1, b2, inv_bc2, eps)
        state[0] = b1 * state[0] + (one - b1) * gsum
        state[1] = b2 * state[1] + (one - b2) * gsum * gsum
        G[0] -= step_size * state[0] / (np.sqrt(state[1] * inv_bc2) + eps)
    return step, sq / n


_adam_rows = njit(cache=_CACHE, fastmath=True, nogil=True)(_adam_rows_py) if njit else None
lazy_adam_epoch = njit(cache=_CACHE, fastmath=True, nogil=True)(_lazy_adam_epoch) if njit else None
_seed = njit(cache=_CACHE)(_seed_py) if njit else None  # numba's generator is its own: seed it inside numba


def available() -> bool:
    """True when numba is importable."""
    return lazy_adam_epoch is not None


def numba_fit(net: DotNet, u: torch.Tensor, i: torch.Tensor, y: torch.Tensor, c: DotConfig,
              monitor: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> dict[str, list[float]]:
    """Train `net` with the compiled lazy-Adam loop (CPU), one compiled call per epoch under a progress bar;
    returns each epoch's seconds, training MSE and (with `monitor` rows) held-out RMSE."""
    if not available():
        raise RuntimeError("trainer 'numba' needs numba (pip install -r requirements.txt)")
    if u.device.type != "cpu":
        raise ValueError("trainer 'numba' runs on the CPU; use trainer 'fused' on CUDA")
    k = net.user.weight.shape[1]
    U = np.empty((net.user.weight.shape[0], k + 2), np.float32)
    V = np.empty((net.item.weight.shape[0], k + 2), np.float32)
    G = np.empty(1, np.float32)
    fill_tables(net, torch.from_numpy(U), torch.from_numpy(V), torch.from_numpy(G))
    lrs, b1s = schedule(c, len(y))
    mask_u, mask_v, reg_u, reg_v = masks(k, c)
    lo, hi = c.y_range
    moments = (np.zeros_like(U), np.zeros_like(U), np.zeros_like(V), np.zeros_like(V))
    grads = (np.zeros_like(U), np.zeros_like(V))
    seen_u, seen_v = np.zeros(U.shape[0], np.bool_), np.zeros(V.shape[0], np.bool_)
    touched_u, touched_v = np.empty(c.batch_size, np.int64), np.empty(c.batch_size, np.int64)
    state = np.zeros(2, np.float32)
    un, inp, yn = u.numpy(), i.numpy(), y.numpy()
    lrs, b1s = lrs.astype(np.float32), b1s.astype(np.float32)
    _seed(c.seed)
    step, seconds, losses, valid = 0, [], [], []
    bar = tqdm(range(c.epochs), desc="dot epochs", leave=False, disable=None)
    for _ in bar:
        t0 = time.perf_counter()
        step, mse = lazy_adam_epoch(U, V, G, state, moments, grads, seen_u, seen_v, touched_u, touched_v, un, inp,
                                    yn, step, lrs, b1s, c.batch_size, np.float32(lo), np.float32(hi), reg_u, reg_v,
                                    mask_u, mask_v)
        seconds.append(time.perf_counter() - t0)
        losses.append(float(mse))
        if monitor is not None:
            valid.append(table_rmse(U, V, G, monitor, c.y_range))
        bar.set_postfix(mse=f"{mse:.4f}")
    copy_back(net, torch.from_numpy(U), torch.from_numpy(V), torch.from_numpy(G))
    return {"epoch_seconds": seconds, "train_loss": losses, "valid_rmse": valid}
