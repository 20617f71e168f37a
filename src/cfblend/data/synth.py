"""A synthetic dataset shaped like ML-25M, for testing the pipeline at scale offline (`make synth`).

162,541 users, 59,047 items and 25,000,095 ratings by default; power-law (Zipf) item popularity
and user activity (every user with at least 20 ratings, as in ML-25M); ratings from a low-rank
signal plus user and item biases plus noise, rounded to half stars in [0.5, 5]. Written in the
ml-latest/ml-25m format (`ratings.csv`, `movies.csv`) so it loads like the real thing. Seeded:
the same arguments give the same files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from cfblend.io import sha256_file, staged_dir, write_json

log = logging.getLogger(__name__)

GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")


@dataclass(frozen=True)
class SynthSpec:
    """Shape of the synthetic set."""

    n_users: int = 162_541
    n_items: int = 59_047
    n_ratings: int = 25_000_095
    min_per_user: int = 20
    item_zipf: float = 1.0  # popularity ~ rank^-item_zipf
    user_zipf: float = 0.9  # activity ~ rank^-user_zipf (before the minimum)
    factors: int = 8
    noise: float = 0.8
    seed: int = 0


def _user_counts(s: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: min_per_user plus a Zipf share of the rest, capped at half the catalogue."""
    w = rng.permutation(np.arange(1, s.n_users + 1, dtype=np.float64) ** -s.user_zipf)
    cap = s.n_items // 2
    extra = s.n_ratings - s.min_per_user * s.n_users
    if extra < 0 or s.n_ratings > cap * s.n_users:
        raise ValueError("n_ratings must lie between min_per_user and n_items/2 ratings per user")
    share = np.zeros(s.n_users)
    free = np.ones(s.n_users, dtype=bool)
    left = float(extra)
    while left > 0.5:  # water-filling: capped users hand their excess to the others
        share[free] += left * w[free] / w[free].sum()
        over = share > cap - s.min_per_user
        left = float((share[over] - (cap - s.min_per_user)).sum())
        share[over] = cap - s.min_per_user
        free &= ~over
    counts = s.min_per_user + np.floor(share).astype(np.int64)
    short = s.n_ratings - int(counts.sum())
    room = np.flatnonzero(counts < cap)
    counts[room[np.argsort(-w[room], kind="stable")[:short]]] += 1  # hand out the rounding remainder
    return counts


def generate_pairs(s: SynthSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) index pairs: users by activity counts, items by Zipf popularity."""
    counts = _user_counts(s, rng)
    pop = np.arange(1, s.n_items + 1, dtype=np.float64) ** -s.item_zipf
    cdf = np.cumsum(pop[rng.permutation(s.n_items)])
    cdf /= cdf[-1]
    users = np.repeat(np.arange(s.n_users, dtype=np.int64), counts)
    items = np.searchsorted(cdf, rng.random(len(users)))
    for attempt in range(60):  # redraw repeated pairs until every pair is distinct
        key = users * s.n_items + items
        order = np.argsort(key, kind="stable")
        dup = np.zeros(len(key), dtype=bool)
        dup[order[1:]] = key[order[1:]] == key[order[:-1]]
        if not dup.any():
            return users, items
        n_dup = int(dup.sum())  # redrawn by popularity; late rounds uniformly, so heavy users find room
        items[dup] = np.searchsorted(cdf, rng.random(n_dup)) if attempt < 10 else rng.integers(0, s.n_items, n_dup)
    raise RuntimeError("could not draw distinct pairs; lower n_ratings or raise n_items")


def generate(s: SynthSpec = SynthSpec()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ratings (userId, movieId, rating, timestamp) and movies (movieId, title, genres)."""
    rng = np.random.default_rng(s.seed)
    u, i = generate_pairs(s, rng)
    P = rng.normal(0, 0.45, (s.n_users, s.factors)).astype(np.float32)
    Q = rng.normal(0, 0.45, (s.n_items, s.factors)).astype(np.float32)
    bu = rng.normal(0, 0.35, s.n_users).astype(np.float32)
    bi = rng.normal(0, 0.5, s.n_items).astype(np.float32)
    rating = np.empty(len(u), dtype=np.float32)
    for a in range(0, len(u), 2_000_000):  # chunks keep the factor gathers small
        b = slice(a, a + 2_000_000)
        x = 3.55 + bu[u[b]] + bi[i[b]] + np.einsum("ij,ij->i", P[u[b]], Q[i[b]]) + \
            rng.normal(0, s.noise, len(u[b])).astype(np.float32)
        rating[b] = np.clip(np.round(x * 2) / 2, 0.5, 5.0)
    ts = rng.integers(789_652_009, 1_574_327_703, len(u), dtype=np.int64)  # the ML-25M time span
    order = np.lexsort((i, u))
    ratings = pd.DataFrame({"userId": u[order] + 1, "movieId": i[order] + 1, "rating": rating[order],
                            "timestamp": ts[order]})
    years = rng.integers(1920, 2020, s.n_items)
    n_genres = rng.integers(0, 4, s.n_items)
    genres = ["|".join(sorted(rng.choice(GENRES, k, replace=False))) if k else "(no genres listed)"
              for k in n_genres]
    movies = pd.DataFrame({"movieId": np.arange(1, s.n_items + 1), "title": [f"Movie {j} ({y})" for j, y in
                                                                              enumerate(years, 1)],
                           "genres": genres})
    return ratings, movies


def write_synth(folder: Path | str, s: SynthSpec = SynthSpec()) -> Path:
    """Generate and write `ratings.csv`, `movies.csv` and `SOURCE.json` into `folder` (atomically)."""
    folder = Path(folder)
    ratings, movies = generate(s)
    with staged_dir(folder) as tmp:
        pacsv.write_csv(pa.Table.from_pandas(ratings, preserve_index=False), tmp / "ratings.csv")
        movies.to_csv(tmp / "movies.csv", index=False)
        write_json({"source": "synthetic", "spec": s.__dict__, "sha256": sha256_file(tmp / "ratings.csv")},
                   tmp / "SOURCE.json")
    log.info("synthetic set: %d users, %d items, %d ratings -> %s", ratings["userId"].nunique(),
             ratings["movieId"].nunique(), len(ratings), folder)
    return folder
