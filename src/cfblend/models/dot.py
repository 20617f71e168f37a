"""The dot-product model: user and item factors plus biases, squashed into `y_range`.

prediction = lo + (hi - lo) * sigmoid(g + b_u + b_i + p_u · q_i)

Factors start from a normal with a small std, biases at zero and `g` at the logit of the
training mean. Weight decay is the classic per-rating L2 of matrix factorisation:
`wd * (|p_u|² + |q_i|²) + bias_wd * (b_u² + b_i²)` is added for each rating in the batch, so a
factor is shrunk in proportion to how often it is used. Trained with Adam (or AdamW/SGD) under a
one-cycle schedule.

Cold start: an id never seen in training maps to slot 0, whose factors and bias are held at
zero. An unseen user is predicted from g + b_i (the item's bias alone), an unseen item from
g + b_u, and a pair of both unseen from g, the training mean.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from cfblend.encoding import IdIndex
from cfblend.models.base import Model, ModelConfig, SideInfo
from cfblend.torch_utils import load_state, resolve_device, save_state, seed_everything, train_minibatch


@dataclass
class DotConfig(ModelConfig):
    """Hyper-parameters of the dot-product model."""

    factors: int = 20
    epochs: int = 12
    lr: float = 5e-3
    wd: float = 0.12
    bias_wd: float = 0.015
    batch_size: int = 256
    optimizer: str = "adam"
    one_cycle: bool = True
    init_std: float = 0.01
    y_range: tuple[float, float] = (0.0, 5.5)
    trainer: str = "auto"  # "auto": numba on the CPU (when installed), else fused;
    # "fused": torch, hand-written gradients + dense Adam (CPU or CUDA);
    # "numba": compiled per-row loop with lazy Adam (CPU, fastest); "autograd": the generic torch loop
    device: str = "auto"


class DotNet(nn.Module):
    """Embedding tables and the squashed dot product."""

    def __init__(self, n_users: int, n_items: int, factors: int, y_range: tuple[float, float],
                 init_std: float = 0.01, global_logit: float = 0.0):
        super().__init__()
        self.y_range = y_range
        self.user = nn.Embedding(n_users, factors, padding_idx=0)
        self.item = nn.Embedding(n_items, factors, padding_idx=0)
        self.user_bias = nn.Embedding(n_users, 1, padding_idx=0)
        self.item_bias = nn.Embedding(n_items, 1, padding_idx=0)
        self.global_bias = nn.Parameter(torch.tensor(float(global_logit)))
        with torch.no_grad():
            for e in (self.user, self.item):
                e.weight.normal_(0.0, init_std)
                e.weight[0].zero_()
            self.user_bias.weight.zero_()
            self.item_bias.weight.zero_()

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predictions, plus the factors and biases used (for the per-rating L2)."""
        pu, qi = self.user(u), self.item(i)
        b = torch.cat([self.user_bias(u), self.item_bias(i)], dim=1)
        x = self.global_bias + b.sum(1) + (pu * qi).sum(1)
        lo, hi = self.y_range
        return lo + (hi - lo) * torch.sigmoid(x), torch.cat([pu, qi], 1), b


