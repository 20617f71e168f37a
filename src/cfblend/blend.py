"""Blend the models' out-of-fold predictions into `submission.csv`.

Methods: `linear` (non-negative weights plus a free intercept, least squares), `hill`
(Caruana's greedy ensemble selection with replacement), `fwls` (feature-weighted linear
stacking, Sill et al. 2009: each model's weight is a linear function of meta-features, the log
rating counts of the row's user and item, fit by ridge), and `auto` (the default): `linear`,
unless `fwls` beats it on the honest CV. The blend's own CV score is honest: for each fold,
weights are fit on the OOF rows of the other folds and scored on it. The final weights are fit
on all OOF rows and applied to the test predictions.

Meta-features are counts of rows, never ratings, and are what each prediction's model saw: for
an OOF row of fold k, the counts in the other folds; for a test row, (K-1)/K of the counts in
the whole train set (the average over the fold models).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from cfblend.competition import Competition
from cfblend.io import write_csv, write_json, write_parquet
from cfblend.paths import Paths
from cfblend.scoring import check_submission, rmse

log = logging.getLogger(__name__)


MIN_STD = 0.02  # stars: OOF predictions that vary less than this are left out of the blend


@dataclass
class BlendConfig:
    """Which predictions to blend, and how."""

    models: list[str] = field(default_factory=list)  # empty: every trained model (constant ones left out)
    method: str = "auto"  # linear, hill, fwls, or auto
    hill_steps: int = 50
    ridge: float = 1.0  # fwls


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
    return np.column_stack(oof_cols), np.column_stack(test_cols), folds  # type: ignore[return-value]


def fit_linear(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares with non-negative weights and an unconstrained intercept."""
    A = np.column_stack([X, np.ones(len(X)), -np.ones(len(X))])
    coef, _ = nnls(A, y)
    return coef[:-2], float(coef[-2] - coef[-1])


def fit_hill(X: np.ndarray, y: np.ndarray, steps: int = 50) -> tuple[np.ndarray, float]:
    """Greedy forward selection with replacement of the model that most lowers the average's RMSE."""
    counts = np.zeros(X.shape[1])
    total = np.zeros(len(X))
    for step in range(1, steps + 1):
        errs = [rmse(y, (total + X[:, j]) / step) for j in range(X.shape[1])]
        j = int(np.argmin(errs))
        counts[j] += 1
        total += X[:, j]
    return counts / counts.sum(), 0.0


def meta_features(rows: pd.DataFrame, seen: pd.DataFrame, scale: float = 1.0) -> np.ndarray:
    """[1, log1p(user count), log1p(item count)] of `rows`, counted in `seen` (times `scale`)."""
    uc, ic = seen["user_id"].value_counts(), seen["item_id"].value_counts()
    u = np.log1p(rows["user_id"].map(uc).fillna(0).to_numpy(np.float64) * scale)
    i = np.log1p(rows["item_id"].map(ic).fillna(0).to_numpy(np.float64) * scale)
    return np.column_stack([np.ones(len(rows)), u, i])


def _fwls_design(X: np.ndarray, M: np.ndarray) -> np.ndarray:
    return np.column_stack([X[:, [j]] * M for j in range(X.shape[1])] + [M])


