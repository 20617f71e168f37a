"""Figures of the report, drawn with matplotlib's Agg backend and returned as PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def importance_png(gain: pd.Series, top: int = 25) -> bytes:
    """Horizontal bar chart of the largest feature gains."""
    g = gain.sort_values().tail(top)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(g) + 1))
    ax.barh(g.index, g.to_numpy(), color="#4c72b0")
    ax.set_xlabel("total gain (mean over folds)")
    ax.set_title("LightGBM feature importance")
    return _png(fig)


def fold_rmse_png(fold_rmse: dict[str, list[float]]) -> bytes:
    """RMSE of each fold, one line per model."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, vals in sorted(fold_rmse.items(), key=lambda kv: np.mean(kv[1])):
        ax.plot(range(len(vals)), vals, marker="o", label=name)
    ax.set_xlabel("fold")
    ax.set_ylabel("RMSE")
    ax.set_xticks(range(max(len(v) for v in fold_rmse.values())))
    ax.set_title("Per-fold RMSE")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def pca_png(coords: np.ndarray, labels: list[str], explained: np.ndarray) -> bytes:
    """Items on the first two principal components of their embeddings, labelled by title."""
    fig, ax = plt.subplots(figsize=(11, 9))
    ax.scatter(coords[:, 0], coords[:, 1], s=12, color="#dd8452")
    for (x, y), label in zip(coords, labels, strict=True):
        ax.annotate(label[:32], (x, y), fontsize=7, alpha=0.85, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel(f"PC1 ({explained[0]:.1%} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.1%} of variance)")
    ax.set_title("Item embeddings of the dot model: top movies by rating count")
    ax.grid(alpha=0.3)
    return _png(fig)


def bucket_png(table: pd.DataFrame, by: str) -> bytes:
    """RMSE per bucket (rows of `table`), one line per model column."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for col in table.columns.drop(["bucket", "n"]):
        ax.plot(table["bucket"].astype(str), table[col], marker="o", label=col)
    ax.set_xlabel(by)
    ax.set_ylabel("test RMSE")
    ax.set_title(f"Error by {by}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    return _png(fig)