class DotModel(Model):
    """Biased matrix factorisation with a sigmoid output range (fastai's `EmbeddingDotBias`)."""

    config_cls = DotConfig
    suffix = ".pt"
    cacheable = True  # the GBM's features reuse the fold models

    def fit(self, train: pd.DataFrame) -> DotModel:
        c: DotConfig = self.config  # type: ignore[assignment]
        gen = seed_everything(c.seed)
        dev = resolve_device(c.device)
        self.users_, self.items_ = IdIndex(train["user_id"]), IdIndex(train["item_id"])
        lo, hi = c.y_range
        mean = float(train["rating"].mean())
        frac = min(max((mean - lo) / (hi - lo), 1e-3), 1 - 1e-3)
        self.net = DotNet(len(self.users_), len(self.items_), c.factors, c.y_range, c.init_std,
                          math.log(frac / (1 - frac))).to(dev)
        u = torch.as_tensor(self.users_(train["user_id"]), device=dev)
        i = torch.as_tensor(self.items_(train["item_id"]), device=dev)
        y = torch.tensor(train["rating"].to_numpy(np.float32), device=dev)

        def step_loss(batch):
            bu, bi, by = batch
            pred, factors, biases = self.net(bu, bi)
            return (torch.mean((pred - by) ** 2) + c.wd * factors.pow(2).sum(1).mean()
                    + c.bias_wd * biases.pow(2).sum(1).mean())

        self.net.train()
        trainer = c.trainer
        if trainer == "auto":
            from cfblend.models import dot_numba

            trainer = "numba" if dev.type == "cpu" and dot_numba.available() and c.optimizer == "adam" else "fused"
        if trainer == "numba" and c.optimizer == "adam":
            self.epoch_seconds_ = numba_fit(self.net, u, i, y, c)
        elif trainer == "fused" and c.optimizer == "adam":
            self.epoch_seconds_ = fused_adam_fit(self.net, u, i, y, c, gen)
        elif trainer in ("fused", "autograd"):
            train_minibatch(step_loss, list(self.net.parameters()), [u, i, y], epochs=c.epochs,
                            batch_size=c.batch_size, lr=c.lr, generator=gen, optimizer=c.optimizer,
                            one_cycle=c.one_cycle, desc="dot epochs")
        else:
            raise ValueError(f"unknown trainer {c.trainer!r}; use auto, fused, numba or autograd")
        self.net.eval()
        return self

    @torch.no_grad()
    def predict(self, df: pd.DataFrame) -> np.ndarray:
        dev = self.net.global_bias.device
        u = torch.as_tensor(self.users_(df["user_id"]), device=dev)
        i = torch.as_tensor(self.items_(df["item_id"]), device=dev)
        out = [self.net(u[s: s + 65536], i[s: s + 65536])[0] for s in range(0, len(u), 65536)]
        p = torch.cat(out).double().cpu().numpy() if out else np.zeros(0)
        lo, hi = self.side.rating_scale
        return np.clip(p, lo, hi)

    @torch.no_grad()
    def embeddings(self, kind: str, ids) -> tuple[np.ndarray, np.ndarray]:
        """Learned factors and biases of users or items (`kind`), zeros for unseen ids."""
        index, table, bias = ((self.users_, self.net.user, self.net.user_bias) if kind == "user"
                              else (self.items_, self.net.item, self.net.item_bias))
        idx = torch.as_tensor(index(ids), device=table.weight.device)
        return table(idx).cpu().numpy(), bias(idx)[:, 0].cpu().numpy()

    def save(self, path: Path) -> None:
        save_state(path, self.config, self.net, users=self.users_.ids, items=self.items_.ids)

    @classmethod
    def load(cls, path: Path, side: SideInfo) -> DotModel:
        state = load_state(path)
        c = cls.config_cls.from_dict(state["config"])
        m = cls(c, side)
        m.users_, m.items_ = IdIndex(state["users"]), IdIndex(state["items"])
        m.net = DotNet(len(m.users_), len(m.items_), c.factors, c.y_range)
        m.net.load_state_dict(state["net"])
        m.net.to(resolve_device(c.device)).eval()
        return m


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


def _augmented(net: DotNet) -> tuple[np.ndarray, np.ndarray, int]:
    """User rows [p_u, b_u, 1] and item rows [q_i, 1, b_i]: one dot product gives p·q + b_u + b_i."""
    k = net.user.weight.shape[1]
    with torch.no_grad():
        U = torch.cat([net.user.weight, net.user_bias.weight, torch.ones_like(net.user_bias.weight)], 1)
        V = torch.cat([net.item.weight, torch.ones_like(net.item_bias.weight), net.item_bias.weight], 1)
    return U.cpu().numpy().astype(np.float32), V.cpu().numpy().astype(np.float32), k


def _masks(k: int, c: DotConfig) -> tuple[np.ndarray, ...]:
    """Which columns move, and the L2 weight of each column, for the user and item tables."""
    mask_u, mask_v = np.ones(k + 2, np.float32), np.ones(k + 2, np.float32)
    mask_u[k + 1] = mask_v[k] = 0.0  # the constant columns never move
    reg_u, reg_v = np.full(k + 2, c.wd, np.float32), np.full(k + 2, c.wd, np.float32)
    reg_u[k], reg_u[k + 1], reg_v[k], reg_v[k + 1] = c.bias_wd, 0.0, 0.0, c.bias_wd
    return mask_u, mask_v, reg_u, reg_v


