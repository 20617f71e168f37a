"""`make blend`: read every member's OOF and test predictions, blend them (`blend.blend`), and
write `submission.csv` (checked against the sample submission) with the blend's own artifacts.

Only members whose artifacts check out (`runs.artifacts.check`: complete, and made from the
competition and folds there now) are read. The blend's manifest, `scores/blend.json`, is written
last and records each member's run fingerprint: `check_blend` refuses a blend one of whose
members was retrained (or went stale) since, so a stale submission is never scored, reported or
submitted.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from cfblend.competition import Competition
from cfblend.competition.folds import load_folds
from cfblend.competition.scoring import check_submission, rmse
from cfblend.ensemble.blend import (
    MIN_STD,
    BlendConfig,
    blend,
    meta_names,
    oof_and_test_meta,
    public_pairs,
)
from cfblend.io import fault_point, write_csv, write_json, write_parquet
from cfblend.paths import Paths
from cfblend.runs import artifacts, trained_members
from cfblend.runs.artifacts import StaleArtifact

log = logging.getLogger(__name__)


def load_predictions(paths: Paths, comp: Competition, models: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OOF (train rows x models), test (test rows x models) and the fold of each train row.

    Aligned by id; a missing file, a missing or extra id, or a NaN is a clear error.
    """
    if not models:
        raise ValueError("no models to blend")
    oof_cols, test_cols, folds = [], [], None
    for m in models:
        for path in (paths.oof(m), paths.test(m)):
            if not path.exists():
                raise FileNotFoundError(f"{path} missing: train it first (`make train MODEL={m}`)")
        oof = pd.read_parquet(paths.oof(m)).set_index("id")
        test = pd.read_parquet(paths.test(m)).set_index("id")
        for name, frame, ids in (("oof", oof, comp.train["id"]), ("test", test, comp.test["id"])):
            if len(frame) != len(ids) or not frame.index.isin(ids).all() or frame["pred"].isna().any():
                raise ValueError(f"{name}/{m}.parquet is not aligned with the competition's ids (or has NaN); "
                                 f"retrain {m}")
        oof = oof.loc[comp.train["id"]]
        if folds is None:
            folds = oof["fold"].to_numpy()
        elif not np.array_equal(folds, oof["fold"].to_numpy()):
            raise ValueError(f"oof/{m}.parquet was made with other folds than {models[0]}; retrain it")
        oof_cols.append(oof["pred"].to_numpy())
        test_cols.append(test.loc[comp.test["id"], "pred"].to_numpy())
    assert folds is not None
    return np.column_stack(oof_cols), np.column_stack(test_cols), folds


