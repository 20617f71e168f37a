"""`make tune`: an Optuna study per competition and model; objective = OOF RMSE on the competition's folds.

The search spaces are below, in plain sight. A study lives in an Optuna storage: by default a
SQLite file `output/tune/<model>.db` (resumable after a kill: finished trials are kept, the next
run adds to them); any storage URL Optuna accepts (`STORAGE=postgresql://...`) lets several
processes, on one machine or several, work on one study. The best configs per dataset are
committed in `models/tuned.yaml` (`make tune SAVE=1` writes the study's best there), and that is
what `make train`/`make all` use for that dataset, under any `SET` override.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cfblend.competition import Competition
from cfblend.models import model_config
from cfblend.paths import Paths
from cfblend.runs.cv import fit_fold, side_info

log = logging.getLogger(__name__)

TUNED_FILE = "tuned.yaml"  # in the cfblend.models package
# Members that are another member with one setting changed take its tuned entry unless they have their own
# (`bfm_opu`, `bfm_opi`: `bfm_op` with cutpoints per user or item; `make tune MODEL=bfm_opu SAVE=1` gives it one;
# `autorec_imp`: `autorec` with the implicit input, which takes its large-data setting;
# `dot_no_heavy`: `dot` without the heaviest raters, which the report compares with `dot` at the same config;
# `dot_torch`: `dot` on the torch trainer, which the benchmark compares with `dot`).
TUNED_FROM = {"bfm_opu": "bfm_op", "bfm_opi": "bfm_op", "autorec_imp": "autorec", "dot_no_heavy": "dot",
              "dot_torch": "dot"}


def _dot(t) -> dict[str, Any]:
    return {"factors": t.suggest_int("factors", 8, 64, log=True), "lr": t.suggest_float("lr", 1e-3, 2e-2, log=True),
            "wd": t.suggest_float("wd", 0.02, 0.5, log=True),
            "bias_wd": t.suggest_float("bias_wd", 1e-3, 0.1, log=True), "epochs": t.suggest_int("epochs", 6, 20)}


def _nn(t) -> dict[str, Any]:
    return {"lr": t.suggest_float("lr", 1e-3, 1e-2, log=True), "dropout": t.suggest_float("dropout", 0.0, 0.5),
            "emb_wd": t.suggest_float("emb_wd", 1e-3, 0.1, log=True),
            "fm_wd": t.suggest_float("fm_wd", 0.02, 0.5, log=True), "epochs": t.suggest_int("epochs", 4, 14)}


def _gbm(t) -> dict[str, Any]:
    return {"learning_rate": t.suggest_float("learning_rate", 0.02, 0.1, log=True),
            "num_leaves": t.suggest_int("num_leaves", 15, 127, log=True),
            "min_data_in_leaf": t.suggest_int("min_data_in_leaf", 20, 400, log=True),
            "feature_fraction": t.suggest_float("feature_fraction", 0.5, 1.0)}


def _bfm(t) -> dict[str, Any]:
    return {"rank": t.suggest_int("rank", 4, 32, log=True),
            "date_days": t.suggest_categorical("date_days", [0, 14, 30, 60]),
            "year_bin": t.suggest_categorical("year_bin", [2, 5, 10])}


def _autorec(t) -> dict[str, Any]:
    return {"hidden": t.suggest_int("hidden", 100, 800, log=True), "l2": t.suggest_float("l2", 10.0, 500.0, log=True),
            "lr": t.suggest_float("lr", 5e-4, 5e-3, log=True), "epochs": t.suggest_int("epochs", 30, 150)}


def _biases(t) -> dict[str, Any]:
    return {"reg_item": t.suggest_float("reg_item", 1.0, 100.0, log=True),
            "reg_user": t.suggest_float("reg_user", 1.0, 100.0, log=True)}


def _svdpp(t) -> dict[str, Any]:
    return {"factors": t.suggest_int("factors", 8, 128, log=True), "lr": t.suggest_float("lr", 2e-3, 2e-2, log=True),
            "reg": t.suggest_float("reg", 0.01, 0.3, log=True), "reg_y": t.suggest_float("reg_y", 0.01, 1.0, log=True),
            "reg_bias": t.suggest_float("reg_bias", 0.005, 0.2, log=True), "epochs": t.suggest_int("epochs", 10, 80),
            "lr_decay": t.suggest_float("lr_decay", 0.85, 1.0)}


def _knn(t) -> dict[str, Any]:
    return {"k": t.suggest_int("k", 10, 200, log=True), "shrinkage": t.suggest_float("shrinkage", 1.0, 500.0, log=True),
            "reg_item": t.suggest_float("reg_item", 1.0, 100.0, log=True),
            "reg_user": t.suggest_float("reg_user", 1.0, 100.0, log=True)}


SEARCH_SPACES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "dot": _dot, "nn": _nn, "gbm": _gbm, "bfm": _bfm, "bfm_op": _bfm, "bfm_opu": _bfm, "bfm_opi": _bfm,
    "biases": _biases, "svdpp": _svdpp, "autorec": _autorec, "autorec_user": _autorec, "knn": _knn, "knn_user": _knn}


def _entry(data: dict, dataset: str) -> dict[str, Any]:
    """`dataset`'s models and configs; an entry that is a name (`ml-25m: large-data`) shares that entry's."""
    entry = data.get(dataset) or {}
    return dict(data.get(entry) or {}) if isinstance(entry, str) else dict(entry)


def tuned_overrides(dataset: str, model: str, file: Path | None = None) -> dict[str, Any]:
    """The committed best config of `model` for `dataset` (`TUNED_FROM`'s member's when `model` has none; empty
    when none was saved)."""
    text = file.read_text() if file else resources.files("cfblend.models").joinpath(TUNED_FILE).read_text()
    entry = _entry(yaml.safe_load(text) or {}, dataset)
    return dict(entry.get(model) or entry.get(TUNED_FROM.get(model, model)) or {})


def with_tuned(dataset: str, per_model: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each model's committed tuned config for `dataset`, with `per_model` (e.g. SET) over it."""
    return {m: {**tuned_overrides(dataset, m), **o} for m, o in per_model.items()}


