"""What the torch models share: device choice, seeding, saving, the mini-batch training loop, and
`TorchModel`, the base that writes chunked prediction and the logit initialisation once."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from cfblend.io import atomic_path
from cfblend.models.base import Model, ModelConfig
from cfblend.models.lazy_adam import LazyAdam

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cpu`/`cuda`/`cuda:1` are taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for but CUDA is not available; use --device auto or cpu")
    return dev


def save_state(path, config, net: torch.nn.Module, **extra) -> None:
    """Save a model's config, extra state and network weights (on the CPU) atomically, as plain tensors
    and containers only (NumPy arrays become tensors), so `load_state` never needs pickle."""
    extra = {k: torch.from_numpy(np.array(v, copy=True)) if isinstance(v, np.ndarray) else v for k, v in extra.items()}
    state = {"config": config.to_dict(), **extra, "net": {k: v.cpu() for k, v in net.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path) -> dict:
    """Read what `save_state` wrote (onto the CPU) with `weights_only=True`: a file from elsewhere
    cannot run code. Tensors saved from NumPy arrays come back as arrays."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for shuffling."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def train_minibatch(
    step_loss: Callable[[Sequence[torch.Tensor]], torch.Tensor],
    params: list,
    tensors: Sequence[torch.Tensor],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    optimizer: str = "adam",
    one_cycle: bool = True,
    desc: str = "train",
    on_epoch_start: Callable[[], None] | None = None,
    on_epoch_end: Callable[[float], None] | None = None,
    sparse_params: list | None = None,
) -> list[float]:
    """Shuffle `tensors` row-wise each epoch and take optimiser steps on `step_loss(batch)`.

    `params` are parameters or parameter groups. Adam (or AdamW/SGD) with a one-cycle
    learning-rate schedule peaking at `lr`. `sparse_params` (embeddings with sparse gradients) get
    `SparseAdam`'s update (by `LazyAdam` on the CPU) under the same schedule: a step then touches only the
    rows of the batch, not whole tables. `on_epoch_end(mean loss)` runs after each epoch. Returns each epoch's
    seconds (the loop alone, `on_epoch_start`/`on_epoch_end` excluded).
    """
    n = len(tensors[0])
    steps_per_epoch = max(1, (n + batch_size - 1) // batch_size)
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr)
    elif optimizer == "adamw":  # weight decay per parameter group (default none)
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; use adam, adamw or sgd")
    # sparse tables: SparseAdam's update, one compiled pass per table on the CPU
    opts = [opt, LazyAdam.for_params(sparse_params, lr=lr)] if sparse_params else [opt]
    scheds = [torch.optim.lr_scheduler.OneCycleLR(o, max_lr=lr, total_steps=epochs * steps_per_epoch)
              for o in opts] if one_cycle else []
    device = tensors[0].device
    bar = tqdm(range(epochs), desc=desc, leave=False, disable=None)
    seconds = []
    for _ in bar:
        if on_epoch_start is not None:
            on_epoch_start()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=generator).to(device)
        total = torch.zeros((), device=device)
        for s in range(0, n, batch_size):
            idx = perm[s: s + batch_size]
            loss = step_loss([t.index_select(0, idx) for t in tensors])
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            for o in opts:
                o.step()
            for sc in scheds:
                sc.step()
            total += loss.detach()
        bar.set_postfix(loss=f"{float(total) / steps_per_epoch:.4f}")
        seconds.append(time.perf_counter() - t0)
        if on_epoch_end is not None:
            on_epoch_end(float(total) / steps_per_epoch)
    return seconds


class FastDropout(torch.nn.Module):
    """`nn.Dropout` whose CPU masks come from NumPy's PCG64 as bytes (a byte >= 256p keeps its unit, so p is
    taken to the nearest 1/256): torch's CPU Bernoulli draw costs about 10 ms for 8192 x 128 units, more than
    the layer's matrix product, this about 1 ms. On CUDA it is `F.dropout`. Seeded by `seed` (same seed,
    same masks)."""

    def __init__(self, p: float, seed: int = 0):
        super().__init__()
        self.p = p
        self.cut = round(p * 256)
        self.rng = np.random.default_rng(seed)
        self.scale = np.where(np.arange(256) >= self.cut, 256 / (256 - self.cut), 0.0).astype(np.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.p:
            return x
        if x.device.type != "cpu":
            return torch.nn.functional.dropout(x, self.p, True)
        bits = np.frombuffer(self.rng.bytes(x.numel()), dtype=np.uint8).reshape(x.shape)
        return x * torch.from_numpy(self.scale[bits])  # one product forward and backward

    def extra_repr(self) -> str:
        return f"p={self.p}"


C = TypeVar("C", bound=ModelConfig)


class TorchModel(Model[C]):
    """A model whose fitted state is a torch network `net` with a `global_bias` parameter and whose
    forward pass returns the predictions first. Subclasses say how a frame becomes input tensors."""

    net: torch.nn.Module
    predict_chunk = 65536

    @staticmethod
    def global_logit(mean: float, y_range: tuple[float, float]) -> float:
        """The logit that puts `lo + (hi - lo) * sigmoid(x)` at the training mean (the starting global bias)."""
        lo, hi = y_range
        frac = min(max((mean - lo) / (hi - lo), 1e-3), 1 - 1e-3)
        return math.log(frac / (1 - frac))

    def _inputs(self, df: pd.DataFrame, device: torch.device) -> list[torch.Tensor]:
        """The network's input tensors for the rows of `df`."""
        raise NotImplementedError

    def record_epoch(self, train_loss: float) -> None:
        """Append an epoch's training loss and, when a fold's held-out rows are monitored, their RMSE."""
        h = self.history_ = self.history_ or {"train_loss": [], "valid_rmse": []}
        h["train_loss"].append(train_loss)
        if self.monitor is not None and len(self.monitor):
            was = self.net.training
            self.net.eval()
            err = self.predict(self.monitor) - self.monitor["rating"].to_numpy()
            h["valid_rmse"].append(float(np.sqrt(np.mean(err**2))))
            self.net.train(was)

    @torch.no_grad()
    def _predict(self, df: pd.DataFrame) -> np.ndarray:
        tensors = self._inputs(df, self.net.global_bias.device)
        step = self.predict_chunk
        out = [self.net(*(t[s: s + step] for t in tensors))[0] for s in range(0, len(df), step)]
        return torch.cat(out).double().cpu().numpy() if out else np.zeros(0)
