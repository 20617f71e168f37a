"""Two baselines every leaderboard should show: the global mean and damped user + item biases."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from cfblend.io import atomic_path, read_json, write_json
from cfblend.models.base import Model, ModelConfig, SideInfo
from cfblend.models.ids import IdIndex


@dataclass
class GlobalMeanConfig(ModelConfig):
    """No knobs: predicts the mean training rating."""


class GlobalMean(Model[GlobalMeanConfig]):
    """Predicts the mean rating of the training rows for every pair."""

    config_cls = GlobalMeanConfig
    suffix = ".json"

    def fit(self, train: pd.DataFrame) -> GlobalMean:
        self.mean_ = float(train["rating"].mean())
        return self

    def _predict(self, df: pd.DataFrame) -> np.ndarray:
        return np.full(len(df), self.mean_)

    def save(self, path: Path) -> None:
        write_json({"config": self.config.to_dict(), "mean": self.mean_}, path)

    @classmethod
    def load(cls, path: Path, side: SideInfo) -> GlobalMean:
        d = read_json(path)
        m = cls(cls.config_cls.from_dict(d["config"]), side)
        m.mean_ = d["mean"]
        return m


@dataclass
class BiasesConfig(ModelConfig):
    """Damped biases: b_i = sum(r - mu - b_u) / (n_i + reg_item), b_u likewise, alternated."""

    reg_item: float = 25.0
    reg_user: float = 10.0
    iterations: int = 3

    limits: ClassVar[dict[str, str]] = {"reg_item": ">=0", "reg_user": ">=0", "iterations": ">=1"}


class DampedBiases(Model[BiasesConfig]):
    """mu + b_u + b_i with shrunk (damped) biases; unseen users or items get a zero bias."""

    config_cls = BiasesConfig
    suffix = ".npz"

    def fit(self, train: pd.DataFrame) -> DampedBiases:
        c = self.config
        r = train["rating"].to_numpy(np.float64)
        self.mu_ = float(r.mean())
        self.users_, u = np.unique(train["user_id"].to_numpy(), return_inverse=True)
        self.items_, i = np.unique(train["item_id"].to_numpy(), return_inverse=True)
        nu, ni = np.bincount(u), np.bincount(i)
        self.bu_ = np.zeros(len(self.users_))
        self.bi_ = np.zeros(len(self.items_))
        for _ in range(c.iterations):
            self.bi_ = np.bincount(i, r - self.mu_ - self.bu_[u]) / (ni + c.reg_item)
            self.bu_ = np.bincount(u, r - self.mu_ - self.bi_[i]) / (nu + c.reg_user)
        return self

    def _predict(self, df: pd.DataFrame) -> np.ndarray:
        users, items = IdIndex(self.users_, ordered=True), IdIndex(self.items_, ordered=True)
        return self.mu_ + users.take(self.bu_, df["user_id"]) + items.take(self.bi_, df["item_id"])

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mu=self.mu_, users=self.users_, items=self.items_, bu=self.bu_, bi=self.bi_,
                     config=np.array(json.dumps(self.config.to_dict())))

    @classmethod
    def load(cls, path: Path, side: SideInfo) -> DampedBiases:
        z = np.load(path)
        m = cls(cls.config_cls.from_dict(json.loads(str(z["config"]))), side)
        m.mu_, m.users_, m.items_, m.bu_, m.bi_ = float(z["mu"]), z["users"], z["items"], z["bu"], z["bi"]
        return m
