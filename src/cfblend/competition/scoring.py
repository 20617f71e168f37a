"""RMSE, submission checks and Kaggle-style Public/Private scoring."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cfblend.errors import SubmissionError

log = logging.getLogger(__name__)


def rmse(y_true, y_pred) -> float:
    """Root mean squared error."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: {y_true.shape} vs {y_pred.shape}")
    if len(y_true) == 0:
        return float("nan")
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def _show(v) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def check_submission(sub: pd.DataFrame, expected_ids, where: str = "submission") -> pd.DataFrame:
    """Validate a submission frame against the expected test ids; return it indexed by id.

    Refuses wrong columns, non-integer ids, duplicate, missing or extra ids, and
    missing or non-finite ratings, each with a message naming the problem.
    """
    if list(sub.columns) != ["id", "rating"]:
        raise SubmissionError(f"{where}: columns must be exactly ['id', 'rating'], got {list(sub.columns)}")
    ids = pd.to_numeric(sub["id"], errors="coerce")
    if ids.isna().any() or (ids != np.round(ids)).any():
        row = int(np.flatnonzero((ids.isna() | (ids != np.round(ids))).to_numpy())[0])
        raise SubmissionError(f"{where}: row {row + 1}: id {_show(sub['id'].iloc[row])} is not an integer")
    ids = ids.astype(np.int64)
    dup = ids.duplicated()
    if dup.any():
        raise SubmissionError(f"{where}: duplicate ids, e.g. {ids[dup].iloc[0]} ({int(dup.sum())} duplicates)")
    expected = pd.Index(np.asarray(expected_ids, dtype=np.int64))
    missing = expected.difference(ids)
    if len(missing):
        raise SubmissionError(f"{where}: {len(missing)} test ids missing, e.g. {missing[0]}")
    extra = pd.Index(ids).difference(expected)
    if len(extra):
        raise SubmissionError(f"{where}: {len(extra)} ids not in the test set, e.g. {extra[0]}")
    rating = pd.to_numeric(sub["rating"], errors="coerce")
    bad = ~np.isfinite(rating.to_numpy(dtype=np.float64))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SubmissionError(f"{where}: row {row + 1}: rating {_show(sub['rating'].iloc[row])} is missing or not a "
                              f"finite number ({int(bad.sum())} such rows)")
    return pd.DataFrame({"rating": rating.to_numpy(dtype=np.float64)}, index=pd.Index(ids, name="id"))


def score_predictions(pred: pd.DataFrame, solution: pd.DataFrame) -> dict[str, float]:
    """Public, Private and all-rows RMSE of a checked submission (indexed by id)."""
    sol = solution.set_index("id")
    p = pred.loc[sol.index, "rating"].to_numpy()
    y = sol["rating"].to_numpy()
    public = (sol["Usage"] == "Public").to_numpy()
    return {"public_rmse": rmse(y[public], p[public]), "private_rmse": rmse(y[~public], p[~public]),
            "test_rmse": rmse(y, p)}


def score_file(sub_path: Path | str, solution_path: Path | str,
               rating_scale: tuple[float, float] | None = None) -> dict[str, float]:
    """Read, check and score a submission CSV against the hidden solution; warn about predictions
    outside `rating_scale` (scored as given, as Kaggle would)."""
    sub_path = Path(sub_path)
    try:
        sub = pd.read_csv(sub_path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise SubmissionError(f"{sub_path}: cannot read as a UTF-8 CSV file: {e}") from None
    solution = pd.read_csv(solution_path)
    pred = check_submission(sub, solution["id"], where=str(sub_path))
    if rating_scale is not None:
        lo, hi = rating_scale
        out = ~pred["rating"].between(lo, hi)
        if out.any():
            row = int(np.flatnonzero(out.to_numpy())[0])
            log.warning("%s: %d predictions outside the rating scale [%g, %g], e.g. row %d: %g; they are scored as "
                        "given (clip them to the scale to lower the RMSE)", sub_path, int(out.sum()), lo, hi, row + 1,
                        pred["rating"].iloc[row])
    return score_predictions(pred, solution)