def numba_fit(net: DotNet, u: torch.Tensor, i: torch.Tensor, y: torch.Tensor, c: DotConfig) -> list[float]:
    """Train with the compiled lazy-Adam loop of `dot_numba` (CPU); copy the result into `net`."""
    from cfblend.models import dot_numba

    if not dot_numba.available():
        raise RuntimeError("trainer 'numba' needs numba (pip install -r requirements.txt)")
    if u.device.type != "cpu":
        raise ValueError("trainer 'numba' runs on the CPU; use trainer 'fused' on CUDA")
    U, V, k = _augmented(net)
    G = np.array([float(net.global_bias.detach())], dtype=np.float32)
    n = len(y)
    total = c.epochs * ((n + c.batch_size - 1) // c.batch_size)
    lrs, b1s = one_cycle_schedule(total, c.lr) if c.one_cycle else (np.full(total, c.lr), np.full(total, 0.9))
    mask_u, mask_v, reg_u, reg_v = _masks(k, c)
    lo, hi = c.y_range
    t0 = time.perf_counter()
    dot_numba.lazy_adam_train(U, V, G, u.numpy(), i.numpy(), y.numpy(), c.seed, c.epochs, lrs.astype(np.float32),
                              b1s.astype(np.float32), c.batch_size, np.float32(lo), np.float32(hi), reg_u, reg_v,
                              mask_u, mask_v)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        net.user.weight.copy_(torch.from_numpy(U[:, :k]))
        net.user_bias.weight.copy_(torch.from_numpy(U[:, k:k + 1]))
        net.item.weight.copy_(torch.from_numpy(V[:, :k]))
        net.item_bias.weight.copy_(torch.from_numpy(V[:, k + 1:]))
        net.global_bias.fill_(float(G[0]))
    return [seconds / c.epochs] * c.epochs


@torch.no_grad()
def fused_adam_fit(net: DotNet, u: torch.Tensor, i: torch.Tensor, y: torch.Tensor, c: DotConfig,
                   gen: torch.Generator) -> list[float]:
    """Train `net` with hand-written gradients of the dot model's loss and Adam over one flat buffer.

    The same loss, optimiser (torch's Adam, one-cycle learning rate and beta1) and shuffling as the
    autograd loop, without building a graph per step: a step is a gather, a few element-wise ops,
    four `index_add_` scatters and one fused Adam kernel over all parameters, kept in one flat
    buffer. On a CPU this is several times faster than autograd at the small batches the model is
    tuned for, and it keeps large batches cheap on large data. Returns the seconds of each epoch.
    """
    k = net.user.weight.shape[1]
    nu, ni = net.user.weight.shape[0], net.item.weight.shape[0]
    # Augmented tables: user row [p_u, b_u, 1] and item row [q_i, 1, b_i], so one dot product gives
    # p_u·q_i + b_u + b_i, and each side needs one gather and one scatter per step.
    flat = torch.zeros(nu * (k + 2) + ni * (k + 2) + 1, device=u.device)
    U = flat[: nu * (k + 2)].view(nu, k + 2)
    V = flat[nu * (k + 2): -1].view(ni, k + 2)
    G = flat[-1:]
    U[:, :k], U[:, k], U[:, k + 1] = net.user.weight, net.user_bias.weight[:, 0], 1.0
    V[:, :k], V[:, k], V[:, k + 1] = net.item.weight, 1.0, net.item_bias.weight[:, 0]
    G.copy_(net.global_bias.detach().reshape(1))
    grad = torch.zeros_like(flat)
    gU, gV, gG = grad[: nu * (k + 2)].view(nu, k + 2), grad[nu * (k + 2): -1].view(ni, k + 2), grad[-1:]
    ones = torch.ones(k + 2, device=u.device)
    mask_u, mask_v = ones.clone(), ones.clone()
    mask_u[k + 1], mask_v[k] = 0.0, 0.0  # the constant columns never move
    reg_u, reg_v = torch.full((k + 2,), c.wd, device=u.device), torch.full((k + 2,), c.wd, device=u.device)
    reg_u[k], reg_u[k + 1], reg_v[k], reg_v[k + 1] = c.bias_wd, 0.0, 0.0, c.bias_wd
    # torch's fused Adam kernel wins on big tables; on small ones its per-step overhead dominates and
    # the same update written out (below) is faster.
    opt, m, v = None, torch.zeros_like(flat), torch.zeros_like(flat)
    if flat.numel() >= 1_000_000:
        flat_param = torch.nn.Parameter(flat)
        flat_param.grad = grad
        opt = torch.optim.Adam([flat_param], lr=c.lr, fused=True)
    lo, hi = c.y_range
    n = len(y)
    steps_per_epoch = (n + c.batch_size - 1) // c.batch_size
    total = c.epochs * steps_per_epoch
    if c.one_cycle:
        lrs, beta1s = one_cycle_schedule(total, c.lr)
    else:
        lrs, beta1s = np.full(total, c.lr), np.full(total, 0.9)
    step = 0
    epoch_seconds = []
    for _ in tqdm(range(c.epochs), desc="dot epochs", leave=False, disable=None):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen).to(u.device)
        for s in range(0, n, c.batch_size):
            idx = perm[s: s + c.batch_size]
            bu, bi, by = u[idx], i[idx], y[idx]
            B = len(idx)
            pu, qi = U[bu], V[bi]
            sig = torch.sigmoid(G + (pu * qi).sum(1))
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
        epoch_seconds.append(time.perf_counter() - t0)
    net.user.weight.copy_(U[:, :k])
    net.user_bias.weight.copy_(U[:, k:k + 1])
    net.item.weight.copy_(V[:, :k])
    net.item_bias.weight.copy_(V[:, k + 1:])
    net.global_bias.copy_(G[0])
    return epoch_seconds
