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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from cfblend.encoding import IdIndex
from cfblend.io import atomic_path
from cfblend.models.base import Model, ModelConfig, SideInfo
from cfblend.torch_utils import resolve_device, seed_everything, train_minibatch


@dataclass
class DotConfig(ModelConfig):
    """Hyper-parameters of the dot-product model."""

    factors: int = 20
    epochs: int = 20
    lr: float = 3e-3
    wd: float = 0.12
    bias_wd: float = 0.015
    batch_size: int = 256
    optimizer: str = "adam"
    one_cycle: bool = True
    init_std: float = 0.01
    y_range: tuple[float, float] = (0.0, 5.5)
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
        train_minibatch(step_loss, list(self.net.parameters()), [u, i, y], epochs=c.epochs,
                        batch_size=c.batch_size, lr=c.lr, generator=gen, optimizer=c.optimizer,
                        one_cycle=c.one_cycle, desc="dot epochs")
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
        state = {"config": self.config.to_dict(), "users": self.users_.ids, "items": self.items_.ids,
                 "net": {k: v.cpu() for k, v in self.net.state_dict().items()}}
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path: Path, side: SideInfo) -> DotModel:
        state = torch.load(path, map_location="cpu", weights_only=False)
        c = cls.config_cls.from_dict(state["config"])
        m = cls(c, side)
        m.users_, m.items_ = IdIndex(state["users"]), IdIndex(state["items"])
        m.net = DotNet(len(m.users_), len(m.items_), c.factors, c.y_range)
        m.net.load_state_dict(state["net"])
        m.net.to(resolve_device(c.device)).eval()
        return m
