"""Side features of a rating row (used by `nn` and `gbm`): user demographics, item genres and year, and time context.

`SideEncoder` is fit on the training rows of a fold (vocabularies and scalings come from
those rows alone) and turns any frame of (user_id, item_id, timestamp) into:

- `cats`: one integer column per categorical field, 0 = unknown / unseen in training;
- `genres`: padded genre indices per row (0 = padding), for a genre-bag embedding;
- `dense`: scaled numeric fields plus the raw one-hot of the small categorical fields and the
  genre multi-hot (the "raw categorical data" fed beside the embeddings).

Fields are used where the dataset has them: ml-latest-small has no demographics, and the
encoder simply has no user fields there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cfblend.models.ids import IdIndex

AGE_BINS = (0, 18, 25, 35, 45, 50, 56, 200)  # the ml-1m age groups, applied to raw ages too
ONE_HOT_MAX = 32  # raw one-hot only for fields with at most this many categories
SECONDS_PER_YEAR = 365.25 * 24 * 3600


def emb_size(n_categories: int) -> int:
    """fastai's rule of thumb for an embedding width: min(600, round(1.6 * n^0.56))."""
    return int(min(600, round(1.6 * n_categories ** 0.56)))


def join_side(df: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Raw side columns for each row of `df` (NaN where a table lacks the id)."""
    out = pd.DataFrame(index=df.index)
    u = users.set_index("user_id")
    i = items.set_index("item_id")
    uid, iid = df["user_id"].to_numpy(), df["item_id"].to_numpy()
    for col in ("gender", "occupation"):
        if col in u:
            out[col] = u[col].reindex(uid).to_numpy()
    if "age" in u:
        age = u["age"].reindex(uid).to_numpy(dtype=float)
        out["age"] = age
        out["age_bucket"] = pd.cut(age, AGE_BINS, right=False, labels=False)
    if "zip" in u:
        z = u["zip"].reindex(uid).astype("string").str.strip().str.upper()
        out["zip1"] = z.str[:1].to_numpy()
        out["zip3"] = z.str[:3].to_numpy()
    year = i["year"].reindex(iid).to_numpy(dtype=float)
    out["year"] = year
    out["decade"] = np.floor(year / 10) * 10
    out["genres"] = i["genres"].reindex(iid).to_numpy()
    if "timestamp" in df:
        t = df["timestamp"].to_numpy(dtype=float)
        out["t_years"] = t / SECONDS_PER_YEAR + 1970.0  # the rating's date as a fractional year
        out["movie_age"] = out["t_years"] - year  # how old the movie was when rated
    return out


@dataclass
class SideEncoder:
    """Vocabularies and scalings learned from training rows; see the module docstring."""

    use_side: bool = True
    cat_fields: list[str] = field(default_factory=list)
    vocab: dict[str, dict] = field(default_factory=dict)
    num_fields: list[str] = field(default_factory=list)
    num_stats: dict[str, tuple[float, float]] = field(default_factory=dict)
    genre_vocab: dict[str, int] = field(default_factory=dict)
    max_genres: int = 1

    def fit(self, train: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame) -> SideEncoder:
        """Learn vocabularies (seen values only) and mean/std of numeric fields from `train`."""
        self.cat_fields = ["user_id", "item_id"]
        self.vocab = {c: _vocab(train[c]) for c in self.cat_fields}
        if not self.use_side:
            return self
        side = join_side(train, users, items)
        for col in ("gender", "occupation", "age_bucket", "zip1", "zip3", "decade"):
            if col in side and side[col].notna().any():
                self.cat_fields.append(col)
                self.vocab[col] = _vocab(side[col])
        self.num_fields = [c for c in ("age", "year", "t_years", "movie_age") if c in side and side[c].notna().any()]
        for c in self.num_fields:
            v = side[c].to_numpy(dtype=float)
            self.num_stats[c] = (float(np.nanmean(v)), float(np.nanstd(v)) or 1.0)
        genres = sorted({g for gs in side["genres"] if isinstance(gs, list) for g in gs})
        self.genre_vocab = {g: n + 1 for n, g in enumerate(genres)}
        self.max_genres = max(1, max((len(gs) for gs in side["genres"] if isinstance(gs, list)), default=1))
        return self

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes (unknown slot included) of the categorical fields, in order."""
        return [len(self.vocab[c]) + 1 for c in self.cat_fields]

    @property
    def one_hot_fields(self) -> list[str]:
        """The small categorical fields also fed as raw one-hot."""
        return [c for c in self.cat_fields[2:] if len(self.vocab[c]) + 1 <= ONE_HOT_MAX]

    @property
    def n_dense(self) -> int:
        """Width of the dense block: numerics, their missing flags, one-hots, genre multi-hot."""
        if not self.use_side:
            return 0
        return 2 * len(self.num_fields) + sum(len(self.vocab[c]) + 1 for c in self.one_hot_fields) + \
            len(self.genre_vocab)

    def vocab_index(self, field_name: str, values) -> np.ndarray:
        """Indices of `values` in the vocabulary of `field_name` (0 for unseen values)."""
        return _lookup(self.vocab[field_name], values)

    def transform(self, df: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame) -> dict[str, np.ndarray]:
        """Encode rows of `df`: {'cats': int64 (n, f), 'genres': int64 (n, g), 'dense': float32 (n, d)}."""
        n = len(df)
        cats = np.zeros((n, len(self.cat_fields)), dtype=np.int64)
        cats[:, 0] = _lookup(self.vocab["user_id"], df["user_id"])
        cats[:, 1] = _lookup(self.vocab["item_id"], df["item_id"])
        genres = np.zeros((n, self.max_genres), dtype=np.int64)
        if not self.use_side:
            return {"cats": cats, "genres": genres, "dense": np.zeros((n, 0), dtype=np.float32)}
        side = join_side(df, users, items)
        for j, c in enumerate(self.cat_fields[2:], start=2):
            cats[:, j] = _lookup(self.vocab[c], side[c])
        # the dense block is written column by column into one float32 array: at 20M rows, float64 blocks
        # and their concatenation took several GB more than the result
        dense = np.empty((n, self.n_dense), dtype=np.float32)
        col = 0
        for c in self.num_fields:
            v = side[c].to_numpy(dtype=float)
            mean, std = self.num_stats[c]
            missing = np.isnan(v)
            dense[:, col] = np.where(missing, 0.0, (v - mean) / std)
            dense[:, col + 1] = missing
            col += 2
        for c in self.one_hot_fields:
            j, width = self.cat_fields.index(c), len(self.vocab[c]) + 1
            dense[:, col:col + width] = 0.0
            dense[np.arange(n), col + cats[:, j]] = 1.0
            col += width
        # genres depend on the item alone: encode each distinct item once, then gather per row
        uniq, inv = np.unique(df["item_id"].to_numpy(), return_inverse=True)
        per_item = items.set_index("item_id")["genres"].reindex(uniq)
        g_item = np.zeros((len(uniq), self.max_genres), dtype=np.int64)
        m_item = np.zeros((len(uniq), len(self.genre_vocab) + 1), dtype=np.float32)
        for r, gs in enumerate(per_item):
            if isinstance(gs, list):
                idx = [self.genre_vocab[g] for g in gs if g in self.genre_vocab][: self.max_genres]
                g_item[r, : len(idx)] = idx
                m_item[r, idx] = 1.0
        genres = g_item[inv]
        for s in range(0, n, 1 << 20):  # in slices: no (rows x genres) temporary
            dense[s:s + (1 << 20), col:] = m_item[inv[s:s + (1 << 20)], 1:]
        return {"cats": cats, "genres": genres, "dense": dense}

    def to_dict(self) -> dict:
        """JSON-able state (for saving with a model)."""
        return {"use_side": self.use_side, "cat_fields": self.cat_fields,
                "vocab": {c: [[_plain(k), v] for k, v in voc.items()] for c, voc in self.vocab.items()},
                "num_fields": self.num_fields, "num_stats": self.num_stats, "genre_vocab": self.genre_vocab,
                "max_genres": self.max_genres}

    @classmethod
    def from_dict(cls, d: dict) -> SideEncoder:
        """Inverse of `to_dict`."""
        return cls(use_side=d["use_side"], cat_fields=list(d["cat_fields"]),
                   vocab={c: {k: v for k, v in pairs} for c, pairs in d["vocab"].items()},
                   num_fields=list(d["num_fields"]), num_stats={k: tuple(v) for k, v in d["num_stats"].items()},
                   genre_vocab=dict(d["genre_vocab"]), max_genres=d["max_genres"])


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def _vocab(values: pd.Series) -> dict:
    """Seen values -> 1..n, in sorted order (NaN never enters a vocabulary)."""
    uniq = pd.unique(pd.Series(values).dropna())
    return {_plain(v): n + 1 for n, v in enumerate(sorted(uniq, key=lambda x: (str(type(x)), x)))}


def _lookup(vocab: dict, values) -> np.ndarray:
    """Indices of `values` in `vocab` (1..n in insertion order); 0 for unseen or missing values."""
    return IdIndex(list(vocab), ordered=True)(pd.Series(values).to_numpy())
