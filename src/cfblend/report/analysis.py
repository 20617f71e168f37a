"""The analyses of the report, read off trained artifacts (never trained here): cold-start rows,
error by user activity and item popularity, the PCA of item factors, and how the heaviest
raters skew the learned item biases."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from cfblend.competition import Competition
from cfblend.competition.scoring import rmse
from cfblend.models.base import SideInfo
from cfblend.models.dot import DotModel
from cfblend.paths import Paths


def test_predictions(paths: Paths, models: list[str], ids) -> pd.DataFrame:
    """Test predictions of `models`, one column each, aligned to `ids`."""
    return pd.DataFrame({m: pd.read_parquet(paths.test(m)).set_index("id")["pred"].reindex(ids).to_numpy()
                         for m in models}, index=pd.Index(ids, name="id"))


def cold_start_table(comp: Competition, solution: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    """RMSE of each model on the test rows whose user, item, or either is unseen in train."""
    test = comp.test.set_index("id").loc[preds.index]
    y = solution.set_index("id")["rating"].reindex(preds.index).to_numpy()
    groups = {"unseen_user": ~test["user_id"].isin(comp.train["user_id"]).to_numpy(),
              "unseen_item": ~test["item_id"].isin(comp.train["item_id"]).to_numpy()}
    groups["unseen_any"] = groups["unseen_user"] | groups["unseen_item"]
    groups["seen_both"] = ~groups["unseen_any"]
    rows = []
    for name, mask in groups.items():
        row = {"rows": name, "n": int(mask.sum())}
        for m in preds.columns:
            row[m] = rmse(y[mask], preds[m].to_numpy()[mask]) if mask.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def item_pca(model: DotModel, train: pd.DataFrame, items: pd.DataFrame, top: int = 50) -> pd.DataFrame:
    """The `top` movies by rating count on the first two principal components of their factors."""
    counts = train["item_id"].value_counts().head(top)
    emb, _ = model.embeddings("item", counts.index.to_numpy())
    pca = PCA(n_components=2, random_state=0).fit(emb)
    xy = pca.transform(emb)
    titles = items.set_index("item_id")["title"].reindex(counts.index).fillna("?")
    out = pd.DataFrame({"item_id": counts.index, "title": titles.to_numpy(), "count": counts.to_numpy(),
                        "pc1": xy[:, 0], "pc2": xy[:, 1]})
    out.attrs["explained"] = pca.explained_variance_ratio_
    return out


def fold_models(paths: Paths, name: str, side: SideInfo) -> list[DotModel]:
    """The saved fold models of dot-model member `name` (empty when it was not trained)."""
    return [DotModel.load(Path(f), side) for f in sorted(paths.models(name).glob("fold*.pt"))]


def mean_item_bias(models: list[DotModel], items: np.ndarray) -> pd.Series:
    """The learned bias of each of `items`, averaged over fold models."""
    return pd.Series(np.mean([m.embeddings("item", items)[1] for m in models], axis=0), index=items)


def heavy_rater_check(train: pd.DataFrame, items: pd.DataFrame, full: list[DotModel], light: list[DotModel],
                      share: float = 0.01, top: int = 15, min_count: int = 20) -> dict:
    """Item bias rankings with and without the heaviest `share` of raters ("otakus are poison").

    `full`: the `dot` member's fold models; `light`: the `dot_no_heavy` member's, trained on the
    same folds without the ratings of the heaviest `share` of raters. Item biases are averaged over
    the folds. Returns the top movies by learned bias, by mean rating and by count, and how the
    item-bias ranking (items with at least `min_count` ratings) moves without the heaviest raters.
    """
    titles = items.set_index("item_id")["title"]
    user_counts = train["user_id"].value_counts()
    n_heavy = max(1, round(len(user_counts) * share))
    stats = train.groupby("item_id")["rating"].agg(["count", "mean"])
    eligible = stats.index[stats["count"] >= min_count].to_numpy()
    b_full, b_light = mean_item_bias(full, eligible), mean_item_bias(light, eligible)
    rank_full, rank_light = b_full.rank(ascending=False), b_light.rank(ascending=False)

    def named(ids) -> list[str]:
        return [str(titles.get(i, i)) for i in ids]

    top_full = b_full.nlargest(top).index
    top_light = b_light.nlargest(top).index
    moves = (rank_full - rank_light).abs().loc[b_full.nlargest(50).index].sort_values(ascending=False).head(10)
    return {
        "n_heavy": n_heavy, "heavy_share_of_ratings": float(user_counts.iloc[:n_heavy].sum() / len(train)),
        "top_by_bias": named(top_full),
        "top_by_mean": named(stats.loc[eligible, "mean"].nlargest(top).index),
        "top_by_count": named(stats["count"].nlargest(top).index),
        "top_by_bias_without_heavy": named(top_light),
        "spearman": float(rank_full.corr(rank_light)),
        "top_overlap": len(set(top_full) & set(top_light)),
        "biggest_moves": pd.DataFrame({"title": named(moves.index),
                                       "rank_with": rank_full.loc[moves.index].astype(int).to_numpy(),
                                       "rank_without": rank_light.loc[moves.index].astype(int).to_numpy()}),
        "min_count": min_count, "top": top,
    }


def error_buckets(comp_train: pd.DataFrame, test: pd.DataFrame, y: np.ndarray, preds: pd.DataFrame,
                  key: str, edges: list[int]) -> pd.DataFrame:
    """Test RMSE of each model by bucket of the user's (or item's) rating count in train."""
    counts = test[key].map(comp_train[key].value_counts()).fillna(0).to_numpy()
    labels = [(f"{a:g}" if b - 1 == a else f"{a:g}-{b - 1:g}") if np.isfinite(b) else f"{a:g}+"
              for a, b in itertools.pairwise(edges)]
    bucket = pd.cut(counts, edges, right=False, labels=labels)
    rows = []
    for label in labels:
        m = (bucket == label)
        if m.sum() == 0:
            continue
        rows.append({"bucket": label, "n": int(m.sum()),
                     **{c: float(np.sqrt(np.mean((y[m] - preds[c].to_numpy()[m]) ** 2))) for c in preds.columns}})
    return pd.DataFrame(rows)
