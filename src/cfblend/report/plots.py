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


def learning_curves_png(curves: dict[str, list[dict]]) -> bytes:
    """One panel per model: each recorded series per epoch (or boosting round), one thin line per fold.
    Losses are drawn as their square root, on the RMSE scale; the held-out fold's RMSE is `valid_rmse`."""
    names = [m for m, c in curves.items() if c]
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    for ax, name in zip(axes.flat, names, strict=False):
        keys = [k for k in curves[name][0] if k != "fold"]
        for color, key in zip(colors, keys, strict=False):
            label = f"√{key}" if "loss" in key else key
            for j, fold in enumerate(curves[name]):
                vals = np.sqrt(fold[key]) if "loss" in key else np.asarray(fold[key])
                ax.plot(np.arange(1, len(vals) + 1), vals, color=color, lw=1, alpha=0.7,
                        label=label if j == 0 else None)
        ax.set_title(name)
        ax.set_xlabel("round" if name.startswith("gbm") else "epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("Learning curves (one line per fold)")
    fig.tight_layout()
    return _png(fig)
