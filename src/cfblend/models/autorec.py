"""Item-based AutoRec (Sedhain et al., 2015), registered as `autorec`: an autoencoder per movie.

Each item is the sparse vector of the ratings its users gave it (a column of the rating matrix).
The encoder maps it to `hidden` sigmoid units, h_i = sigmoid(W r_i + b); the decoder
reconstructs the rating of any user u as h_i · V_u + c_u. Only observed ratings enter the loss,
plus an L2 penalty `l2 / 2 * (|W|² + |V|²)` per rating, as in the paper. The input product is
an `EmbeddingBag` over the item's raters weighted by their ratings and the decoder is evaluated
at the observed (item, user) cells only, so a step costs O(ratings in the batch x hidden): no
dense user x item matrix is built, and the model runs at ML-25M size.

It differs from every factor model of the blend: an item is described by *who rated it how*,
through a non-linearity, rather than by a free vector. That difference is what earns it a place
(bench/results/ablation.md).

`autorec_imp` (`implicit`) also encodes *who rated the item at all*: a second bag over the item's
public raters (every train and test pair, as SVD++'s implicit sets and `bfm`'s rater blocks; never a
rating), weighted 1/sqrt(their count), h_i = sigmoid(W r_i + Y n_i + b), with 500 hidden units; Y
is not in the L2 penalty (as measured; penalising it was not tried). On ml-100k u1..u5 (`make
bench`'s folders): OOF 0.907 alone, worse than `autorec`'s 0.904 (with 300 units it scored 0.898),
yet the blend with both autoencoders gains most with 500: test 0.8623 -> 0.8614, honest CV 0.8671
-> 0.8664 (300 units: 0.8621 / 0.8667).

At ML-25M size (a long tail of items with a handful of raters, 162k users) three switches make it
train; the `large-data` setting turns them on. `exclude_own`: a training rating is reconstructed from
its item's code *without that rating* (the item's pre-activation less the rating's own term), as a
held-out rating is; otherwise an item with few raters learns to copy its input back (one-off, a 10%
user sample of synth-25m: held-out RMSE 1.09 after one epoch, 1.56 after 15; 0.99 with `exclude_own`).
`center`: the encoder reads ratings less the training mean, so that an item's input sums deviations,
not its popularity, and the decoder starts at the mean (1.00 -> 0.94 on a 5% sample). `sparse`: the
tables take row-sparse updates (LazyAdam), so that a step of 256 items costs its users' rows, not
two dense 162k x hidden tables (half the time, the same RMSE on the 10% sample); the L2 penalty is
then estimated from the batch's users (`_sparse_penalty`). Fold 0 of synth-25m: 0.8270 in 650 s,
against 1.0137 before (bench/results/scale-25m.md); 0.8265 in 601 s since the compiled decoder
(`sampled_dot`), in 228 s since its step temporaries are reused at any size (`large_step_blocks`,
`runs.allocator`). On ml-100k u1 fold 0, `exclude_own` alone scores 0.8943 against 0.9016 (one-off); the
registry's defaults stay those the blend was measured with.

Cold start: an item never seen in training has an empty input, so its code is sigmoid(b) and
its prediction is the decoder's user term; a user never seen in training has no decoder row,
and is predicted by the item's training mean (the global mean for an unseen item too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from cfblend.models.base import Model, ModelConfig, SideInfo
from cfblend.models.ids import IdIndex
from cfblend.models.lazy_adam import LazyAdam
from cfblend.models.sampled_dot import sampled_dot
from cfblend.models.torch_base import load_state, resolve_device, save_state, seed_everything


@dataclass
class AutoRecConfig(ModelConfig):
    """Hyper-parameters of I-AutoRec (and U-AutoRec, with or without the implicit input)."""

    hidden: int = 300
    l2: float = 100.0  # the paper's lambda, per rating of the training set
    epochs: int = 70
    lr: float = 1.5e-3
    batch_items: int = 256  # items per Adam step
    user_based: bool = False  # U-AutoRec: encode each user's ratings instead (the roles swapped)
    implicit: bool = False  # the encoder also sees who rated the item at all (public train and test pairs)
    sparse: bool = False  # row-sparse updates (LazyAdam): a step moves only the rows of the batch's users
    exclude_own: bool = False  # train each rating's reconstruction without that rating in the input
    center: bool = False  # the input is each rating minus the training mean
    device: str = "auto"

    limits: ClassVar[dict[str, str]] = {"hidden": ">=1", "l2": ">=0", "epochs": ">=1", "lr": ">0",
                                        "batch_items": ">=1"}


class AutoRecNet(nn.Module):
    """Encoder over an item's (user, rating) bag, decoder evaluated at given users."""

    def __init__(self, n_users: int, hidden: int, implicit: bool = False, sparse: bool = False):
        super().__init__()
        self.encoder = nn.EmbeddingBag(n_users, hidden, mode="sum", padding_idx=0, sparse=sparse)
        self.implicit = (nn.EmbeddingBag(n_users, hidden, mode="sum", padding_idx=0, sparse=sparse)
                         if implicit else None)
        self.enc_bias = nn.Parameter(torch.zeros(hidden))
        self.decoder = nn.Embedding(n_users, hidden, padding_idx=0, sparse=sparse)
        self.dec_bias = nn.Embedding(n_users, 1, padding_idx=0, sparse=sparse)
        bound = 1.0 / np.sqrt(hidden)
        for e in (self.encoder, self.decoder, self.implicit):
            if e is None:
                continue
            nn.init.uniform_(e.weight, -bound, bound)
            with torch.no_grad():
                e.weight[0].zero_()
        nn.init.zeros_(self.dec_bias.weight)

    def encode(self, users: torch.Tensor, ratings: torch.Tensor, offsets: torch.Tensor,
               implicit: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Codes of the items whose bags start at `offsets` in (users, ratings); `implicit`: the same items'
        (users, weights, offsets) bags of public raters, for a net built with `implicit`."""
        return torch.sigmoid(self.preactivate(users, ratings, offsets, implicit))

    def preactivate(self, users: torch.Tensor, ratings: torch.Tensor, offsets: torch.Tensor,
                    implicit: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The codes before the sigmoid (`encode`'s arguments)."""
        return self._plus_implicit(self.encoder(users, offsets, per_sample_weights=ratings) + self.enc_bias, implicit)

    def _plus_implicit(self, pre: torch.Tensor, implicit: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None
                       ) -> torch.Tensor:
        """`pre` plus the implicit bags' term, for a net built with `implicit`."""
        if self.implicit is None:
            return pre
        imp_users, imp_weights, imp_offsets = implicit
        return pre + self.implicit(imp_users, imp_offsets, per_sample_weights=imp_weights)

    def enc_rows(self, users: torch.Tensor) -> torch.Tensor:
        """The encoder's rows of `users`, one per entry (a plain gather of the bag's table)."""
        return nn.functional.embedding(users, self.encoder.weight, sparse=self.encoder.sparse)

    def rows(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's and the decoder's rows of `users` (one gather each)."""
        return self.enc_rows(users), self.decoder(users)

    def summed_preactivate(self, enc_rows: torch.Tensor, inputs: torch.Tensor, row: torch.Tensor, n_bags: int,
                           implicit: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """`preactivate` from the bag entries' encoder rows, summed per bag (`row`: each entry's bag): with the
        same rows reused by `own_out_codes` and the penalty, the encoder takes one sparse gradient a step
        instead of three, which autograd would join by sparse additions (a quarter of a step's time on a 10%
        user sample of the 25M set, torch profiler)."""
        pre = enc_rows.new_zeros(n_bags, enc_rows.shape[1]).index_add(0, row, inputs[:, None] * enc_rows)
        return self._plus_implicit(pre + self.enc_bias, implicit)

    def own_out_codes(self, pre: torch.Tensor, users: torch.Tensor, inputs: torch.Tensor,
                      own: torch.Tensor | None = None) -> torch.Tensor:
        """For each bag entry (user, input) of the item of row `pre`: the item's code without that entry
        (`own`: the entries' encoder rows, when already gathered)."""
        if own is None:
            own = self.enc_rows(users)
        return torch.sigmoid(pre - inputs[:, None] * own)

    def decode(self, codes: torch.Tensor, users: torch.Tensor, code_row: torch.Tensor | None = None,
               dec_rows: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstructed ratings of `users`, entry e from code `codes[code_row[e]]` (`code_row` None: one row of
        `codes` per entry) and the user's decoder row (`dec_rows`: the entries' rows, if gathered). The products
        are `sampled_dot`'s: neither the entries' codes nor their decoder rows are built."""
        def entries() -> torch.Tensor:
            return torch.arange(len(users), device=users.device)
        table, at = (self.decoder.weight, users) if dec_rows is None else (dec_rows, entries())
        return sampled_dot(codes, table, entries() if code_row is None else code_row, at) + self.dec_bias(users)[:, 0]


class ItemBags:
    """The training ratings grouped by item (CSR): for a batch of items, the flat (user, rating) bags."""

    def __init__(self, items: np.ndarray, users: np.ndarray, ratings: np.ndarray, n_items: int,
                 device: torch.device):
        order = np.argsort(items, kind="stable")
        counts = np.bincount(items, minlength=n_items)
        self.indptr = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)]), device=device)
        self.users = torch.as_tensor(users[order], device=device)
        self.ratings = torch.as_tensor(ratings[order].astype(np.float32), device=device)

    def batch(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(users, ratings, offsets, row) of the bags of `items`; `row` says which item each entry is of."""
        starts, ends = self.indptr[items], self.indptr[items + 1]
        lens = ends - starts
        offsets = torch.cumsum(lens, 0) - lens
        flat = torch.repeat_interleave(starts - offsets, lens) + torch.arange(int(lens.sum()), device=items.device)
        row = torch.repeat_interleave(torch.arange(len(items), device=items.device), lens)
        return self.users[flat], self.ratings[flat], offsets, row


class AutoRecModel(Model[AutoRecConfig]):
    """`autorec`: item-based autoencoder of the rating matrix (I-AutoRec)."""

    config_cls = AutoRecConfig
    suffix = ".pt"
    side_by_side = True  # ml-1m, 2 cores: 2 folds as 1-thread processes in 71 s, against 46 s a fold on 2 threads
    fold_cost = 2.0  # ml-1m fold 0 on one thread: autorec_imp 85 s, autorec 41 s; gbm 41 s (before nn: its 68 s)
    fit_bytes_per_rating = 450.0  # a fold of a 22.5M-rating competition peaked at 7.9 GB, 9.3 with `implicit`
    large_step_blocks = True  # a step of 256 items at 25M: 45 MB per 150-wide tensor (runs.allocator)

    def _oriented(self, df: pd.DataFrame) -> pd.DataFrame:
        """`df` with users and items swapped for U-AutoRec: the code below always encodes its "items"."""
        if not self.config.user_based:
            return df
        return df.rename(columns={"user_id": "item_id", "item_id": "user_id"})

    def fit(self, train: pd.DataFrame) -> AutoRecModel:
        c = self.config
        train = self._oriented(train)
        gen = seed_everything(c.seed)
        dev = resolve_device(c.device)
        self.users_, self.items_ = IdIndex(train["user_id"]), IdIndex(train["item_id"])
        u, i = self.users_(train["user_id"]), self.items_(train["item_id"])
        r = train["rating"].to_numpy(np.float32)
        self.bags_ = ItemBags(i, u, r, len(self.items_), dev)
        self.implicit_bags_ = self._implicit_bags(train, dev) if c.implicit else None
        self.net = AutoRecNet(len(self.users_), c.hidden, c.implicit, c.sparse).to(dev)
        self.item_mean_ = train.groupby("item_id")["rating"].mean()
        self.global_mean_ = float(r.mean())
        if c.center:  # the decoder starts at the mean, as the encoder's input is centred on it
            with torch.no_grad():
                self.net.dec_bias.weight[1:] = self.global_mean_
        opts = self._optimizers()
        penalty = self._sparse_penalty(u, dev) if c.sparse else self._dense_penalty(len(train))
        items = torch.arange(1, len(self.items_), device=dev)
        self.history_ = {"train_loss": [], "valid_rmse": []}
        bar = tqdm(range(c.epochs), desc="autorec epochs", leave=False, disable=None)
        for _ in bar:
            total, steps = torch.zeros((), device=dev), 0
            perm = items[torch.randperm(len(items), generator=gen).to(dev)]
            for s in range(0, len(perm), c.batch_items):
                loss = self._batch_loss(perm[s: s + c.batch_items], penalty)
                for o in opts:
                    o.zero_grad(set_to_none=True)
                loss.backward()
                for o in opts:
                    o.step()
                total, steps = total + loss.detach(), steps + 1
            self.history_["train_loss"].append(float(total) / max(steps, 1))
            if self.monitor is not None and len(self.monitor):
                self.codes_ = self._codes()
                err = self.predict(self.monitor) - self.monitor["rating"].to_numpy()
                self.history_["valid_rmse"].append(float(np.sqrt(np.mean(err**2))))
            bar.set_postfix(loss=f"{self.history_['train_loss'][-1]:.4f}")
        self.net.eval()
        self.codes_ = self._codes()
        return self

    def _batch_loss(self, items: torch.Tensor, penalty) -> torch.Tensor:
        """Squared reconstruction error of the bags of `items`, plus the L2 penalty. With `sparse`, each table's
        rows are gathered once and shared by the code, `exclude_own`, the decoder and the penalty."""
        c = self.config
        users, ratings, inputs, offsets, row, implicit = self._bags(items)
        if c.sparse:
            rows = enc_rows, dec_rows = self.net.rows(users)
            pre = self.net.summed_preactivate(enc_rows, inputs, row, len(items), implicit)
        else:
            rows = enc_rows = dec_rows = None
            pre = self.net.preactivate(users, inputs, offsets, implicit)
        if c.exclude_own:
            codes, code_row = self.net.own_out_codes(pre.index_select(0, row), users, inputs, enc_rows), None
        else:
            codes, code_row = torch.sigmoid(pre), row  # one code per item, read by its entries in place
        err = self.net.decode(codes, users, code_row, dec_rows) - ratings
        return err.pow(2).mean() + penalty(users, rows)

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        """Adam over the net; with `sparse`, the tables get SparseAdam's row update instead (LazyAdam on the CPU)."""
        if not self.config.sparse:
            return [torch.optim.Adam(self.net.parameters(), lr=self.config.lr, fused=True)]
        tables = [m.weight for m in self.net.modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag)]
        lr = self.config.lr
        return [torch.optim.Adam([self.net.enc_bias], lr=lr), LazyAdam.for_params(tables, lr=lr)]

    def _dense_penalty(self, n_ratings: int):
        """The paper's `l2 / 2 * (|W|² + |V|²)` per rating of the training set, on every step."""
        reg = self.config.l2 / 2 / n_ratings
        return lambda users, rows: reg * (self.net.encoder.weight.pow(2).sum() + self.net.decoder.weight.pow(2).sum())

    def _sparse_penalty(self, users: np.ndarray, dev: torch.device):
        """The same penalty estimated from the batch's users, so that its gradient stays row-sparse.

        `l2 / 2 * |W|²` divided by the training set's N ratings is the mean over all ratings of
        `l2 / 2 * |W_u|² / n_u` (u the rating's user, n_u their count): the same mean over the batch's
        ratings is an unbiased estimate of it, and touches only the batch's users' rows: `penalty(users, rows)`,
        with `rows` the encoder's and decoder's rows of `users` (`AutoRecNet.rows`)."""
        inv_count = torch.as_tensor(1.0 / np.maximum(np.bincount(users, minlength=len(self.users_)), 1),
                                    dtype=torch.float32, device=dev)
        half_l2 = self.config.l2 / 2

        def penalty(batch_users: torch.Tensor, rows: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            enc, dec = rows
            sq = enc.pow(2).sum(1) + dec.pow(2).sum(1)
            return half_l2 * (sq * inv_count[batch_users]).sum() / len(batch_users)
        return penalty

    @torch.no_grad()
    def _codes(self) -> torch.Tensor:
        """The code of every item slot (slot 0, unseen items: the empty bag)."""
        items = torch.arange(len(self.items_), device=self.net.enc_bias.device)
        return torch.cat([self._encode(items[s: s + 4096]) for s in range(0, len(items), 4096)])

    def _encode(self, items: torch.Tensor) -> torch.Tensor:
        """The codes of `items`."""
        users, _, inputs, offsets, _, implicit = self._bags(items)
        return self.net.encode(users, inputs, offsets, implicit)

    def _bags(self, items: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The bags of `items`: (users, ratings, inputs, offsets, row, implicit), `inputs` the ratings as the
        encoder sees them (`center`), `row` each entry's item, `implicit` the public raters' bags (or None)."""
        users, ratings, offsets, row = self.bags_.batch(items)
        inputs = ratings - self.global_mean_ if self.config.center else ratings
        implicit = self.implicit_bags_.batch(items)[:3] if self.implicit_bags_ is not None else None
        return users, ratings, inputs, offsets, row, implicit

    def _implicit_bags(self, train: pd.DataFrame, dev: torch.device) -> ItemBags:
        """Each training item's public raters (every train and test pair, each once), weighted 1/sqrt(their
        count) as SVD++'s implicit sets; raters unknown in training fall on the padding slot (no weight)."""
        pairs = self.side.pairs if self.side.pairs is not None else train
        pairs = self._oriented(pairs[["user_id", "item_id"]]).drop_duplicates()
        i, u = self.items_(pairs["item_id"]), self.users_(pairs["user_id"])
        known = i > 0  # items outside training have no code of their own to learn
        n = np.bincount(i[known], minlength=len(self.items_)).astype(np.float32)
        return ItemBags(i[known], u[known], 1.0 / np.sqrt(n[i[known]]), len(self.items_), dev)

    @torch.no_grad()
    def _predict(self, df: pd.DataFrame) -> np.ndarray:
        df = self._oriented(df)
        dev = self.codes_.device
        u = torch.as_tensor(self.users_(df["user_id"]), device=dev)
        i = torch.as_tensor(self.items_(df["item_id"]), device=dev)
        out = torch.cat([self.net.decode(self.codes_, u[s: s + 65536], i[s: s + 65536])
                         for s in range(0, len(df), 65536)]).double().cpu().numpy() if len(df) else np.zeros(0)
        new_user = (u == 0).cpu().numpy()
        if new_user.any():
            fallback = self.item_mean_.reindex(df["item_id"].to_numpy()[new_user]).fillna(self.global_mean_)
            out[new_user] = fallback.to_numpy()
        return out

    @torch.no_grad()
    def item_factors(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The ids of the items seen in training and their codes (hidden activations)."""
        if self.config.user_based:
            raise NotImplementedError("U-AutoRec encodes users; it has no item codes")
        return self.items_.ids, [self.codes_[1:].cpu().numpy()]

    @staticmethod
    def _bag_arrays(bags: ItemBags | None, prefix: str) -> dict[str, np.ndarray]:
        """`bags` as plain arrays for `save_state`, their names prefixed (none for no bags)."""
        if bags is None:
            return {}
        return {f"{prefix}indptr": bags.indptr.cpu().numpy(), f"{prefix}bag_users": bags.users.cpu().numpy(),
                f"{prefix}bag_ratings": bags.ratings.cpu().numpy()}

    @staticmethod
    def _bags_from(s: dict, prefix: str, dev: torch.device) -> ItemBags:
        """The bags `_bag_arrays` saved under `prefix`, on `dev`."""
        bags = ItemBags.__new__(ItemBags)
        bags.indptr, bags.users, bags.ratings = (torch.as_tensor(s[prefix + k], device=dev)
                                                 for k in ("indptr", "bag_users", "bag_ratings"))
        return bags

    def save(self, path: Path) -> None:
        save_state(path, self.config, self.net, users=self.users_.ids, items=self.items_.ids,
                   **self._bag_arrays(self.bags_, ""), item_mean_ids=self.item_mean_.index.to_numpy(),
                   item_mean=self.item_mean_.to_numpy(), global_mean=self.global_mean_,
                   **self._bag_arrays(self.implicit_bags_, "implicit_"))

    @classmethod
    def load(cls, path: Path, side: SideInfo) -> AutoRecModel:
        s = load_state(path)
        m = cls(cls.config_cls.from_dict(s["config"]), side)
        dev = resolve_device(m.config.device)
        m.users_, m.items_ = IdIndex(s["users"]), IdIndex(s["items"])
        m.net = AutoRecNet(len(m.users_), m.config.hidden, m.config.implicit, m.config.sparse)
        m.net.load_state_dict(s["net"])
        m.net.to(dev).eval()
        m.bags_ = cls._bags_from(s, "", dev)
        m.implicit_bags_ = cls._bags_from(s, "implicit_", dev) if m.config.implicit else None
        m.item_mean_ = pd.Series(s["item_mean"], index=s["item_mean_ids"])
        m.global_mean_ = float(s["global_mean"])
        m.codes_ = m._codes()
        return m
