"""The model registry: experiment names mapped to a model class and its config."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cfblend.models.base import Model, ModelConfig, SideInfo
from cfblend.models.baselines import BiasesConfig, DampedBiases, GlobalMean, GlobalMeanConfig
from cfblend.models.dot import DotConfig, DotModel
from cfblend.models.gbm import GBMConfig, GBMModel
from cfblend.models.nn import EntityEmbeddingModel, NNConfig

REGISTRY: dict[str, tuple[type[Model], ModelConfig]] = {
    "global_mean": (GlobalMean, GlobalMeanConfig()),
    "biases": (DampedBiases, BiasesConfig()),
    "dot": (DotModel, DotConfig()),
    "dot_torch": (DotModel, DotConfig(trainer="fused")),  # the torch trainer (dense Adam), for comparison
    "nn": (EntityEmbeddingModel, NNConfig()),
    "nn_ids": (EntityEmbeddingModel, NNConfig(use_side=False)),  # ablation: ids only, no side features
    "gbm": (GBMModel, GBMConfig()),
}
BASELINES = ("global_mean", "biases")


def model_config(name: str, overrides: dict[str, Any] | None = None) -> ModelConfig:
    """The registered config of `name`, with `overrides` applied (unknown keys refused)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}")
    cls, cfg = REGISTRY[name]
    if not overrides:
        return cfg
    merged = {**cfg.to_dict(), **overrides}
    return replace(cfg, **cls.config_cls.from_dict(merged).__dict__)


def make_model(name: str, side: SideInfo, overrides: dict[str, Any] | None = None) -> Model:
    """A fresh, unfitted model registered as `name`."""
    return model_class(name)(model_config(name, overrides), side)


def model_class(name: str) -> type[Model]:
    """The class behind a registered name."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name][0]


__all__ = ["BASELINES", "REGISTRY", "Model", "ModelConfig", "SideInfo", "make_model", "model_class", "model_config"]
