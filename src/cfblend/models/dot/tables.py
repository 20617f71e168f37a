"""What both fast trainers of the dot model build: the augmented tables, the column masks and L2
weights, the one-cycle schedule, and the copy of the trained tables back into the network.

Augmented tables: user row [p_u, b_u, 1] and item row [q_i, 1, b_i], so one dot product gives
p_u·q_i + b_u + b_i, and each side needs one gather and one scatter per step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from cfblend.models.dot.model import DotConfig, DotNet


def one_cycle_schedule(total: int, max_lr: float, pct_start: float = 0.3, div: float = 25.0,
                       final_div: float = 1e4, beta_hi: float = 0.95, beta_lo: float = 0.85):
    """Per-step learning rate and Adam beta1 of torch's `OneCycleLR` (cosine, two phases, default knobs)."""
    s = np.arange(total, dtype=np.float64)
    up_end = float(pct_start * total) - 1
    down_end = total - 1

    def cos(start, end, pct):
        return end + (start - end) / 2.0 * (np.cos(np.pi * pct) + 1)

    up = s <= up_end
    pct_up = np.where(up, s / max(up_end, 1e-12), 0.0)
    pct_down = np.where(up, 0.0, (s - up_end) / max(down_end - up_end, 1e-12))
    lr = np.where(up, cos(max_lr / div, max_lr, pct_up), cos(max_lr, max_lr / div / final_div, pct_down))
    beta1 = np.where(up, cos(beta_hi, beta_lo, pct_up), cos(beta_lo, beta_hi, pct_down))
    return lr, beta1


def schedule(c: DotConfig, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Learning rate and beta1 of every step of a fit on `n_rows` ratings (one-cycle, or constant)."""
    total = c.epochs * ((n_rows + c.batch_size - 1) // c.batch_size)
    if c.one_cycle:
        return one_cycle_schedule(total, c.lr)
    return np.full(total, c.lr), np.full(total, 0.9)


def masks(k: int, c: DotConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which columns move, and the L2 weight of each column, for the user and item tables (float32)."""
    mask_u, mask_v = np.ones(k + 2, np.float32), np.ones(k + 2, np.float32)
    mask_u[k + 1] = mask_v[k] = 0.0  # the constant columns never move
    reg_u, reg_v = np.full(k + 2, c.wd, np.float32), np.full(k + 2, c.wd, np.float32)
    reg_u[k], reg_u[k + 1], reg_v[k], reg_v[k + 1] = c.bias_wd, 0.0, 0.0, c.bias_wd
    return mask_u, mask_v, reg_u, reg_v


@torch.no_grad()
def fill_tables(net: DotNet, U: torch.Tensor, V: torch.Tensor, G: torch.Tensor) -> None:
    """Write the network's factors and biases into the augmented tables U, V and the global bias G."""
    k = net.user.weight.shape[1]
    U[:, :k], U[:, k], U[:, k + 1] = net.user.weight, net.user_bias.weight[:, 0], 1.0
    V[:, :k], V[:, k], V[:, k + 1] = net.item.weight, 1.0, net.item_bias.weight[:, 0]
    G.copy_(net.global_bias.detach().reshape(1))


@torch.no_grad()
def copy_back(net: DotNet, U: torch.Tensor, V: torch.Tensor, G: torch.Tensor) -> None:
    """Write trained augmented tables back into the network's embeddings and global bias."""
    k = net.user.weight.shape[1]
    net.user.weight.copy_(U[:, :k])
    net.user_bias.weight.copy_(U[:, k:k + 1])
    net.item.weight.copy_(V[:, :k])
    net.item_bias.weight.copy_(V[:, k + 1:])
    net.global_bias.copy_(G[0])


@torch.no_grad()
def table_rmse(U, V, G, monitor: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
               y_range: tuple[float, float]) -> float | None:
    """RMSE of the augmented tables (NumPy or torch) on monitored rows (user index, item index, rating),
    clipped to nothing: the learning curve of the raw model. None when nothing is monitored."""
    if monitor is None:
        return None
    U, V, G = (torch.as_tensor(t) for t in (U, V, G))
    u, i, y = monitor
    lo, hi = y_range
    pred = lo + (hi - lo) * torch.sigmoid(G[0] + (U[u] * V[i]).sum(1))
    return float(torch.sqrt(torch.mean((pred - y) ** 2)))
