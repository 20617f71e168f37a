"""Stage 3: the models, and the registry that maps experiment names to a model class and its config.

Every model is one class in one file with the interface of `base.Model` (fit on a frame, predict a
frame, save, load). What only models use lives here too: `ids` (raw ids to indices, the
cold-start slot), `side` (side-feature encoding), `torch_base` (what the torch models share),
`lazy_adam` (SparseAdam's update, compiled, for sparse embeddings on the CPU).
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

import yaml

from cfblend.models.autorec import AutoRecConfig, AutoRecModel
from cfblend.models.base import Model, ModelConfig, SideInfo
from cfblend.models.baselines import BiasesConfig, DampedBiases, GlobalMean, GlobalMeanConfig
from cfblend.models.bfm import BFMConfig, BFMModel
from cfblend.models.dot import DotConfig, DotModel
from cfblend.models.gbm import GBMConfig, GBMModel
from cfblend.models.knn import KNNConfig, KNNModel
from cfblend.models.nn import EntityEmbeddingModel, NNConfig
from cfblend.models.svdpp import SVDppConfig, SVDppModel

REGISTRY: dict[str, tuple[type[Model], ModelConfig]] = {
    "global_mean": (GlobalMean, GlobalMeanConfig()),
    "biases": (DampedBiases, BiasesConfig()),
    "dot": (DotModel, DotConfig()),
    "dot_torch": (DotModel, DotConfig(trainer="fused")),  # the torch trainer (dense Adam), for comparison
    "svdpp": (SVDppModel, SVDppConfig()),  # SVD++: MF plus the implicit sets of the public pairs
    "nn": (EntityEmbeddingModel, NNConfig()),
    "nn_ids": (EntityEmbeddingModel, NNConfig(use_side=False)),  # ablation: ids only, no side features
    "gbm": (GBMModel, GBMConfig()),
    "autorec": (AutoRecModel, AutoRecConfig()),  # item-based autoencoder (I-AutoRec)
    "autorec_user": (AutoRecModel, AutoRecConfig(user_based=True)),  # user-based (U-AutoRec)
    "autorec_imp": (AutoRecModel, AutoRecConfig(implicit=True, hidden=500)),  # also sees who rated the item at all
    "knn": (KNNModel, KNNConfig()),  # kNNBaseline: the residuals of the user's most similar rated items
    "knn_user": (KNNModel, KNNConfig(user_based=True)),  # the same over the item's most similar raters
    "bfm": (BFMModel, BFMConfig()),  # Bayesian FM, Gaussian likelihood
    "bfm_op": (BFMModel, BFMConfig(likelihood="ordered_probit")),  # Bayesian FM, ordered probit
    "bfm_opu": (BFMModel, BFMConfig(likelihood="ordered_probit", user_cutpoints=25)),  # and cutpoints per user
    "bfm_opi": (BFMModel, BFMConfig(likelihood="ordered_probit", item_cutpoints=25)),  # or per item
    # trained for the report's heavy-rater check; never blended or ranked
    "dot_no_heavy": (DotModel, DotConfig(drop_heavy_raters=0.01)),
}
# The full list: every member that earns its place (the ablation, bench/ablation.py: dropping it worsens the blend's
# honest CV; nn_ids left out on that ground; global_mean is shown, never blended), in blend order.
FULL_MODELS = ("global_mean", "biases", "dot", "svdpp", "knn", "knn_user", "nn", "gbm", "autorec", "autorec_imp",
               "bfm", "bfm_op", "bfm_opu")
# The fast list: the full one less the three members that gain the blend least for their time. ml-100k, u1..u5
# (bench/results/ablation.md, 2026-12-02): the blend 0.8591 against 0.8586 (honest CV 0.8641, 0.8633); `make all` on
# u1 4:44 against 8:59 when measured (the same normal-speed hour, 2026-11-30).
FAST_MODELS = tuple(m for m in FULL_MODELS if m not in ("autorec", "bfm", "bfm_op"))
MODEL_LISTS = {"fast": FAST_MODELS, "full": FULL_MODELS}  # list names `MODELS=` takes
# Which list a plain `make all` trains, per dataset (default fast: ml-100k's `make all` within 5 minutes). ml-1m
# takes the full list: its blend 0.8112 (honest CV 0.8145) against 0.8161 (0.8189) with the fast one less
# `autorec_imp`, whose `make all` (21:46) was not within 10 minutes either (README).
DATASET_LIST = {"ml-1m": "full"}
ANALYSIS_MODELS = ("dot_no_heavy",)  # trained by `make all` for the report only


def default_models(dataset: str, which: str | None = None) -> tuple[str, ...]:
    """The members of list `which` (`fast` or `full`; None: the dataset's own, `DATASET_LIST`, which a plain
    `make all` trains) on `dataset`."""
    which = which or DATASET_LIST.get(dataset, "fast")
    if which not in MODEL_LISTS:
        raise ValueError(f"unknown model list {which!r}; use {' or '.join(MODEL_LISTS)}")
    return MODEL_LISTS[which]


def expand_models(names: str | list[str], dataset: str) -> list[str]:
    """`names` (a list, or text separated by commas or spaces as `MODELS` takes it) with each list name (`fast`,
    `full`) replaced by its members on `dataset`; each name once, in order (`"full nn_ids"`: the full list and
    `nn_ids`)."""
    out: list[str] = []
    for name in re.split(r"[,\s]+", names.strip()) if isinstance(names, str) else names:
        if not name:
            continue
        out += [m for m in (default_models(dataset, name) if name in MODEL_LISTS else (name,)) if m not in out]
    return out


def model_class(name: str) -> type[Model]:
    """The class behind a registered name."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name][0]


