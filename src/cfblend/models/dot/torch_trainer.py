"""The dot model's torch trainers: `fused` (hand-written gradients, Adam over one flat buffer; the
CUDA path) and `autograd` (the generic mini-batch loop, any optimiser; the reference)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from cfblend.models.dot.tables import copy_back, fill_tables, masks, schedule, table_rmse
from cfblend.models.torch_base import train_minibatch

if TYPE_CHECKING:
    from cfblend.models.dot.model import DotConfig, DotNet


def autograd_fit(net: DotNet, u: torch.Tensor, i: torch.Tensor, y: torch.Tensor, c: DotConfig,
                 gen: torch.Generator, monitor=None) -> dict[str, list[float]]:
    """Train `net` with autograd and a torch optimiser (adam, adamw or sgd); returns the seconds, training loss
    and (with `monitor` rows: user index, item index, rating) held-out RMSE of each epoch."""
    history: dict[str, list[float]] = {"epoch_seconds": [], "train_loss": [], "valid_rmse": []}

    @torch.no_grad()
    def epoch_end(loss: float) -> None:
        history["train_loss"].append(loss)
        if monitor is not None:
            net.eval()
            pred = net(monitor[0], monitor[1])[0]
            history["valid_rmse"].append(float(torch.sqrt(torch.mean((pred - monitor[2]) ** 2))))
            net.train()

    def step_loss(batch):
        bu, bi, by = batch
        pred, factors, biases = net(bu, bi)
        return (torch.mean((pred - by) ** 2) + c.wd * factors.pow(2).sum(1).mean()
                + c.bias_wd * biases.pow(2).sum(1).mean())

    history["epoch_seconds"] = train_minibatch(
        step_loss, list(net.parameters()), [u, i, y], epochs=c.epochs, batch_size=c.batch_size, lr=c.lr,
        generator=gen, optimizer=c.optimizer, one_cycle=c.one_cycle, desc="dot epochs", on_epoch_end=epoch_end)
    return history


@torch.no_grad()
def fused_adam_fit(net: DotNet, u: torch.Tensor, i: torch.Tensor, y: torch.Tensor, c: DotConfig,
                   gen: torch.Generator, monitor=None) -> dict[str, list[float]]:
    """Train `net` with hand-written gradients of the dot model's loss and Adam over one flat buffer.

    The same loss, optimiser (torch's Adam, one-cycle learning rate and beta1) and shuffling as the
    autograd loop, without building a graph per step: a step is a gather, a few element-wise ops,
    four `index_add_` scatters and one fused Adam kernel over all parameters, kept in one flat
    buffer. On a CPU this is several times faster than autograd at the small batches the model is
    tuned for, and it keeps large batches cheap on large data. Returns the seconds, training MSE and
    (with `monitor` rows) held-out RMSE of each epoch.
    """
    k = net.user.weight.shape[1]
    nu, ni = net.user.weight.shape[0], net.item.weight.shape[0]
    flat = torch.zeros(nu * (k + 2) + ni * (k + 2) + 1, device=u.device)
    U = flat[: nu * (k + 2)].view(nu, k + 2)
    V = flat[nu * (k + 2): -1].view(ni, k + 2)
    G = flat[-1:]
    fill_tables(net, U, V, G)
    grad = torch.zeros_like(flat)
    gU, gV, gG = grad[: nu * (k + 2)].view(nu, k + 2), grad[nu * (k + 2): -1].view(ni, k + 2), grad[-1:]
    mask_u, mask_v, reg_u, reg_v = (torch.from_numpy(a).to(u.device) for a in masks(k, c))
    # torch's fused Adam kernel wins on big tables; on small ones its per-step overhead dominates and
    # the same update written out (below) is faster.
    opt, m, v = None, torch.zeros_like(flat), torch.zeros_like(flat)
    if flat.numel() >= 1_000_000:
        flat_param = torch.nn.Parameter(flat)
        flat_param.grad = grad
        opt = torch.optim.Adam([flat_param], lr=c.lr, fused=True)
    lo, hi = c.y_range
    n = len(y)
    lrs, beta1s = schedule(c, n)
    step = 0
    history: dict[str, list[float]] = {"epoch_seconds": [], "train_loss": [], "valid_rmse": []}
    for _ in tqdm(range(c.epochs), desc="dot epochs", leave=False, disable=None):
        t0 = time.perf_counter()
        sq = torch.zeros((), device=u.device)
        perm = torch.randperm(n, generator=gen).to(u.device)
        for s in range(0, n, c.batch_size):
            idx = perm[s: s + c.batch_size]
            bu, bi, by = u[idx], i[idx], y[idx]
            B = len(idx)
            pu, qi = U[bu], V[bi]
            sig = torch.sigmoid(G + (pu * qi).sum(1))
            sq += ((lo + (hi - lo) * sig - by) ** 2).sum()
            e = (2.0 * (hi - lo) ** 2 / B) * (lo / (hi - lo) + sig - by / (hi - lo)) * (sig * (1 - sig))
            grad.zero_()  # dLoss/dx = 2/B (pred - y) (hi - lo) sig (1 - sig), pred = lo + (hi - lo) sig
            gU.index_add_(0, bu, torch.addcmul(e[:, None] * qi * mask_u, pu, reg_u, value=2.0 / B))
            gV.index_add_(0, bi, torch.addcmul(e[:, None] * pu * mask_v, qi, reg_v, value=2.0 / B))
            gG += e.sum()
            gU[0].zero_()  # the cold-start slot stays as it is (padding_idx)
            gV[0].zero_()
            lr, b1 = float(lrs[step]), float(beta1s[step])
            step += 1
            if opt is not None:
                opt.param_groups[0]["lr"], opt.param_groups[0]["betas"] = lr, (b1, 0.999)
                opt.step()
            else:  # Adam, as torch writes it
                m.mul_(b1).add_(grad, alpha=1 - b1)
                v.mul_(0.999).addcmul_(grad, grad, value=1 - 0.999)
                denom = (v / (1 - 0.999**step)).sqrt_().add_(1e-8)
                flat.addcdiv_(m, denom, value=-lr / (1 - b1**step))
        history["epoch_seconds"].append(time.perf_counter() - t0)
        history["train_loss"].append(float(sq) / n)
        if monitor is not None:
            history["valid_rmse"].append(table_rmse(U, V, G, monitor, c.y_range))
    copy_back(net, U, V, G)
    return history
