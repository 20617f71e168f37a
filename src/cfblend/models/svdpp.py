"""SVD++ (Koren 2008): biased matrix factorisation whose user vector also sums the items the user rated,
registered as `svdpp`.

prediction = mu + b_u + b_i + b_{u,day} + q_i · (p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j)

b_{u,day} (`user_day`) is timeSVD++'s day-specific user bias (Koren 2009): one bias per (user, calendar
day) with a training rating, for the mood of a rating session; a row whose (user, day) was never seen in
training gets none.

N(u) is the *implicit* set: every item the user rated, in train or in test. Which pairs were rated is
public in a Kaggle competition (never the test ratings), and N(u) is built from all of them the same
way for every row, so OOF predictions are made under the same conditions as test predictions.

Trained by SGD with a learning rate that decays per epoch, in a loop compiled with numba that takes
the users one at a time in a fresh random order (and each user's ratings in a random order): the
implicit sum is formed once per user, its gradient gathered over the user's ratings, and the y_j of
N(u) stepped once at the end of the user, so an epoch costs O(ratings + |pairs|) row updates, not
O(sum |N(u)| |R(u)|) as in the textbook per-rating update (Surprise's SVDpp). One thread: the result
depends on the seed only.

Cold start: a user with no training rating but public pairs is predicted from the items they rated
(mu + b_i + q_i · implicit sum); an item never rated in training from mu + b_u; an id in no pair at
all from the biases that are known, or mu.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sps
from tqdm.auto import tqdm

from cfblend.competition.scoring import rmse
from cfblend.io import atomic_path
from cfblend.models.base import Model, ModelConfig, SideInfo
from cfblend.models.ids import IdIndex, user_day_keys
from cfblend.models.jit import CACHE as _CACHE
from cfblend.models.jit import njit


@dataclass
class SVDppConfig(ModelConfig):
    """Hyper-parameters of SVD++."""

    factors: int = 20
    epochs: int = 20
    lr: float = 0.007
    lr_decay: float = 0.95  # the learning rate of epoch e is lr * lr_decay**e
    reg: float = 0.02  # L2 on p_u and q_i, per rating
    reg_bias: float = 0.02  # L2 on b_u and b_i, per rating
    reg_y: float = 0.02  # L2 on y_j, once per user whose set holds j
    init_std: float = 0.1
    implicit: bool = True  # False: plain biased SVD (no y_j), for the ablation
    user_day: bool = True  # timeSVD++'s b_{u,day}: a bias per (user, calendar day) seen in training
    reg_day: float = 0.1  # L2 on b_{u,day}, per rating (u1..u5: 0.1 gains 0.0000-0.0004 over 0.02, more nothing)

    limits: ClassVar[dict[str, str]] = {"factors": ">=1", "epochs": ">=1", "lr": ">0", "lr_decay": "(0,1]",
                                        "reg": ">=0", "reg_bias": ">=0", "reg_y": ">=0", "init_std": ">=0",
                                        "reg_day": ">=0"}


def _epoch_py(P, Q, Y, bu, bi, bd, mu, users, ptr, item, day, rating, order, imp_ptr, imp_item, nrm, lr, reg, reg_b,
              reg_y, reg_d):
    """One SGD epoch, user by user in the order `users`; rows of user a are `order[ptr[a]:ptr[a + 1]]`
    (shuffled here), its implicit set `imp_item[imp_ptr[a]:imp_ptr[a + 1]]`; row r's (user, day) bias is
    `bd[day[r]]`, slot 0 none (never stepped). Returns the squared error sum."""
    K = P.shape[1]
    z = np.empty(K)
    g = np.empty(K)
    sq = 0.0
    for a in users:
        s, e = ptr[a], ptr[a + 1]
        if s == e:
            continue
        np.random.shuffle(order[s:e])
        js, je = imp_ptr[a], imp_ptr[a + 1]
        for k in range(K):
            z[k] = 0.0
            g[k] = 0.0
        for jj in range(js, je):
            j = imp_item[jj]
            for k in range(K):
                z[k] += Y[j, k]
        for k in range(K):
            z[k] *= nrm[a]
        for r in range(s, e):
            row = order[r]
            c = item[row]
            d = day[row]
            pred = mu + bu[a] + bi[c] + bd[d]
            for k in range(K):
                pred += Q[c, k] * (P[a, k] + z[k])
            err = rating[row] - pred
            sq += err * err
            bu[a] += lr * (err - reg_b * bu[a])
            bi[c] += lr * (err - reg_b * bi[c])
            if d > 0:
                bd[d] += lr * (err - reg_d * bd[d])
            for k in range(K):
                pk, qk = P[a, k], Q[c, k]
                P[a, k] += lr * (err * qk - reg * pk)
                Q[c, k] += lr * (err * (pk + z[k]) - reg * qk)
                g[k] += err * qk
        for jj in range(js, je):
            j = imp_item[jj]
            for k in range(K):
                Y[j, k] += lr * (nrm[a] * g[k] - reg_y * Y[j, k])
    return sq


def _seed_py(seed):
    np.random.seed(seed)


_epoch = njit(cache=_CACHE, fastmath=True, nogil=True)(_epoch_py) if njit else _epoch_py
_seed = njit(cache=_CACHE)(_seed_py) if njit else _seed_py  # numba's generator is its own: seed it inside


class SVDppModel(Model[SVDppConfig]):
    """`svdpp`: biased MF plus the normalised sum of the rated items' implicit factors."""

    config_cls = SVDppConfig
    suffix = ".npz"

    def _implicit(self, train: pd.DataFrame) -> sps.csr_matrix:
        """Users x items, a 1 in row u for each item u rated in any public pair (train and test); no entry at
        all with `implicit` off. Sets the user and item indices (train and public pairs)."""
        pairs = self.side.pairs if self.side.pairs is not None else train[["user_id", "item_id"]]
        users = np.unique(np.concatenate([pairs["user_id"].to_numpy(), train["user_id"].to_numpy()]))
        items = np.unique(np.concatenate([pairs["item_id"].to_numpy(), train["item_id"].to_numpy()]))
        self.users_, self.items_ = IdIndex(users), IdIndex(items)
        if not self.config.implicit:
            return sps.csr_matrix((len(self.users_), len(self.items_)))
        pu, pi = self.users_(pairs["user_id"]), self.items_(pairs["item_id"])
        m = sps.csr_matrix((np.ones(len(pu)), (pu, pi)), shape=(len(self.users_), len(self.items_)))
        m.data[:] = 1.0  # a repeated pair counts once
        return m

    def fit(self, train: pd.DataFrame) -> SVDppModel:
        c = self.config
        C = self._implicit(train)
        n_set = np.diff(C.indptr)
        nrm = np.where(n_set > 0, 1.0 / np.sqrt(np.maximum(n_set, 1)), 0.0)
        implicit = sps.diags(nrm) @ C  # row u: 1/sqrt|N(u)| on each item of N(u)
        a, i = self.users_(train["user_id"]), self.items_(train["item_id"])
        y = train["rating"].to_numpy(np.float64)
        self.mu_ = float(y.mean())
        rng = np.random.default_rng(c.seed)
        nu, ni = len(self.users_), len(self.items_)
        P, Q, Y = (rng.normal(0.0, c.init_std, (n, c.factors)) for n in (nu, ni, ni))
        P[np.bincount(a, minlength=nu) == 0] = 0.0  # no training rating (slot 0 too): p_u stays zero
        seen = np.bincount(i, minlength=ni) > 0
        Q[~seen] = 0.0
        Y[0] = 0.0
        self.seen_items_ = self.items_.ids[seen[1:]]
        keys = self._user_day(train) if c.user_day else None
        self.days_ = IdIndex(keys if keys is not None else np.zeros(0, np.int64))
        day = self.days_(keys) if keys is not None else np.zeros(len(train), np.int64)
        self.bu_, self.bi_, self.bd_, self.Q_ = np.zeros(nu), np.zeros(ni), np.zeros(len(self.days_)), Q  # in place
        order = np.argsort(a, kind="stable")
        ptr = np.searchsorted(a[order], np.arange(nu + 1))
        imp_ptr, imp_item = C.indptr.astype(np.int64), C.indices.astype(np.int64)
        _seed(c.seed)
        self.epoch_seconds_, losses, valid = [], [], []
        bar = tqdm(range(c.epochs), desc="svdpp epochs", leave=False, disable=None)
        for epoch in bar:
            t0 = time.perf_counter()
            users = rng.permutation(nu).astype(np.int64)
            sq = _epoch(P, Q, Y, self.bu_, self.bi_, self.bd_, self.mu_, users, ptr, i, day, y, order, imp_ptr,
                        imp_item, nrm, c.lr * c.lr_decay**epoch, c.reg, c.reg_bias, c.reg_y, c.reg_day)
            self.epoch_seconds_.append(time.perf_counter() - t0)
            losses.append(sq / max(len(y), 1))
            if self.monitor is not None and len(self.monitor):
                self.user_vectors_ = P + implicit @ Y
                valid.append(rmse(self.monitor["rating"], self.predict(self.monitor)))
            bar.set_postfix(mse=f"{losses[-1]:.4f}")
        self.user_vectors_ = P + implicit @ Y  # all that prediction needs of P, Y and the implicit sets
        self.history_ = {"train_loss": losses, **({"valid_rmse": valid} if valid else {})}
        return self

    def _user_day(self, df: pd.DataFrame) -> np.ndarray | None:
        """Each row's (user, day) key (`ids.user_day_keys`); None without timestamps."""
        return user_day_keys(self.users_(df["user_id"]), df["timestamp"]) if "timestamp" in df else None

    def _predict(self, df: pd.DataFrame) -> np.ndarray:
        a, i = self.users_(df["user_id"]), self.items_(df["item_id"])
        keys = self._user_day(df) if len(self.days_.ids) else None
        bd = self.bd_[self.days_(keys)] if keys is not None else 0.0
        return (self.mu_ + self.bu_[a] + self.bi_[i] + bd
                + np.einsum("rk,rk->r", self.user_vectors_[a], self.Q_[i]))

    def item_factors(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The ids of the items seen in training and their factors q_i."""
        return self.seen_items_, [self.Q_[self.items_(self.seen_items_)]]

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, config=np.array(json.dumps(self.config.to_dict())), mu=self.mu_, users=self.users_.ids,
                     items=self.items_.ids, seen_items=self.seen_items_, bu=self.bu_, bi=self.bi_,
                     user_vectors=self.user_vectors_, Q=self.Q_, days=self.days_.ids, bd=self.bd_)

    @classmethod
    def load(cls, path: Path, side: SideInfo) -> SVDppModel:
        z = np.load(path)  # no pickle: allow_pickle stays False
        m = cls(cls.config_cls.from_dict(json.loads(str(z["config"]))), side)
        m.users_, m.items_ = IdIndex(z["users"], ordered=True), IdIndex(z["items"], ordered=True)
        m.mu_, m.bu_, m.bi_, m.seen_items_ = float(z["mu"]), z["bu"], z["bi"], z["seen_items"]
        m.user_vectors_, m.Q_ = z["user_vectors"], z["Q"]
        # a file from before the day biases has none
        m.days_ = IdIndex(z["days"] if "days" in z else np.zeros(0, np.int64), ordered=True)
        m.bd_ = z["bd"] if "bd" in z else np.zeros(1)
        return m


__all__ = ["SVDppConfig", "SVDppModel"]