def fit_fwls(X: np.ndarray, M: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge coefficients of the feature-weighted linear stack."""
    A = _fwls_design(X, M)
    return np.linalg.solve(A.T @ A + ridge * np.eye(A.shape[1]), A.T @ y)


@dataclass
class Blender:
    """A fitted blend: `predict(X, M)` for prediction matrix X and meta-features M."""

    method: str
    weights: np.ndarray
    intercept: float = 0.0
    coef: np.ndarray | None = None  # fwls

    @classmethod
    def fit(cls, method: str, X: np.ndarray, M: np.ndarray, y: np.ndarray, cfg: BlendConfig) -> Blender:
        if method == "linear":
            return cls(method, *fit_linear(X, y))
        if method == "hill":
            return cls(method, *fit_hill(X, y, cfg.hill_steps))
        if method == "fwls":
            coef = fit_fwls(X, M, y, cfg.ridge)
            m = M.shape[1]
            mean_meta = M.mean(0)  # report each model's weight at the average row
            weights = np.array([coef[j * m:(j + 1) * m] @ mean_meta for j in range(X.shape[1])])
            return cls(method, weights, float(coef[-m:] @ mean_meta), coef)
        raise ValueError(f"unknown blend method {method!r}; use linear, hill, fwls or auto")

    def predict(self, X: np.ndarray, M: np.ndarray) -> np.ndarray:
        if self.coef is not None:
            return _fwls_design(X, M) @ self.coef
        return X @ self.weights + self.intercept


def honest_cv(method: str, X: np.ndarray, M: np.ndarray, y: np.ndarray, folds: np.ndarray, cfg: BlendConfig,
              scale: tuple[float, float]) -> tuple[np.ndarray, list[float]]:
    """OOF blend predictions with weights fit on the other folds, and the per-fold RMSE."""
    oof = np.empty(len(y))
    fold_rmse = []
    for k in range(int(folds.max()) + 1):
        b = Blender.fit(method, X[folds != k], M[folds != k], y[folds != k], cfg)
        oof[folds == k] = np.clip(b.predict(X[folds == k], M[folds == k]), *scale)
        fold_rmse.append(rmse(y[folds == k], oof[folds == k]))
    return oof, fold_rmse


def trained(paths: Paths) -> list[str]:
    """Models with OOF and test predictions in the output folder (the blend itself excluded)."""
    return sorted(p.stem for p in (paths.output / "oof").glob("*.parquet")
                  if p.stem != "blend" and paths.test(p.stem).exists())


def run_blend(comp: Competition, paths: Paths, cfg: BlendConfig | None = None) -> dict:
    """Honest CV of the blend, final weights, `submission.csv`, and the blend's artifacts."""
    cfg = cfg or BlendConfig()
    t0 = time.perf_counter()
    models = list(cfg.models) or trained(paths)
    X, T, folds = load_predictions(paths, comp, models)
    keep = X.std(axis=0) >= MIN_STD  # a (near-)constant predictor duplicates the intercept, destabilising the fit
    if keep.any():
        if not keep.all():
            log.info("blend: leaving out near-constant predictions of %s",
                     [m for m, k in zip(models, keep, strict=True) if not k])
        models, X, T = [m for m, k in zip(models, keep, strict=True) if k], X[:, keep], T[:, keep]
    y = comp.train["rating"].to_numpy(np.float64)
    k_folds = int(folds.max()) + 1
    M = np.empty((len(y), 3))
    for k in range(k_folds):
        M[folds == k] = meta_features(comp.train[folds == k], comp.train[folds != k])
    MT = meta_features(comp.test, comp.train, scale=(k_folds - 1) / k_folds)
    methods = ["linear", "fwls"] if cfg.method == "auto" else [cfg.method]
    cv = {m: honest_cv(m, X, M, y, folds, cfg, comp.rating_scale) for m in methods}
    cv_rmse = {m: float(np.mean(f)) for m, (_, f) in cv.items()}
    method = min(methods, key=lambda m: cv_rmse[m])
    oof, fold_rmse = cv[method]
    blender = Blender.fit(method, X, M, y, cfg)
    w, b = blender.weights, blender.intercept
    test = np.clip(blender.predict(T, MT), *comp.rating_scale)

    sample = pd.read_csv(paths.competition(comp.name) / "sample_submission.csv")
    sub = pd.DataFrame({"id": comp.test["id"].to_numpy(), "rating": test}).set_index("id").loc[sample["id"]]
    sub = sub.reset_index()
    check_submission(sub, sample["id"], where="blend submission")
    assert sub["id"].tolist() == sample["id"].tolist()
    write_csv(sub, paths.output / "submission.csv")
    write_parquet(pd.DataFrame({"id": comp.train["id"].to_numpy(), "fold": folds, "pred": oof}), paths.oof("blend"))
    write_parquet(pd.DataFrame({"id": comp.test["id"].to_numpy(), "pred": test}), paths.test("blend"))
    scores = {"model": "blend", "competition": comp.name, "method": method, "cv_by_method": cv_rmse,
              "weights": dict(zip(models, map(float, w), strict=True)), "intercept": b,
              "fwls_coef": None if blender.coef is None else blender.coef.tolist(),
              "fold_rmse": fold_rmse, "cv_rmse_mean": float(np.mean(fold_rmse)),
              "cv_rmse_std": float(np.std(fold_rmse)), "oof_rmse": rmse(y, oof),
              "fit_seconds": time.perf_counter() - t0,
              "config": {"models": models, "method": cfg.method, "hill_steps": cfg.hill_steps, "ridge": cfg.ridge}}
    write_json(scores, paths.scores("blend"))
    log.info("blend: honest CV by method %s; using %s", {m: round(v, 5) for m, v in cv_rmse.items()}, method)
    log.info("blend (%s): weights %s, intercept %.3f; honest CV %.4f ± %.4f, OOF %.4f -> %s", method,
             {m: round(v, 3) for m, v in scores["weights"].items()}, b, scores["cv_rmse_mean"],
             scores["cv_rmse_std"], scores["oof_rmse"], paths.output / "submission.csv")
    return scores
