"""The one interface every model follows: fit on a frame, predict a frame, save, load."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd


@dataclass
class SideInfo:
    """What a model may know besides the ratings: the side tables and the rating scale."""

    users: pd.DataFrame
    items: pd.DataFrame
    rating_scale: tuple[float, float] = (1.0, 5.0)


@dataclass
class ModelConfig:
    """Base of the model configs: plain dataclasses, seeded, built from dicts or YAML."""

    seed: int = 42

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build a config, refusing unknown keys (a typo must not be silently ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-able values."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


class Model(ABC):
    """A rating predictor. Frames carry `user_id`, `item_id`, `timestamp` (and `rating` to fit)."""

    config_cls: ClassVar[type[ModelConfig]] = ModelConfig
    suffix: ClassVar[str] = ".pt"
    cacheable: ClassVar[bool] = False  # the runner stores fitted fold models in the model cache
    cache = None  # a cfblend.cache.ModelCache, set by the runner, for models built on other models

    def __init__(self, config: ModelConfig, side: SideInfo):
        self.config = config
        self.side = side

    @abstractmethod
    def fit(self, train: pd.DataFrame) -> Model:
        """Learn from `train`; may hold out part of it internally, never anything else."""

    @abstractmethod
    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predicted ratings for the rows of `df`, in order."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the fitted model to `path` (atomically)."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, side: SideInfo) -> Model:
        """Read a model written by `save`."""
