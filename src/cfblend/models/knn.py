"""Neighbourhood model with baselines (Koren 2008's kNNBaseline, as Surprise's `KNNBaseline`), registered
as `knn` (item-based) and `knn_user` (user-based).

prediction = b_ui + sum_j s_ij (r_uj - b_uj) / sum_j s_ij

over the `k` items j most similar to i among those the user rated in training, with s_ij > 0. The
baselines b_ui = mu + b_u + b_i are fitted by alternating least squares (damped means), and the
similarity is the shrunk Pearson correlation of the baseline residuals over the users who rated both
items (`pearson_baseline`):

s_ij = (n_ij - 1) / (n_ij - 1 + shrinkage) * sum_u e_ui e_uj / sqrt(sum_u e_ui² sum_u e_uj²)

It is the one member of the blend that predicts from the user's own ratings of similar items rather
than from learned vectors: a local view the factor models smooth away. Every similarity comes from the
fold's training ratings only.

The similarities are dense (items x items, three BLAS products of the users x items residual matrix),
so the model is meant for catalogues of up to `max_items` items (ml-100k, ml-1m, ml-latest-small); a
larger one is refused with a clear error. Nothing but the training ratings and the baselines is saved:
the similarities are a deterministic function of them and are rebuilt on load.

Cold start: an unseen user or item, or a user with no positively similar rated item, gets the
baseline (mu plus the biases that are known).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from cfblend.io import atomic_path
from cfblend.models.base import Model, ModelConfig, SideInfo
from cfblend.models.baselines import BiasesConfig, DampedBiases
from cfblend.models.ids import IdIndex
from cfblend.models.jit import CACHE as _CACHE
from cfblend.models.jit import njit


@dataclass
class KNNConfig(ModelConfig):
    """Hyper-parameters of kNNBaseline."""

    k: int = 40  # neighbours per prediction
    shrinkage: float = 100.0  # of the Pearson similarity towards 0, by the number of common raters
    reg_item: float = 10.0  # damping of the item baselines (Surprise's ALS defaults)
    reg_user: float = 15.0
    iterations: int = 10  # alternations of the baseline fit
    user_based: bool = False  # neighbours among the users who rated the item instead
    max_items: int = 20_000  # the dense similarity matrix is max_items² floats

    limits: ClassVar[dict[str, str]] = {"k": ">=1", "shrinkage": ">=0", "reg_item": ">=0", "reg_user": ">=0",
                                        "iterations": ">=1", "max_items": ">=1"}


def _predict_py(S, ptr, nbr, resid, qa, qi, k):
    """sum s e / sum s over the k most similar of row a's neighbours (positive similarities only); 0 where
    there is none. Row a's rated neighbours are nbr[ptr[a]:ptr[a + 1]], their residuals in `resid`. The k
    best are kept in a min-heap (O(n log k) per row: a popular item has thousands of raters)."""
    out = np.zeros(len(qa))
    hs = np.empty(k)  # heap of similarities (the smallest at 0) and their residuals
    he = np.empty(k)
    for r in range(len(qa)):
        a, i = qa[r], qi[r]
        if a == 0 or i == 0:
            continue
        size = 0
        for t in range(ptr[a], ptr[a + 1]):
            sv = S[i, nbr[t]]
            if sv <= 0.0 or (size == k and sv <= hs[0]):
                continue
            if size < k:  # append, then sift up
                c = size
                size += 1
                while c > 0 and hs[(c - 1) // 2] > sv:
                    hs[c], he[c] = hs[(c - 1) // 2], he[(c - 1) // 2]
                    c = (c - 1) // 2
            else:  # replace the smallest, then sift down
                c = 0
                while True:
                    child = 2 * c + 1
                    if child >= k:
                        break
                    if child + 1 < k and hs[child + 1] < hs[child]:
                        child += 1
                    if hs[child] >= sv:
                        break
                    hs[c], he[c] = hs[child], he[child]
                    c = child
            hs[c], he[c] = sv, resid[t]
        num = 0.0
        den = 0.0
        for t in range(size):
            num += hs[t] * he[t]
            den += hs[t]
        if den > 0.0:
            out[r] = num / den
    return out


_predict_nb = njit(cache=_CACHE, nogil=True)(_predict_py) if njit else _predict_py


def pearson_baseline(a: np.ndarray, i: np.ndarray, e: np.ndarray, n_a: int, n_i: int,
                     shrinkage: float) -> np.ndarray:
    """Shrunk Pearson correlation of the residuals `e` between the columns `i` (n_i x n_i, float32),
    over the rows `a` that have both; slot 0 (unseen) has no rating, so similarity 0 with everything."""
    E = np.zeros((n_a, n_i), np.float32)
    B = np.zeros((n_a, n_i), np.float32)
    E[a, i] = e
    B[a, i] = 1.0
    S = E.T @ E  # the numerator; then divided and shrunk in place (three n_i² matrices at most)
    sq = np.square(E).T @ B  # sq[i, j]: sum of e_ui² over the users who rated both i and j
    den = np.sqrt(sq * sq.T)
    del sq
    np.divide(S, den, out=S, where=den > 0)
    S[den <= 0] = 0.0
    del den
    n = np.maximum(B.T @ B - 1.0, 0.0)
    S *= n / (n + shrinkage) if shrinkage > 0 else (n > 0)
    return S


class KNNModel(Model[KNNConfig]):
    """`knn`: baselines plus a similarity-weighted mean of the residuals of the k nearest rated items."""

    config_cls = KNNConfig
    suffix = ".npz"

    def fit(self, train: pd.DataFrame) -> KNNModel:
        c = self.config
        self.users_, self.items_ = IdIndex(train["user_id"]), IdIndex(train["item_id"])
        a, i = self.users_(train["user_id"]), self.items_(train["item_id"])
        r = train["rating"].to_numpy(np.float64)
        b = DampedBiases(BiasesConfig(reg_item=c.reg_item, reg_user=c.reg_user, iterations=c.iterations),
                         self.side).fit(train)  # its ids are sorted as the IdIndex's, which adds slot 0
        self.mu_, self.bu_, self.bi_ = b.mu_, np.r_[0.0, b.bu_], np.r_[0.0, b.bi_]
        self._build(a, i, r)
        return self

    def _build(self, a: np.ndarray, i: np.ndarray, r: np.ndarray) -> None:
        """Residuals, the neighbour lists in CSR form, and the similarities (also what `load` redoes)."""
        c = self.config
        owner, nbr, n_own, n_nbr = (i, a, len(self.items_), len(self.users_)) if c.user_based else \
            (a, i, len(self.users_), len(self.items_))
        if n_nbr - 1 > c.max_items:
            kind = "users" if c.user_based else "items"
            raise ValueError(f"knn: {n_nbr - 1} {kind} in training, above max_items={c.max_items}: the dense "
                             f"similarity matrix would take {4 * n_nbr**2 / 2**30:.1f} GiB")
        self.a_, self.i_, self.r_ = a, i, r
        e = r - self.mu_ - self.bu_[a] - self.bi_[i]
        order = np.argsort(owner, kind="stable")
        self.ptr_ = np.searchsorted(owner[order], np.arange(n_own + 1)).astype(np.int64)
        self.nbr_, self.resid_ = nbr[order].astype(np.int64), e[order]
        self.S_ = pearson_baseline(owner, nbr, e, n_own, n_nbr, c.shrinkage)

    def _predict(self, df: pd.DataFrame) -> np.ndarray:
        a, i = self.users_(df["user_id"]), self.items_(df["item_id"])
        base = self.mu_ + self.bu_[a] + self.bi_[i]
        owner, target = (i, a) if self.config.user_based else (a, i)
        return base + _predict_nb(self.S_, self.ptr_, self.nbr_, self.resid_, owner, target, self.config.k)

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, config=np.array(json.dumps(self.config.to_dict())), mu=self.mu_, users=self.users_.ids,
                     items=self.items_.ids, bu=self.bu_, bi=self.bi_, a=self.a_, i=self.i_, r=self.r_)

    @classmethod
    def load(cls, path: Path, side: SideInfo) -> KNNModel:
        z = np.load(path)  # no pickle: allow_pickle stays False
        m = cls(cls.config_cls.from_dict(json.loads(str(z["config"]))), side)
        m.users_, m.items_ = IdIndex(z["users"], ordered=True), IdIndex(z["items"], ordered=True)
        m.mu_, m.bu_, m.bi_ = float(z["mu"]), z["bu"], z["bi"]
        m._build(z["a"], z["i"], z["r"])
        return m


__all__ = ["KNNConfig", "KNNModel", "pearson_baseline"]