def run_blend(comp: Competition, paths: Paths, cfg: BlendConfig | None = None) -> dict:
    """Honest CV of the blend, final weights, `submission.csv`, and the blend's artifacts."""
    cfg = cfg or BlendConfig()
    _, folds_sha = load_folds(paths, comp)
    t0 = time.perf_counter()
    models = list(cfg.models) or sorted(trained_members(paths))
    if not models:
        raise FileNotFoundError(f"no trained model in {paths.output}: run `make train MODEL=...` or `make all` first")
    runs = {m: artifacts.check(paths, m, comp.fingerprint, folds_sha, what="member")["fingerprint"] for m in models}
    X, T, folds = load_predictions(paths, comp, models)
    keep = X.std(axis=0) >= MIN_STD  # a (near-)constant predictor duplicates the intercept, destabilising the fit
    if keep.any():
        if not keep.all():
            log.info("blend: leaving out near-constant predictions of %s",
                     [m for m, k in zip(models, keep, strict=True) if not k])
        models, X, T = [m for m, k in zip(models, keep, strict=True) if k], X[:, keep], T[:, keep]
    y = comp.train["rating"].to_numpy(np.float64)
    public = public_pairs(comp.train, comp.test, comp.items)
    M, MT = oof_and_test_meta(comp.train, comp.test, folds, public)
    res = blend(X, T, y, folds, M, MT, cfg, comp.rating_scale)
    method, oof, fold_rmse, cv_rmse, test = res.method, res.oof, res.fold_rmse, res.cv_by_method, res.test
    w, b = res.blender.weights, res.blender.intercept

    sample = pd.read_csv(paths.competition(comp.name) / "sample_submission.csv")
    sub = pd.DataFrame({"id": comp.test["id"].to_numpy(), "rating": test}).set_index("id").loc[sample["id"]]
    sub = sub.reset_index()
    check_submission(sub, sample["id"], where="blend submission")
    assert sub["id"].tolist() == sample["id"].tolist()
    paths.scores("blend").unlink(missing_ok=True)  # the manifest goes first and comes back last
    fault_point("blend:after_unlink")
    write_csv(sub, paths.output / "submission.csv")
    fault_point("blend:after_submission")
    write_parquet(pd.DataFrame({"id": comp.train["id"].to_numpy(), "fold": folds, "pred": oof}), paths.oof("blend"))
    write_parquet(pd.DataFrame({"id": comp.test["id"].to_numpy(), "pred": test}), paths.test("blend"))
    fault_point("blend:after_predictions")
    files = [paths.output / "submission.csv", paths.oof("blend"), paths.test("blend")]
    scores = {"model": "blend", "competition": comp.name, "competition_sha": comp.fingerprint,
              "folds_sha": folds_sha, "members": runs, "files": artifacts.file_hashes(paths, files),
              "method": method, "cv_by_method": cv_rmse,
              "weights": dict(zip(models, map(float, w), strict=True)), "intercept": b,
              "meta_features": meta_names(public),
              "fwls_coef": None if res.blender.coef is None else res.blender.coef.tolist(),
              "stack_booster": None if res.blender.booster is None else res.blender.booster.model_to_string(),
              "fold_rmse": fold_rmse, "cv_rmse_mean": float(np.mean(fold_rmse)),
              "cv_rmse_std": float(np.std(fold_rmse)), "oof_rmse": rmse(y, oof),
              "fit_seconds": time.perf_counter() - t0,
              "config": {"models": models, "method": cfg.method, "hill_steps": cfg.hill_steps, "ridge": cfg.ridge,
                         "stack_rounds": cfg.stack_rounds, "stack_leaves": cfg.stack_leaves,
                         "stack_lr": cfg.stack_lr, "stack_mix": cfg.stack_mix, "stack_max_rows": cfg.stack_max_rows}}
    write_json(scores, paths.scores("blend"))
    log.info("blend: honest CV by method %s; using %s", {m: round(v, 5) for m, v in cv_rmse.items()}, method)
    log.info("blend (%s): weights %s, intercept %.3f; honest CV %.4f ± %.4f, OOF %.4f -> %s", method,
             {m: round(v, 3) for m, v in scores["weights"].items()}, b, scores["cv_rmse_mean"],
             scores["cv_rmse_std"], scores["oof_rmse"], paths.output / "submission.csv")
    return scores


def check_blend(paths: Paths, comp: Competition, folds_sha: str) -> dict:
    """The blend's manifest, after checking its files and that every member is still the run it blended."""
    m = artifacts.check(paths, "blend", comp.fingerprint, folds_sha, what="blend")
    for member, fp in m.get("members", {}).items():
        try:
            now = artifacts.check(paths, member, comp.fingerprint, folds_sha, what="member")["fingerprint"]
        except StaleArtifact as e:
            raise StaleArtifact(f"the blend in {paths.output} is stale: {e}; then `make blend`") from None
        if now != fp:
            raise StaleArtifact(f"the blend in {paths.output} is stale: {member} was retrained since it was made: "
                                "rerun `make blend`")
    return m


def check_submission_file(paths: Paths, comp: Competition) -> None:
    """Refuse `submission.csv` of the output folder unless the blend that wrote it is current."""
    _, folds_sha = load_folds(paths, comp)
    check_blend(paths, comp, folds_sha)