def model_config(name: str, overrides: dict[str, Any] | None = None) -> ModelConfig:
    """The registered config of `name`, with `overrides` applied (unknown keys refused, values typed)."""
    cls = model_class(name)
    cfg = REGISTRY[name][1]
    if not overrides:
        return cfg
    return cls.config_cls.from_dict({**cfg.to_dict(), **overrides})


def available(name: str) -> bool:
    """False when the model needs an optional package that is not installed (myFM on Kaggle's image)."""
    import importlib.util

    need = model_class(name).requires
    return need is None or importlib.util.find_spec(need) is not None


def make_model(name: str, side: SideInfo, overrides: dict[str, Any] | None = None) -> Model:
    """A fresh, unfitted model registered as `name`."""
    return model_class(name)(model_config(name, overrides), side)


def parse_set(text: str | list[str] | None, models: list[str] | tuple[str, ...],
              defaults: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Config overrides per model from the one `SET` syntax: `key=value` pairs separated by spaces.

    `key=value` goes to every model of `models` whose config has `key` (an error if none has it);
    `model.key=value` to that model alone. Values are read as YAML (`lr=1e-3`, `layers=[100, 50]`,
    spaces inside brackets allowed) and then typed by the config (`model_config`). `defaults`
    (e.g. the `DEVICE` and `SEED` of `make`) go to every model that has the key, unless `text` sets
    it; the seed also reaches the dot models a gbm builds on.
    """
    if isinstance(text, list | tuple):
        text = " ".join(text)
    out: dict[str, dict[str, Any]] = {m: {} for m in models}
    for item in re.split(r"\s+(?=[A-Za-z_][\w.]*=)", (text or "").strip()):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"SET expects key=value pairs, got {item!r}")
        model, _, field = key.strip().rpartition(".")
        parsed = yaml.safe_load(value) if value.strip() else ""
        if model:
            if model not in out:
                raise ValueError(f"SET {item!r}: {model!r} is not among the models of this run ({', '.join(models)})")
            targets = [model]
        else:
            targets = [m for m in models if field in {f.name for f in fields(model_class(m).config_cls)}]
            if not targets:
                known = sorted({f.name for m in models for f in fields(model_class(m).config_cls)})
                raise ValueError(f"SET {item!r}: unknown key {field!r}: no model of this run ({', '.join(models)}) "
                                 f"has it; known keys: {', '.join(known)}")
        for m in targets:
            out[m][field] = parsed
    for key, value in (defaults or {}).items():
        for m in models:
            if key in {f.name for f in fields(model_class(m).config_cls)}:
                out[m].setdefault(key, value)
                if key == "seed" and "dot" in {f.name for f in fields(model_class(m).config_cls)}:
                    nested = out[m].setdefault("dot", {**model_config(m).to_dict()["dot"]})  # gbm's inner dot models
                    nested.setdefault("seed", value)
    for m in models:  # type-check now: a bad value is one clear line before anything runs
        model_config(m, out[m])
    return out


__all__ = ["ANALYSIS_MODELS", "FAST_MODELS", "FULL_MODELS", "REGISTRY", "Model", "ModelConfig", "SideInfo",
           "available", "default_models", "expand_models", "make_model", "model_class", "model_config", "parse_set"]
