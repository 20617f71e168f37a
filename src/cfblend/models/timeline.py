"""A user's public timeline: the public (train and test) pairs of each user ordered by time, ties by item id.

`timeline_ranks` and `timeline_table` come from which pairs were rated and when, never from a rating;
`RatingTimeline` lays the ratings of a model's fit rows along those timelines, so that a row can be given the
ratings its user gave just before and just after it (never its own). MovieLens users rate in sittings, from
lists the site shows, and ratings given side by side move together beyond the user's bias and the day's mood:
on ml-1m's random 90/10 split the mean residual (from item and user biases) of up to ten training ratings on
either side of a test pair correlates 0.20 with the pair's own residual, the user's mean residual that day 0.11
(`bench/neighbour_signal.py`). Two sharper views of the same sitting: the ratings the user gave within a minute
or five of the row, by the clock (`SITTING_SECONDS`), and the neighbours weighted by how many genres their movie
shares with the row's (`genre_masks`): users browse lists of one kind. A third, wider than genres: the neighbours
weighted by how alike their movie and the row's are in who rated them (`item_vectors`, from the public pairs alone).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

SITTING_SECONDS = (0, 60, 300)  # `nb_sit<s>`: the user's fit rows rated within s seconds of the row
SIMILAR_RANK = 64  # `item_vectors`: the rank of the co-rating space
SIMILAR_POWER = 3  # `nb_sim<window>`: a neighbour's weight is its movie's cosine with the row's, cubed (0 if below 0)
WINDOW_BLOCK = 1 << 18  # rows at a time in the weighted window means (the vectors' gathers stay ~70 MB)


def _by_time(pairs: pd.DataFrame) -> pd.DataFrame:
    """The distinct public pairs with their timestamps, ordered by user, time and item id (the timeline's order)."""
    p = pairs[["user_id", "item_id", "timestamp"]].drop_duplicates(["user_id", "item_id"])
    return p.sort_values(["user_id", "timestamp", "item_id"], kind="stable")


class TimelineRanks:
    """Each public pair's place (0, 1, ...) among its user's public pairs ordered by time, ties by item id (the
    order of `timeline_table`'s `tl_pos`, as whole numbers): `of(users, items)`. Sorted integer keys, so a
    lookup is a binary search, in memory and time fit for 25M pairs."""

    def __init__(self, pairs: pd.DataFrame) -> None:
        p = _by_time(pairs)
        self.users, self.items = np.unique(p["user_id"].to_numpy()), np.unique(p["item_id"].to_numpy())
        by_user = p.groupby("user_id", sort=False)
        rank, count = by_user.cumcount().to_numpy(), by_user["item_id"].transform("size").to_numpy()
        keys, _ = self._keys(p["user_id"].to_numpy(), p["item_id"].to_numpy())
        order = np.argsort(keys, kind="stable")
        self.keys, self.rank, self.count = keys[order], rank[order], count[order]
        self.max_rank = int(rank.max()) if len(rank) else 0

    def _keys(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One integer per (user, item), and whether both ids are among the public pairs'."""
        if not len(self.users):
            return np.zeros(len(users), np.int64), np.zeros(len(users), bool)
        u = np.minimum(np.searchsorted(self.users, users), len(self.users) - 1)
        i = np.minimum(np.searchsorted(self.items, items), len(self.items) - 1)
        return u.astype(np.int64) * len(self.items) + i, (self.users[u] == users) & (self.items[i] == items)

    def _find(self, users, items) -> tuple[np.ndarray, np.ndarray]:
        """Each (user, item)'s slot in the sorted keys, and whether it is a public pair."""
        keys, known = self._keys(np.asarray(users), np.asarray(items))
        if not len(self.keys):
            return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return at, known & (self.keys[at] == keys)

    def of(self, users, items) -> np.ndarray:
        """The place of each (user, item) in its user's timeline, as floats; NaN for a pair that is not public."""
        at, public = self._find(users, items)
        return np.where(public, self.rank[at] if len(self.rank) else 0, np.nan)

    def buckets(self, users, items, n: int) -> np.ndarray:
        """Each (user, item)'s place in `n` equal buckets of its user's timeline (`n * rank // count`: the first
        n-th of the user's pairs, the next...); -1 for a pair that is not public."""
        at, public = self._find(users, items)
        if not len(self.rank):
            return np.full(len(at), -1, np.int64)
        return np.where(public, n * self.rank[at] // self.count[at], -1)


def timeline_ranks(pairs: pd.DataFrame) -> TimelineRanks:
    """The public pairs' places in their users' timelines (`TimelineRanks`)."""
    return TimelineRanks(pairs)


def timeline_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per public (user, item) pair, from the pairs and their timestamps alone (never a rating), indexed by
    (user_id, item_id): `tl_pos`, its place in the user's pairs ordered by time, ties by item id (0 first, 1
    last); `tl_same_day`, the user's pairs that UTC calendar day; `tl_since_first`, days since the user's first
    pair; `tl_gap_prev` and `tl_gap_next`, days to the user's previous and next pair (NaN at either end).
    MovieLens users rate in sittings, from lists the site picks: early, late, long-sitting and lone ratings
    differ (ml-1m fold 0: `gbm` 0.8604 -> 0.8579)."""
    p = _by_time(pairs)
    by_user = p.groupby("user_id", sort=False)
    t = p["timestamp"].to_numpy(np.float64) / 86400.0
    rank, count = by_user.cumcount().to_numpy(), by_user["item_id"].transform("size").to_numpy()
    day = np.floor(t).astype(np.int64)
    same_day = p.assign(d=day).groupby(["user_id", "d"])["item_id"].transform("size").to_numpy()
    first = by_user["timestamp"].transform("min").to_numpy(np.float64) / 86400.0
    prev_t = by_user["timestamp"].shift(1).to_numpy(np.float64) / 86400.0
    next_t = by_user["timestamp"].shift(-1).to_numpy(np.float64) / 86400.0
    return pd.DataFrame({"tl_pos": rank / np.maximum(count - 1, 1), "tl_same_day": same_day,
                        "tl_since_first": t - first, "tl_gap_prev": t - prev_t, "tl_gap_next": next_t - t},
                        index=pd.MultiIndex.from_arrays([p["user_id"].to_numpy(), p["item_id"].to_numpy()]))


def timeline_of(table: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """`table`'s (`timeline_table`) row of each of `rows`' (user, item) pairs, in `rows`' order; NaN for a pair
    that is not public."""
    return table.reindex(pd.MultiIndex.from_arrays([rows["user_id"].to_numpy(), rows["item_id"].to_numpy()]))


def genre_masks(items: pd.DataFrame) -> pd.Series:
    """Each item's genres (`items["genres"]`: lists of names) as the bits of one integer, by item id: the 63 most
    common genres get a bit each (MovieLens has at most 20), so two movies' shared genres are `a & b`."""
    counts = pd.Series([g for gs in items["genres"] for g in gs], dtype=object).value_counts()
    bit = {g: 1 << k for k, g in enumerate(sorted(counts.index[:63]))}
    masks = [sum(bit[g] for g in set(gs) if g in bit) for gs in items["genres"]]
    return pd.Series(np.asarray(masks, dtype=np.int64), index=items["item_id"].to_numpy())


def item_vectors(pairs: pd.DataFrame, rank: int = SIMILAR_RANK, seed: int = 0) -> pd.DataFrame:
    """Each item as a unit vector, by item id, from which users rated it and never how: its column of the public
    pairs' user x item 0/1 matrix in the top `rank` singular directions, so that two vectors' dot product is the
    cosine of the items' rater sets in that rank-`rank` approximation. The columns are scaled to unit length first
    (1/sqrt(item count)), so that the most rated movies do not take the top directions. Seeded (`randomized_svd`);
    no rows (an empty frame) when the pairs are too few for a rank of 1."""
    p = pairs[["user_id", "item_id"]].drop_duplicates()
    users, u = np.unique(p["user_id"].to_numpy(), return_inverse=True)
    items, i = np.unique(p["item_id"].to_numpy(), return_inverse=True)
    rank = min(rank, len(users) - 1, len(items) - 1)
    if rank < 1:
        return pd.DataFrame(index=pd.Index(items, name="item_id"), dtype=np.float32)
    count = np.bincount(i, minlength=len(items)).astype(np.float64)
    B = sp.csr_matrix((1.0 / np.sqrt(count[i]), (u, i)), shape=(len(users), len(items)))
    _, s, vt = randomized_svd(B, rank, random_state=seed)
    V = vt.T * s
    V /= np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
    return pd.DataFrame(V.astype(np.float32), index=pd.Index(items, name="item_id"))


def _jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shared genres over genres of either, per pair of masks; 0 where neither has one."""
    union = np.bitwise_count(a | b).astype(np.float64)
    return np.where(union > 0, np.bitwise_count(a & b) / np.maximum(union, 1), 0.0)


class RatingTimeline:
    """The fit rows' ratings laid out along their users' public timelines (`timeline_ranks`), as residuals from
    the fit rows' damped global, item and user means; `lookup` gives a row the residuals of the fit rows next
    to it in its user's timeline. A row is never its own neighbour (the same pair is skipped), so no row's
    feature comes from its own rating: the rows a model fits on get these from the other inner folds, the rows
    it predicts from the whole training part, as every other aggregate here. With timestamps on the fit rows,
    the sittings by the clock too; with `genres` (`genre_masks`), the neighbours weighted by shared genres; with
    `vectors` (`item_vectors`), weighted by how alike their movies are."""

    def __init__(self, fit_rows: pd.DataFrame, ranks: TimelineRanks, window: int, item_damping: float = 25.0,
                 user_damping: float = 10.0, genres: pd.Series | None = None,
                 vectors: pd.DataFrame | None = None) -> None:
        self.window = window
        u, i = fit_rows["user_id"].to_numpy(), fit_rows["item_id"].to_numpy()
        r = fit_rows["rating"].to_numpy(np.float64)
        self.mu = r.mean() if len(r) else 0.0
        res = r - self.mu
        self.items, ic = np.unique(i, return_inverse=True)
        self.item_bias = np.bincount(ic, res) / (np.bincount(ic) + item_damping)
        res = res - self.item_bias[ic]
        self.users, uc = np.unique(u, return_inverse=True)
        self.user_bias = np.bincount(uc, res) / (np.bincount(uc) + user_damping)
        res = res - self.user_bias[uc]
        rank = ranks.of(u, i)
        public = ~np.isnan(rank)  # a fit row that is not a public pair has no place in a timeline
        self.stride = ranks.max_rank + 2
        keys = uc[public] * self.stride + rank[public].astype(np.int64)
        order = np.argsort(keys, kind="stable")
        self.keys, self.cum = keys[order], np.concatenate([[0.0], np.cumsum(res[public][order])])
        self.res = res[public][order]
        self.ranks = ranks
        self.genres = None if genres is None else genres.sort_index()
        self.masks = None if genres is None else self._masks_of(i[public][order])
        self.vectors = None
        if vectors is not None:  # the vectors with a zero row last, for an item they lack (weight 0)
            self.vector_ids = vectors.index.to_numpy()
            self.vectors = np.vstack([vectors.to_numpy(np.float32), np.zeros((1, vectors.shape[1]), np.float32)])
            self.vector_rows = self._vector_rows_of(i[public][order])
        self.times = None
        if "timestamp" in fit_rows:  # the same residuals ordered by user and time, for the sittings
            t = fit_rows["timestamp"].to_numpy(np.int64)[public]
            self.t0 = int(t.min()) if len(t) else 0
            self.span = (int(t.max()) - self.t0 + 1) if len(t) else 1
            tkeys = uc[public].astype(np.int64) * self.span + (t - self.t0)
            torder = np.argsort(tkeys, kind="stable")
            self.tkeys, self.tcum = tkeys[torder], np.concatenate([[0.0], np.cumsum(res[public][torder])])
            self.times = t[order]  # in rank order: a pair's own time, to leave it out of its sittings

    def residuals(self, rows: pd.DataFrame) -> np.ndarray:
        """`rows`' ratings minus the fit rows' global mean and damped item and user means (0 for an id the fit
        rows lack): for the fit rows themselves, the residuals laid along the timelines."""
        def bias(ids: np.ndarray, known: np.ndarray, values: np.ndarray) -> np.ndarray:
            if not len(known):
                return np.zeros(len(ids))
            at = np.minimum(np.searchsorted(known, ids), len(known) - 1)
            return np.where(known[at] == ids, values[at], 0.0)

        return (rows["rating"].to_numpy(np.float64) - self.mu
                - bias(rows["item_id"].to_numpy(), self.items, self.item_bias)
                - bias(rows["user_id"].to_numpy(), self.users, self.user_bias))

    def lookup(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Per row: `nb_prev` and `nb_next`, the residuals of the nearest fit rows before and after it in its user's
        timeline; `nb_mean3`, `nb_mean<window>`, `nb_mean<3 window>`, the mean residual of up to that many fit rows
        on each side, and `nb_count`, how many the widest window holds; `nb_genre<window>`, the mean over the
        window's fit rows weighted by the genres their movie shares with the row's (Jaccard); with vectors,
        `nb_sim<window>`, weighted by their movie's cosine with the row's (`SIMILAR_POWER`); `nb_sit<s>` for s in
        `SITTING_SECONDS`, the mean residual of the user's fit rows rated within s seconds of the row. NaN (count
        0) where there are none: a user the fit rows lack, a pair that is not public (the sittings need only a
        timestamp), no genres given or shared, no timestamps."""
        u, i = rows["user_id"].to_numpy(), rows["item_id"].to_numpy()
        rank = self.ranks.of(u, i)
        code = np.searchsorted(self.users, u)
        code_c = np.minimum(code, max(len(self.users) - 1, 0))
        known = (len(self.users) > 0) & (self.users[code_c] == u) & ~np.isnan(rank)
        q = code_c * self.stride + np.where(known, rank, 0).astype(np.int64)
        first = np.searchsorted(self.keys, code_c * self.stride)
        end = np.searchsorted(self.keys, (code_c + 1) * self.stride)
        before, after = np.searchsorted(self.keys, q, "left"), np.searchsorted(self.keys, q, "right")
        out = pd.DataFrame(index=rows.index)
        last = max(len(self.res) - 1, 0)
        out["nb_prev"] = np.where(known & (before > first), self.res[np.clip(before - 1, 0, last)], np.nan)
        out["nb_next"] = np.where(known & (after < end), self.res[np.minimum(after, last)], np.nan)
        n = np.zeros(len(rows))
        for k in sorted({3, self.window, 3 * self.window}):
            a, b = np.maximum(first, before - k), np.minimum(end, after + k)
            n = np.where(known, (before - a) + (b - after), 0)
            s = (self.cum[before] - self.cum[a]) + (self.cum[b] - self.cum[after])
            out[f"nb_mean{k}"] = np.where(n > 0, s / np.maximum(n, 1), np.nan)
        out["nb_count"] = n
        window = (known, first, end, before, after)
        out[f"nb_genre{self.window}"] = (np.full(len(rows), np.nan) if self.masks is None else self._window_mean(
            self._masks_of(i), self.masks, _jaccard, *window))
        if self.vectors is not None:
            out[f"nb_sim{self.window}"] = self._window_mean(self._vector_rows_of(i), self.vector_rows, self._cosine,
                                                             *window)
        own = np.where(known, after - before, 0)  # the row's own pair among the fit rows, left out of its sittings
        own_sum = self.cum[after] - self.cum[before]
        for sec, col in zip(SITTING_SECONDS, self._sittings(rows, code_c, own, own_sum, before), strict=True):
            out[f"nb_sit{sec}"] = col
        return out

    def _window_mean(self, mine: np.ndarray, theirs: np.ndarray, weight, known, first, end, before,
                     after) -> np.ndarray:
        """The window's fit-row residuals weighted by `weight(mine[row], theirs[fit row])` (the row's item and the
        neighbour's: genre masks, vector rows), in blocks of `WINDOW_BLOCK` rows; NaN where all weights are 0."""
        out = np.full(len(mine), np.nan)
        if not len(self.res):
            return out
        last = len(self.res) - 1
        for start in range(0, len(mine), WINDOW_BLOCK):
            b = slice(start, start + WINDOW_BLOCK)
            num, den = np.zeros(len(mine[b])), np.zeros(len(mine[b]))
            for d in range(1, self.window + 1):
                for j, ok in ((before[b] - d, known[b] & (before[b] - d >= first[b])),
                              (after[b] + d - 1, known[b] & (after[b] + d - 1 < end[b]))):
                    j = np.clip(j, 0, last)
                    w = np.where(ok, weight(mine[b], theirs[j]), 0.0)
                    num += w * self.res[j]
                    den += w
            out[b] = np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)
        return out

    def _cosine(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The weight of a neighbour by vector rows: the cosine of the two items, cubed (`SIMILAR_POWER`), 0 below 0."""
        cos = np.einsum("ij,ij->i", self.vectors[a], self.vectors[b]).astype(np.float64)
        return np.maximum(cos, 0.0) ** SIMILAR_POWER

    def _vector_rows_of(self, items: np.ndarray) -> np.ndarray:
        """The rows of `items` in the vectors (the zero row last for an item the vectors lack)."""
        missing = len(self.vectors) - 1
        if not missing:
            return np.zeros(len(items), np.int64)
        pos = np.minimum(np.searchsorted(self.vector_ids, items), missing - 1)
        return np.where(self.vector_ids[pos] == items, pos, missing)

    def _masks_of(self, items: np.ndarray) -> np.ndarray:
        """The genre masks of `items` (0 for an item `genres` lacks)."""
        ids, bits = self.genres.index.to_numpy(), self.genres.to_numpy(np.int64)
        if not len(ids):
            return np.zeros(len(items), np.int64)
        pos = np.minimum(np.searchsorted(ids, items), len(ids) - 1)
        return np.where(ids[pos] == items, bits[pos], 0)

    def _sittings(self, rows, code, own, own_sum, before) -> list[np.ndarray]:
        """`nb_sit<s>` for s in `SITTING_SECONDS`: the mean residual of the user's fit rows rated within s seconds
        of the row, its own pair left out."""
        if self.times is None or "timestamp" not in rows or not len(self.res):
            return [np.full(len(rows), np.nan) for _ in SITTING_SECONDS]
        known = (self.users[code] == rows["user_id"].to_numpy()) if len(self.users) else np.zeros(len(rows), bool)
        t = rows["timestamp"].to_numpy(np.int64) - self.t0
        base = code.astype(np.int64) * self.span
        first, end = np.searchsorted(self.tkeys, base), np.searchsorted(self.tkeys, base + self.span)
        own_t = self.times[np.clip(before, 0, len(self.times) - 1)] - self.t0
        cols = []
        for sec in SITTING_SECONDS:
            a = np.clip(np.searchsorted(self.tkeys, base + t - sec, "left"), first, end)
            b = np.clip(np.searchsorted(self.tkeys, base + t + sec, "right"), first, end)
            mine = (own > 0) & (np.abs(own_t - t) <= sec)
            n = np.where(known, b - a - np.where(mine, own, 0), 0)
            s = self.tcum[b] - self.tcum[a] - np.where(mine, own_sum, 0.0)
            cols.append(np.where(n > 0, s / np.maximum(n, 1), np.nan))
        return cols


__all__ = ["SIMILAR_POWER", "SIMILAR_RANK", "SITTING_SECONDS", "RatingTimeline", "TimelineRanks", "genre_masks",
           "item_vectors", "timeline_of", "timeline_ranks", "timeline_table"]