def oof_rmse(name: str, comp: Competition, folds: np.ndarray, overrides: dict[str, Any], n_folds: int) -> float:
    """OOF RMSE of `name` with `overrides` over the first `n_folds` folds: each fold fitted on the others as
    `make train` fits it (`cv.fit_fold`: its `bags` too), without the test predictions."""
    side = side_info(comp)
    squared, count = 0.0, 0
    for k in range(n_folds):
        n = int(np.sum(folds == k))
        squared += fit_fold(name, comp, side, folds, k, overrides, with_test=False)["rmse"] ** 2 * n
        count += n
    return float(np.sqrt(squared / count))


def default_storage(paths: Paths, model: str) -> str:
    """A SQLite file under `output/tune/`."""
    folder = paths.output / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / f'{model}.db').resolve()}"


def tune(name: str, comp: Competition, folds: np.ndarray, paths: Paths, trials: int, n_folds: int = 1,
         storage: str = "", base: dict[str, Any] | None = None, seed: int = 42):
    """Add `trials` trials to the study `<competition>-<model>` and return it."""
    import optuna

    if name not in SEARCH_SPACES:
        raise ValueError(f"no search space for {name!r}; tunable: {', '.join(SEARCH_SPACES)}")
    if not 1 <= n_folds <= int(folds.max()) + 1:
        raise ValueError(f"FOLDS={n_folds}: between 1 and {int(folds.max()) + 1}")
    base = dict(base or {})
    study = _open_study(optuna, f"{comp.name}-{name}", storage or default_storage(paths, name))
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))  # a resumed study draws anew

    def objective(trial) -> float:
        params = {**base, **SEARCH_SPACES[name](trial)}
        model_config(name, params)  # a bad combination is refused before any fit
        return oof_rmse(name, comp, folds, params, n_folds)

    study.optimize(objective, n_trials=trials, show_progress_bar=False)
    log.info("%s: %d trials in study %s; best OOF RMSE %.4f with %s", name, len(study.trials), study.study_name,
             study.best_value, study.best_params)
    return study


def _open_study(optuna, name: str, storage: str, attempts: int = 5):
    """Create or load the study. Workers that start together on a new database race to create its
    tables; the loser of that race retries after a short, random wait."""
    import random
    import time

    for attempt in range(attempts):
        try:
            return optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True)
        except Exception:  # sqlalchemy's IntegrityError / OperationalError while another worker sets up
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")


def save_best(dataset: str, name: str, params: dict[str, Any], file: Path | None = None) -> Path:
    """Write `params` as the committed tuned config of `name` for `dataset`."""
    file = file or Path(str(resources.files("cfblend.models").joinpath(TUNED_FILE)))
    data = yaml.safe_load(file.read_text()) or {}
    data[dataset] = _entry(data, dataset)  # a shared entry is copied, so only this dataset's changes
    data[dataset][name] = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in params.items()}
    header = "".join(line + "\n" for line in file.read_text().splitlines() if line.startswith("#"))
    file.write_text(header + yaml.safe_dump(data, sort_keys=True))
    return file
