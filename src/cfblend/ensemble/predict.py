"""Using what was trained: predictions for any (user, item) pairs, and the learned embeddings as files.

`predict_pairs` (`make predict PAIRS=<csv>`) gives each blended member's prediction, the mean of its
fold models (or its refit model, when its config says `refit`), as for the test rows, and the
blend's, with the blend's own weights and meta-features. Each member applies its stated cold-start
policy to a user or item it never saw (README, *Cold start*); the rows are counted and flagged.

`export_embeddings` writes the learned user and item factors of `dot` and `nn`, one row per raw id
and fold model (factor spaces are only defined up to rotation, so folds are never averaged), as
parquet under `output/embeddings/`, the counterpart of fastai's `weight()` or Surprise's `pu`/`qi`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from cfblend.competition import Competition
from cfblend.competition.folds import load_folds
from cfblend.ensemble.blend import META_FEATURES, Blender, meta_features, meta_names, public_pairs
from cfblend.ensemble.run import check_blend
from cfblend.io import write_parquet
from cfblend.models import model_class
from cfblend.models.base import Model
from cfblend.paths import Paths
from cfblend.runs import artifacts
from cfblend.runs.artifacts import StaleArtifact
from cfblend.runs.cv import side_info

log = logging.getLogger(__name__)

EMBEDDING_MODELS = ("dot", "nn")


def read_pairs(path: Path | str) -> pd.DataFrame:
    """The pairs to predict: a CSV with integer `user_id` and `item_id` (extra columns kept) and an optional
    `timestamp` (seconds; missing: the latest train timestamp is used). A bad row is named."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (PAIRS=<csv with user_id,item_id>)")
    df = pd.read_csv(path)
    missing = {"user_id", "item_id"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; found {', '.join(df.columns)}")
    for col in ("user_id", "item_id", *(["timestamp"] if "timestamp" in df else [])):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values != np.floor(values))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{path}, row {row + 2} (line {row + 2}): {col}={df[col].iloc[row]!r} is not an integer")
        df[col] = values.astype(np.int64)
    return df


def member_models(paths: Paths, comp: Competition, name: str) -> list[Model]:
    """The models whose mean gives member `name`'s test predictions: its refit model, else its fold models (with
    their bags, when its config has `bags` > 1: every fold has as many)."""
    cls = model_class(name)
    folder = paths.models(name)
    files = (artifacts.refit_model_files(paths, name, cls.suffix)
             or artifacts.fold_model_files(paths, name, cls.suffix, bags=True))
    if not files:
        raise FileNotFoundError(f"{folder}: no saved models of {name}: run `make train MODEL={name}`")
    side = side_info(comp)
    return [cls.load(f, side) for f in files]


def predict_pairs(paths: Paths, comp: Competition, pairs: pd.DataFrame) -> pd.DataFrame:
    """`pairs` with `unseen_user`, `unseen_item`, one column per blended member and `blend` (see module doc)."""
    folds, folds_sha = load_folds(paths, comp)
    b = check_blend(paths, comp, folds_sha)
    rows = pairs.copy()
    given_time = "timestamp" in rows
    if not given_time:
        rows["timestamp"] = int(comp.train["timestamp"].max())
        log.info("predict: no timestamp column; using the latest train timestamp (%d)", rows["timestamp"].iloc[0])
    rows["unseen_user"] = ~rows["user_id"].isin(comp.train["user_id"])
    rows["unseen_item"] = ~rows["item_id"].isin(comp.train["item_id"])
    members = list(b["weights"])
    for m in members:
        artifacts.check(paths, m, comp.fingerprint, folds_sha, what="member", loads_models=True)
        models = member_models(paths, comp, m)
        rows[m] = np.mean([model.predict(rows) for model in models], axis=0)
    k = int(folds.max()) + 1
    blender = Blender(b["method"], np.array([b["weights"][m] for m in members]), b["intercept"],
                      None if b.get("fwls_coef") is None else np.array(b["fwls_coef"]),
                      None if b.get("stack_booster") is None else lgb.Booster(model_str=b["stack_booster"]),
                      b["config"].get("stack_mix", 0.5))  # a blend of before the mix was a setting: half and half
    public = public_pairs(comp.train, comp.test, comp.items)  # as `make blend` had them
    fitted_on = b.get("meta_features", list(META_FEATURES[:3]))  # a blend of before they were recorded: three
    if b["method"] in ("fwls", "stack", "resid") and fitted_on != meta_names(public):
        raise StaleArtifact(f"the blend in {paths.output} was fitted on the meta-features {fitted_on}, this "
                            f"version computes {meta_names(public)}: rerun `make blend`")
    clock = rows if given_time else rows.drop(columns="timestamp")  # a made-up time has no sitting
    M = meta_features(clock, comp.train, scale=(k - 1) / k, public=public)
    rows["blend"] = np.clip(blender.predict(rows[members].to_numpy(), M), *comp.rating_scale)
    log.info("predict: %d pairs; cold start: %d with an unseen user, %d with an unseen item (each member's "
             "cold-start policy applies)", len(rows), int(rows["unseen_user"].sum()), int(rows["unseen_item"].sum()))
    return rows


def export_embeddings(paths: Paths, comp: Competition) -> list[Path]:
    """Write `embeddings/<model>_{users,items}.parquet` for each trained embedding member (see module doc)."""
    _, folds_sha = load_folds(paths, comp)
    written = []
    for name in EMBEDDING_MODELS:
        if not artifacts.valid(paths, name, comp.fingerprint, folds_sha, loads_models=True):
            continue
        cls, side = model_class(name), side_info(comp)
        files = artifacts.fold_model_files(paths, name, cls.suffix)
        for kind in ("user", "item"):
            frames = []
            for f in files:
                table = cls.load(f, side).embedding_table(kind)
                frames.append(table.assign(fold=int(f.stem.removeprefix("fold"))))
            out = paths.output / "embeddings" / f"{name}_{kind}s.parquet"
            write_parquet(pd.concat(frames, ignore_index=True), out)
            written.append(out)
    log.info("embeddings -> %s", ", ".join(str(p) for p in written) or "nothing (no trained dot or nn)")
    return written
