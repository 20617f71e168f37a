"""Distance of embeddings: the movies nearest to a movie by cosine similarity of the learned item
factors, read off trained fold models (nothing is trained here).

Members that learn item embeddings: `dot` (its item factors), `nn` (the item factors of its
user·item term) and `bfm` (the item-id factors, one matrix per saved posterior sample). A fold
model's factors live in their own rotation of the latent space, so similarities are computed
within each fold model (and posterior sample) and then averaged. Movies with few ratings have
noisy factors: only movies with at least `min_count` train ratings are candidates (a query with
fewer is answered, with a warning).
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from cfblend.competition import Competition
from cfblend.models import model_class
from cfblend.models.ids import IdIndex
from cfblend.paths import Paths
from cfblend.runs import artifacts
from cfblend.runs.cv import side_info

log = logging.getLogger(__name__)

EMBEDDING_MEMBERS = ("dot", "nn", "bfm", "bfm_opu")  # bfm_opu: the Bayesian FM of the fast list


def factor_sets(paths: Paths, comp: Competition, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(item ids, factor matrix) of every saved fold model (and posterior sample) of member `name`."""
    cls, side = model_class(name), side_info(comp)
    out = []
    for f in artifacts.fold_model_files(paths, name, cls.suffix):
        ids, mats = cls.load(f, side).item_factors()
        out += [(ids, m) for m in mats]
    return out


def nearest(sets: list[tuple[np.ndarray, np.ndarray]], item: int, candidates: np.ndarray, k: int = 5) -> pd.Series:
    """The `k` candidates with the highest cosine similarity to `item`, averaged over the factor sets
    that know `item` (each candidate averaged over the sets that know it)."""
    total = np.zeros(len(candidates))
    count = np.zeros(len(candidates))
    for ids, m in sets:
        index = IdIndex(ids, ordered=True)
        q = index(np.array([item]))[0]
        if q == 0:
            continue
        unit = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        pos = index(candidates)
        known = pos > 0
        total[known] += unit[pos[known] - 1] @ unit[q - 1]
        count[known] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = pd.Series(total / count, index=candidates)
    return sim.drop(item, errors="ignore").dropna().nlargest(k)


def find_item(items: pd.DataFrame, query: str) -> int:
    """An item id from an id or a title (case-insensitive; an exact title wins over a part of one);
    a ValueError saying what matched when nothing or several things do."""
    q = query.strip()
    if re.fullmatch(r"\d+", q) and int(q) in set(items["item_id"]):
        return int(q)
    titles = items["title"].fillna("").astype(str)
    exact = items[titles.str.lower() == q.lower()]
    if len(exact) == 1:
        return int(exact["item_id"].iloc[0])
    part = items[titles.str.lower().str.contains(q.lower(), regex=False)]
    if len(part) == 1:
        return int(part["item_id"].iloc[0])
    if not len(part):
        raise ValueError(f"no movie matches {query!r} (title, case-insensitive, or id)")
    shown = "; ".join(f"{t} (id {i})" for i, t in zip(part["item_id"].head(8), part["title"].head(8), strict=True))
    raise ValueError(f"{len(part)} movies match {query!r}: {shown}{' ...' if len(part) > 8 else ''}; "
                     "give more of the title or the id")


def similar_table(paths: Paths, comp: Competition, items: list[int], members: list[str], k: int = 5,
                  min_count: int = 20) -> pd.DataFrame:
    """For each of `items` and each member, the `k` nearest movies: query, member, rank, title,
    similarity, rating count. Each member's fold models are loaded once for all the queries."""
    counts = comp.train["item_id"].value_counts()
    candidates = counts.index[counts >= min_count].to_numpy()
    titles = comp.items.set_index("item_id")["title"]
    rows = []
    for name in members:
        sets = factor_sets(paths, comp, name)
        for item in items:
            for rank, (other, sim) in enumerate(nearest(sets, item, candidates, k).items(), 1):
                rows.append({"query": int(item), "member": name, "rank": rank, "title": str(titles.get(other, other)),
                             "item_id": int(other), "similarity": float(sim), "ratings": int(counts.get(other, 0))})
    return pd.DataFrame(rows, columns=["query", "member", "rank", "title", "item_id", "similarity", "ratings"])


def side_by_side(table: pd.DataFrame) -> pd.DataFrame:
    """One row per rank, one column per member: 'title (ratings, similarity)'."""
    cell = table.assign(cell=[f"{t} ({n}, {s:.2f})" for t, n, s in
                              zip(table["title"], table["ratings"], table["similarity"], strict=True)])
    return cell.pivot(index="rank", columns="member", values="cell").reset_index()
