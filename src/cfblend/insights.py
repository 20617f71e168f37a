"""What the learned embeddings say: PCA of item factors, and how heavy raters skew item biases."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from cfblend.cache import ModelCache
from cfblend.models import make_model
from cfblend.models.base import SideInfo
from cfblend.models.dot import DotModel


def fit_dot(train: pd.DataFrame, side: SideInfo, cache: ModelCache | None) -> DotModel:
    """The registered dot model fitted on `train` (through the cache when given)."""
    model = make_model("dot", side)
    return (cache.fit(model, train, side) if cache else model.fit(train))  # type: ignore[return-value]


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


def heavy_rater_check(train: pd.DataFrame, side: SideInfo, cache: ModelCache | None, share: float = 0.01,
                      top: int = 15, min_count: int = 20) -> dict:
    """Item bias rankings with and without the heaviest `share` of raters ("otakus are poison").

    Returns the top movies by learned bias, by mean rating and by count, and how the item-bias
    ranking (items with at least `min_count` ratings) moves when the heaviest raters are left out.
    """
    titles = side.items.set_index("item_id")["title"]
    full = fit_dot(train, side, cache)
    user_counts = train["user_id"].value_counts()
    n_heavy = max(1, round(len(user_counts) * share))
    heavy = user_counts.index[:n_heavy]
    light = train[~train["user_id"].isin(heavy)]
    without = fit_dot(light, side, cache)
    stats = train.groupby("item_id")["rating"].agg(["count", "mean"])
    eligible = stats.index[stats["count"] >= min_count].to_numpy()
    b_full = pd.Series(full.embeddings("item", eligible)[1], index=eligible)
    b_light = pd.Series(without.embeddings("item", eligible)[1], index=eligible)
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
