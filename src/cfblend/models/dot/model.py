"""The dot-product model: user and item factors plus biases, squashed into `y_range`.

prediction = lo + (hi - lo) * sigmoid(g + b_u + b_i + p_u · q_i)

Factors start from a normal with a small std, biases at zero and `g` at the logit of the
training mean. Weight decay is the classic per-rating L2 of matrix factorisation:
`wd * (|p_u|² + |q_i|²) + bias_wd * (b_u² + b_i²)` is added for each rating in the batch, so a
factor is shrunk in proportion to how often it is used. Trained with Adam (or AdamW/SGD) under a
one-cycle schedule. Three trainers (`choose_trainer`): `numba_trainer` (the CPU default),
`torch_trainer.fused_adam_fit` (CUDA) and `torch_trainer.autograd_fit` (any optimiser).

Cold start: an id never seen in training maps to slot 0, whose factors and bias are held at
zero. An unseen user is predicted from g + b_i (the item's bias alone), an unseen item from
g + b_u, and a pair of both unseen from g, the training mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from cfblend.models.base import ModelConfig, SideInfo
from cfblend.models.dot.numba_trainer import available as numba_available
from cfblend.models.dot.numba_trainer import numba_fit
from cfblend.models.dot.torch_trainer import autograd_fit, fused_adam_fit
from cfblend.models.ids import IdIndex
from cfblend.models.torch_base import TorchModel, load_state, resolve_device, save_state, seed_everything


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
    trainer: str = "auto"  # "auto": numba on the CPU (when installed), else fused; autograd for non-Adam
    # "fused": torch, hand-written gradients + dense Adam (CPU or CUDA);
    # "numba": compiled per-row loop with lazy Adam (CPU, fastest); "autograd": the generic torch loop
    threads: int = 2  # numba trainer: LIBMF-style blocks of the rating matrix on this many threads (1: one loop)
    blocks: int = 0  # numba trainer: user (and item) groups of the blocks; 0: threads x 2^k, blocks < 250k ratings
    device: str = "auto"
    drop_heavy_raters: float = 0.0  # share of the most active users left out of training (heavy-rater check)

    limits: ClassVar[dict[str, str]] = {
        "factors": ">=1", "epochs": ">=1", "lr": ">0", "wd": ">=0", "bias_wd": ">=0", "batch_size": ">=1",
        "init_std": ">=0", "threads": ">=1", "blocks": ">=0",
        "drop_heavy_raters": "[0,1)"}


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


class DotModel(TorchModel[DotConfig]):
    """Biased matrix factorisation with a sigmoid output range (fastai's `EmbeddingDotBias`)."""

    config_cls = DotConfig
    suffix = ".pt"
    cacheable = True  # the GBM's features reuse the fold models

    def fit(self, train: pd.DataFrame) -> DotModel:
        c = self.config
        gen = seed_everything(c.seed)
        dev = resolve_device(c.device)
        train = drop_heaviest_raters(train, c.drop_heavy_raters)
        self.users_, self.items_ = IdIndex(train["user_id"]), IdIndex(train["item_id"])
        self.net = DotNet(len(self.users_), len(self.items_), c.factors, c.y_range, c.init_std,
                          self.global_logit(float(train["rating"].mean()), c.y_range)).to(dev)
        u, i = self._inputs(train, dev)
        y = torch.tensor(train["rating"].to_numpy(np.float32), device=dev)
        self.net.train()
        trainer = choose_trainer(c, dev)
        mon = None
        if self.monitor is not None and len(self.monitor):
            mon = (*self._inputs(self.monitor, dev),
                   torch.tensor(self.monitor["rating"].to_numpy(np.float32), device=dev))
        if trainer == "numba":
            history = numba_fit(self.net, u, i, y, c, mon)
        elif trainer == "fused":
            history = fused_adam_fit(self.net, u, i, y, c, gen, mon)
        else:
            history = autograd_fit(self.net, u, i, y, c, gen, mon)
        self.epoch_seconds_ = history.pop("epoch_seconds")
        self.history_ = {k: v for k, v in history.items() if v}
        self.net.eval()
        return self

    def _inputs(self, df: pd.DataFrame, device: torch.device) -> list[torch.Tensor]:
        return [torch.as_tensor(self.users_(df["user_id"]), device=device),
                torch.as_tensor(self.items_(df["item_id"]), device=device)]

    @torch.no_grad()
    def embeddings(self, kind: str, ids) -> tuple[np.ndarray, np.ndarray]:
        """Learned factors and biases of users or items (`kind`), zeros for unseen ids."""
        index, table, bias = ((self.users_, self.net.user, self.net.user_bias) if kind == "user"
                              else (self.items_, self.net.item, self.net.item_bias))
        idx = torch.as_tensor(index(ids), device=table.weight.device)
        return table(idx).cpu().numpy(), bias(idx)[:, 0].cpu().numpy()

    def embedding_table(self, kind: str) -> pd.DataFrame:
        """The learned factors (`f0`...) and bias of every user or item (`kind`) seen in training, by raw id."""
        index = self.users_ if kind == "user" else self.items_
        factors, bias = self.embeddings(kind, index.ids)
        table = pd.DataFrame(factors, columns=[f"f{j}" for j in range(factors.shape[1])])
        table.insert(0, "bias", bias)
        table.insert(0, f"{kind}_id", index.ids)
        return table

    @torch.no_grad()
    def item_factors(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The ids of the items seen in training and their latent factors (one matrix)."""
        return self.items_.ids, [self.net.item.weight[1:].cpu().numpy()]

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


TRAINERS = ("auto", "numba", "fused", "autograd")


def choose_trainer(c: DotConfig, device: torch.device) -> str:
    """The trainer that fits `c` on `device`. `auto`: numba on the CPU, fused on CUDA (both Adam),
    autograd for the other optimisers. An explicit choice that cannot run `c` is an error."""
    if c.trainer not in TRAINERS:
        raise ValueError(f"unknown trainer {c.trainer!r}; use {', '.join(TRAINERS)}")
    if c.optimizer not in ("adam", "adamw", "sgd"):
        raise ValueError(f"unknown optimizer {c.optimizer!r}; use adam, adamw or sgd")
    if c.trainer == "auto":
        if c.optimizer != "adam":
            return "autograd"
        return "numba" if device.type == "cpu" and numba_available() else "fused"
    if c.trainer in ("numba", "fused") and c.optimizer != "adam":
        raise ValueError(f"trainer {c.trainer!r} implements Adam only, not {c.optimizer!r}; use trainer "
                         "'autograd' (or 'auto') for other optimizers")
    if c.trainer == "numba" and device.type != "cpu":
        raise ValueError("trainer 'numba' runs on the CPU; use trainer 'fused' (or 'auto') on CUDA")
    return c.trainer


def drop_heaviest_raters(train: pd.DataFrame, share: float) -> pd.DataFrame:
    """`train` without the ratings of the most active `share` of its users (none when `share` is 0)."""
    if share <= 0:
        return train
    counts = train["user_id"].value_counts()
    heavy = counts.index[: max(1, round(len(counts) * share))]
    return train[~train["user_id"].isin(heavy)]
