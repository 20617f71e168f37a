"""The one interface every model follows: fit on a frame, predict a frame, save, load.

As in Surprise's `AlgoBase`, the base class does the shared work: `predict` clips a model's own
`_predict` to the rating scale, and configs are typed dataclasses that refuse unknown keys.
"""

from __future__ import annotations

import typing
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import pandas as pd


@dataclass
class SideInfo:
    """What a model may know besides the ratings: the side tables, the rating scale, and which
    (user, item) pairs were rated at all, in train and in test (public in a Kaggle competition; their
    ratings never are), for implicit feedback."""

    users: pd.DataFrame
    items: pd.DataFrame
    rating_scale: tuple[float, float] = (1.0, 5.0)
    pairs: pd.DataFrame | None = None  # user_id, item_id (and timestamp) of every train and test row; None: unknown


@dataclass
class ModelConfig:
    """Base of the model configs: plain dataclasses, seeded, built from dicts or YAML.

    `limits` maps a field to its allowed range: `">0"`, `">=0"`, `">=1"`, `"[0,1)"`, `"(0,1]"` or
    `"(0,1)"` (for a tuple, every element); a value outside it is refused when the config is made,
    so a bad config never starts a run, let alone replaces good artifacts.
    """

    seed: int = 42
    refit: bool = False  # test predictions from one refit on the whole train set, not the mean of the fold models
    bags: int = 1  # models per fold (seeds seed, seed + 1, ...), their predictions averaged (`runs.cv.fit_fold`)
    limits: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        for name, rule in {"seed": ">=0", "bags": ">=1", **self.limits}.items():
            value = getattr(self, name)
            for v in value if isinstance(value, tuple) else (value,):
                if not _within(v, rule):
                    raise ValueError(f"{type(self).__name__}.{name}: {value!r} is out of range (must be {rule})")
        y_range = getattr(self, "y_range", None)
        if y_range is not None and not y_range[0] < y_range[1]:
            raise ValueError(f"{type(self).__name__}.y_range: {list(y_range)} must be [lo, hi] with lo < hi")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build a config, refusing unknown keys (a typo must not be silently ignored) and coercing each
        value to its field's type (`"1e-3"` or `1` for a float field, a list for a tuple field)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        hints = typing.get_type_hints(cls)
        return cls(**{k: coerce(v, hints[k], f"{cls.__name__}.{k}") for k, v in d.items()})

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-able values."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def coerce(value: Any, kind: Any, where: str) -> Any:
    """`value` as type `kind` (int, float, bool, str, tuple[...], dict), or a ValueError naming `where`."""
    origin = typing.get_origin(kind)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is str:
            return str(value)
        if origin is tuple:
            args = typing.get_args(kind)
            items = list(value)
            fixed = len(args) != 2 or args[1] is not Ellipsis  # tuple[float, float], not tuple[int, ...]
            if fixed and len(items) != len(args):
                raise ValueError
            return tuple(coerce(v, args[0], where) for v in items)
        if origin is dict or kind is dict:
            if not isinstance(value, dict):
                raise ValueError
            return value
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{where}: {value!r} is not a valid {getattr(kind, '__name__', kind)}") from None
    return value


def _within(v: float, rule: str) -> bool:
    if rule.startswith(">="):
        return v >= float(rule[2:])
    if rule.startswith(">"):
        return v > float(rule[1:])
    lo, hi = (float(x) for x in rule[1:-1].split(","))
    return (lo <= v if rule[0] == "[" else lo < v) and (v <= hi if rule[-1] == "]" else v < hi)


C = TypeVar("C", bound=ModelConfig)


class Model(ABC, Generic[C]):
    """A rating predictor. Frames carry `user_id`, `item_id`, `timestamp` (and `rating` to fit)."""

    config_cls: ClassVar[type[ModelConfig]] = ModelConfig
    suffix: ClassVar[str] = ".pt"
    cacheable: ClassVar[bool] = False  # the runner stores fitted fold models in the model cache
    single_threaded: ClassVar[bool] = False  # fits on one core: the local runner fits its folds side by side
    # Uses every core, but a single-threaded process per core fits more folds per minute (small-step torch and
    # LightGBM fits): the local runner fits its folds side by side on mid-sized sets (`runs.cv.SIDE_BY_SIDE_ROWS`).
    side_by_side: ClassVar[bool] = False
    # A fold fit's time relative to the other members' (gbm's: 1), as on ml-1m's fold 0 (bench/results/scale.md):
    # the local runner's shared fold pool queues the longest folds first, so its last round is of short ones.
    fold_cost: ClassVar[float] = 1.0
    fit_bytes_per_rating: ClassVar[float] = 0.0  # a fold fit's peak memory per training rating (0: not known)
    # Its training steps allocate blocks over glibc's 32 MB mmap ceiling again and again at large sizes: the fold job
    # keeps freed blocks for reuse at any size, not only up to 5M ratings (`runs.allocator`).
    large_step_blocks: ClassVar[bool] = False
    requires: ClassVar[str | None] = None  # an optional package the model needs (e.g. "myfm")
    cache = None  # a cfblend.runs.cache.ModelCache, set by the runner, for models built on other models
    # Learning curves: the runner sets `monitor` to a fold's held-out rows; a model that trains by epochs scores
    # them after each one into `history_` ({"train_loss": [...], "valid_rmse": [...]}). Only recorded: nothing
    # in the fit reads them, and the same fit happens with or without them.
    monitor: pd.DataFrame | None = None
    history_: dict[str, list[float]] | None = None

    def __init__(self, config: C, side: SideInfo):
        self.config: C = config
        self.side = side

    @abstractmethod
    def fit(self, train: pd.DataFrame) -> Model:
        """Learn from `train`; may hold out part of it internally, never anything else."""

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predicted ratings for the rows of `df`, in order, clipped to the rating scale."""
        return np.clip(self._predict(df), *self.side.rating_scale)

    @abstractmethod
    def _predict(self, df: pd.DataFrame) -> np.ndarray:
        """The model's raw predictions for the rows of `df`."""

    def item_factors(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The ids of the items seen in training and their learned factors (one matrix per posterior
        sample, or a single one), for models that learn item embeddings."""
        raise NotImplementedError(f"{type(self).__name__} learns no item embeddings")

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the fitted model to `path` (atomically)."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, side: SideInfo) -> Model:
        """Read a model written by `save`."""
