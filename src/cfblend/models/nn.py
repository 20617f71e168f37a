"""The neural entity-embedding model (Wide & Deep style), registered as `nn`.

Every categorical input (user, item, gender, occupation, age bucket, zip region and zip3,
release decade) gets a learned embedding sized by fastai's rule; genres go through a mean
`EmbeddingBag`. The deep part is an MLP over the embeddings concatenated with the raw
categorical data (one-hot of the small fields, genre multi-hot) and the scaled numeric fields
(age, release year, rating date, movie age at rating). The wide part is a linear term: one
learned bias per category of each field, plus a linear map of the dense block. Their sum is
squashed into `y_range` by a sigmoid. As in DeepFM, a factorisation-machine term (the dot
product of separate user and item factors, `fm_factors` wide) is added to the logit: an MLP
learns multiplicative user-item interactions poorly, the dot product learns them directly.

Implicit feedback (`implicit`, SVD++ style, on both sides): the FM user factor gets the mean of
learned vectors of the items the user rated, and the FM item factor the mean of learned vectors
of the users who rated it, each over every public (train and test) pair and weighted
1/sqrt(n), so `(p_u + |N(u)|^-1/2 sum_j y_j) · (q_i + |R(i)|^-1/2 sum_v x_v)`. Which pairs were
rated is public; no rating enters. The sets are kept with the model, so a saved fold predicts
as it did after fitting.

Cold start: an unseen user or item maps to index 0 of its table (zero embedding, zero bias),
while its side features still flow, so an unseen movie is predicted from its genres and year
and an unseen user from their demographics. During training a small share of rows
(`id_dropout`) have their user or item id hidden in the same way, so the network learns what to
do with the unknown slot instead of meeting it for the first time at test time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from cfblend.models.base import ModelConfig, SideInfo
from cfblend.models.side import SideEncoder, emb_size
from cfblend.models.torch_base import (
    FastDropout,
    TorchModel,
    load_state,
    resolve_device,
    save_state,
    seed_everything,
    train_minibatch,
)


@dataclass
class NNConfig(ModelConfig):
    """Hyper-parameters of the entity-embedding network."""

    use_side: bool = True
    layers: tuple[int, ...] = (128, 64)
    dropout: float = 0.3
    emb_dropout: float = 0.0
    batch_norm: bool = True
    emb_scale: float = 1.0  # multiplies the emb_sz_rule widths
    emb_wd: float = 0.02  # per-rating L2 on the embedding rows and biases used
    fm_factors: int = 20  # width of the user·item factorisation-machine term (0 = none)
    fm_wd: float = 0.12  # per-rating L2 on the FM factors used
    implicit: bool = False  # SVD++-style bags of every public pair in the FM term (needs fm_factors > 0)
    sparse: bool = False  # sparse embedding gradients with SparseAdam: a step touches the batch's rows only
    id_dropout: float = 0.05  # share of training rows whose user / item id is hidden (trains the cold-start slot)
    wd: float = 0.01  # decoupled (AdamW) weight decay on the MLP weights
    epochs: int = 10
    lr: float = 5e-3
    batch_size: int = 1024
    y_range: tuple[float, float] = (0.0, 5.5)
    device: str = "auto"

    limits: ClassVar[dict[str, str]] = {
        "layers": ">=1", "dropout": "[0,1)", "emb_dropout": "[0,1)", "emb_scale": ">0", "emb_wd": ">=0",
        "fm_factors": ">=0", "fm_wd": ">=0", "id_dropout": "[0,1)", "wd": ">=0", "epochs": ">=1", "lr": ">0",
        "batch_size": ">=2"}  # batch norm needs two rows


class EntityEmbeddingNet(nn.Module):
    """Embeddings + raw categorical + numerics -> MLP (deep), plus per-category biases (wide).

    Each categorical field has one table whose row holds everything the network learns about a category:
    its embedding, its wide bias and, for users and items, its FM factors (`parts`: their widths, per
    field). One lookup per field, and one sparse update per field with `sparse`, instead of three:
    at 25M scale a step's time goes to per-table work and to random row access, both paid per table.
    The genres' mean bag holds embedding and bias the same way.
    """

    def __init__(self, cardinalities: list[int], n_genres: int, n_dense: int, c: NNConfig, global_logit: float):
        super().__init__()
        widths = [max(2, round(emb_size(n) * c.emb_scale)) for n in cardinalities]
        fm = [c.fm_factors if j < 2 else 0 for j in range(len(cardinalities))]  # FM factors: user and item
        gw = emb_size(n_genres + 1)
        self.parts = [[w, 1, f] for w, f in zip(widths, fm, strict=True)] + ([[gw, 1]] if n_genres else [])
        self.tables = nn.ModuleList(_embedding(nn.Embedding, n, p, c.sparse)
                                    for n, p in zip(cardinalities, self.parts, strict=False))
        self.genre_bag = _embedding(nn.EmbeddingBag, n_genres + 1, self.parts[-1], c.sparse) if n_genres else None
        self.fm_factors = c.fm_factors
        self.emb_drop = FastDropout(c.emb_dropout, c.seed + 1) if c.emb_dropout else nn.Identity()
        self.dense_norm = nn.BatchNorm1d(n_dense) if (n_dense and c.batch_norm) else nn.Identity()
        width = sum(p[0] for p in self.parts) + n_dense
        blocks: list[nn.Module] = []
        for h in c.layers:
            blocks += [nn.Linear(width, h), nn.ReLU()]
            if c.batch_norm:
                blocks.append(nn.BatchNorm1d(h))
            blocks.append(FastDropout(c.dropout, c.seed + 2 + len(blocks)))
            width = h
        blocks.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*blocks)
        self.wide_dense = nn.Linear(n_dense, 1, bias=False) if n_dense else None
        self.global_bias = nn.Parameter(torch.tensor(float(global_logit)))
        self.y_range = c.y_range

    def set_implicit(self, users: np.ndarray, items: np.ndarray) -> None:
        """Add the implicit bags: (encoded) user and item index of each public pair, index 0 dropped."""
        keep = (users > 0) & (items > 0)
        u, i = torch.as_tensor(users[keep], dtype=torch.long), torch.as_tensor(items[keep], dtype=torch.long)
        n_u, n_i = self.tables[0].num_embeddings, self.tables[1].num_embeddings
        cu = torch.bincount(u, minlength=n_u).clamp(min=1).float().rsqrt()
        ci = torch.bincount(i, minlength=n_i).clamp(min=1).float().rsqrt()
        dev = self.global_bias.device
        self.register_buffer("imp_pairs", torch.stack([u, i]), persistent=True)
        self.bag_user = _csr(u, i, cu[u], (n_u, n_i)).to(dev)
        self.bag_item = _csr(i, u, ci[i], (n_i, n_u)).to(dev)
        self.imp_item = nn.Embedding(n_i, self.fm_factors, padding_idx=0).to(dev)
        self.imp_user = nn.Embedding(n_u, self.fm_factors, padding_idx=0).to(dev)
        for e in (self.imp_item, self.imp_user):
            nn.init.normal_(e.weight, 0.0, 0.01)
            with torch.no_grad():
                e.weight[0].zero_()

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        if getattr(self, "bag_user", None) is not None:  # keep the bags on the network's device
            self.bag_user, self.bag_item = fn(self.bag_user), fn(self.bag_item)
        return out

    def forward(self, cats: torch.Tensor, genres: torch.Tensor, dense: torch.Tensor):
        """Predictions, the embedding rows and biases used, and the FM factors (for the per-rating L2)."""
        parts = [t(cats[:, j]).split(self.parts[j], 1) for j, t in enumerate(self.tables)]
        if self.genre_bag is not None:
            parts.append(self.genre_bag(genres).split(self.parts[-1], 1))
        used, bias = torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)
        d = self.dense_norm(dense) if dense.shape[1] else dense
        x = self.mlp(torch.cat([self.emb_drop(used), d], 1))[:, 0] + bias.sum(1) + self.global_bias
        if self.wide_dense is not None:
            x = x + self.wide_dense(d)[:, 0]
        fm = torch.zeros_like(x[:, None])
        if self.fm_factors:
            pu, qi = parts[0][2], parts[1][2]
            if getattr(self, "bag_user", None) is not None:
                pu = pu + torch.sparse.mm(self.bag_user, self.imp_item.weight)[cats[:, 0]]
                qi = qi + torch.sparse.mm(self.bag_item, self.imp_user.weight)[cats[:, 1]]
            x = x + (pu * qi).sum(1)
            fm = torch.cat([pu, qi], 1)
        lo, hi = self.y_range
        return lo + (hi - lo) * torch.sigmoid(x), used, bias, fm


def _embedding(kind: type[nn.Embedding] | type[nn.EmbeddingBag], n: int, parts: list[int], sparse: bool):
    """An embedding table (a mean bag for `nn.EmbeddingBag`) of `n` rows whose columns are `parts` wide in turn:
    the first and third (embedding, FM factors) drawn from N(0, 0.01^2), the second (a bias) zero, and
    row 0 (unknown, padding) zero throughout."""
    weight = torch.empty(n, sum(parts)).normal_(0.0, 0.01)
    weight[:, parts[0]: parts[0] + parts[1]] = 0.0
    weight[0] = 0.0
    extra = {"mode": "mean"} if kind is nn.EmbeddingBag else {}
    return kind(n, sum(parts), padding_idx=0, sparse=sparse, _weight=weight, **extra)


def _csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A CSR matrix from coordinates (duplicates summed); CSR times dense is the fastest sparse product on
    the CPU, backward included."""
    with torch.sparse.check_sparse_tensor_invariants(False), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, shape).coalesce().to_sparse_csr()


class EntityEmbeddingModel(TorchModel[NNConfig]):
    """`nn`: entity embeddings of ids and side features through an MLP, with a wide linear part."""

    config_cls = NNConfig
    suffix = ".pt"
    side_by_side = True  # ml-1m, 2 cores: 2 folds as 1-thread processes in 60 s, against 49 s a fold on 2 threads
    fold_cost = 1.7  # ml-1m fold 0: 68 s, gbm 41 s
    fit_bytes_per_rating = 400.0  # a fold of a 22.5M-rating competition peaked at 8.3 GB (large-data setting)

    def _inputs(self, df: pd.DataFrame, dev: torch.device) -> list[torch.Tensor]:
        enc = self.encoder.transform(df, self.side.users, self.side.items)
        return [torch.as_tensor(enc["cats"], device=dev), torch.as_tensor(enc["genres"], device=dev),
                torch.as_tensor(enc["dense"], device=dev)]

    def _build(self, global_logit: float = 0.0) -> EntityEmbeddingNet:
        return EntityEmbeddingNet(self.encoder.cardinalities, len(self.encoder.genre_vocab), self.encoder.n_dense,
                                  self.config, global_logit)

    def fit(self, train: pd.DataFrame) -> EntityEmbeddingModel:
        c = self.config
        gen = seed_everything(c.seed)
        dev = resolve_device(c.device)
        self.encoder = SideEncoder(use_side=c.use_side).fit(train, self.side.users, self.side.items)
        self.net = self._build(self.global_logit(float(train["rating"].mean()), c.y_range)).to(dev)
        if c.implicit and c.fm_factors and self.side.pairs is not None:
            self.net.set_implicit(self.encoder.vocab_index("user_id", self.side.pairs["user_id"]),
                                  self.encoder.vocab_index("item_id", self.side.pairs["item_id"]))
        cats, genres, dense = self._inputs(train, dev)
        y = torch.tensor(train["rating"].to_numpy(np.float32), device=dev)

        def step_loss(batch):
            bc, bg, bd, by = batch
            if c.id_dropout:
                hide = torch.rand(bc.shape[0], 2, device=bc.device) < c.id_dropout
                bc = torch.cat([bc[:, :2].masked_fill(hide, 0), bc[:, 2:]], 1)
            pred, used, bias, fm = self.net(bc, bg, bd)
            return (torch.mean((pred - by) ** 2) + c.emb_wd * (used.pow(2).sum(1) + bias.pow(2).sum(1)).mean()
                    + c.fm_wd * fm.pow(2).sum(1).mean())

        self.net.train()
        decay = [p for n, p in self.net.named_parameters() if n.startswith(("mlp", "wide_dense")) and p.dim() > 1]
        sparse = [m.weight for m in self.net.modules()
                  if isinstance(m, nn.Embedding | nn.EmbeddingBag) and m.sparse]
        rest = [p for p in self.net.parameters() if all(p is not q for q in [*decay, *sparse])]
        groups = [{"params": decay, "weight_decay": c.wd}, {"params": rest, "weight_decay": 0.0}]
        self.epoch_seconds_ = train_minibatch(
            step_loss, groups, [cats, genres, dense, y], epochs=c.epochs, batch_size=c.batch_size,
            lr=c.lr, generator=gen, optimizer="adamw", desc="nn epochs", on_epoch_end=self.record_epoch,
            sparse_params=sparse or None)
        self.net.eval()
        return self

    @torch.no_grad()
    def embedding_table(self, kind: str) -> pd.DataFrame:
        """Per user or item (`kind`) seen in training, by raw id: its entity embedding (`e0`...), its wide bias
        and its factors in the user·item FM term (`fm0`...)."""
        j = 0 if kind == "user" else 1
        ids = np.array(list(self.encoder.vocab[f"{kind}_id"]))
        w = self.net.parts[j][0]
        weight = self.net.tables[j].weight[1: len(ids) + 1].cpu().numpy()
        table = pd.DataFrame(weight[:, :w], columns=[f"e{k}" for k in range(w)])
        table.insert(0, "bias", weight[:, w])
        table.insert(0, f"{kind}_id", ids)
        if self.net.fm_factors:
            f = weight[:, w + 1:]
            table = pd.concat([table, pd.DataFrame(f, columns=[f"fm{k}" for k in range(f.shape[1])])], axis=1)
        return table

    @torch.no_grad()
    def item_factors(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The ids of the items seen in training and their factors in the user·item (FM) term, or their
        entity embeddings when the network has no FM term."""
        w = self.net.parts[1][0]
        weight = self.net.tables[1].weight[1:].cpu().numpy()
        return np.array(list(self.encoder.vocab["item_id"])), [weight[:, w + 1:] if self.net.fm_factors
                                                               else weight[:, :w]]

    def save(self, path: Path) -> None:
        save_state(path, self.config, self.net, encoder=self.encoder.to_dict())

    @classmethod
    def load(cls, path: Path, side: SideInfo) -> EntityEmbeddingModel:
        state = load_state(path)
        m = cls(cls.config_cls.from_dict(state["config"]), side)
        m.encoder = SideEncoder.from_dict(state["encoder"])
        m.net = m._build()
        state["net"] = _one_table_per_field(state["net"], len(m.net.tables))
        if "imp_pairs" in state["net"]:
            pairs = state["net"]["imp_pairs"].numpy()
            m.net.set_implicit(pairs[0], pairs[1])
        m.net.load_state_dict(state["net"])
        m.net.to(resolve_device(m.config.device)).eval()
        return m


def _one_table_per_field(net: dict, n_fields: int) -> dict:
    """A saved network's weights in today's layout: a file from before fields had one table each (separate
    `embeds`, `biases`, `fm_user`/`fm_item` and `genre_bias` tables) gets them joined column-wise."""
    if "embeds.0.weight" not in net:
        return net
    net = dict(net)
    for j in range(n_fields):
        fm_key = ("fm_user.weight", "fm_item.weight")[j] if j < 2 else ""
        fm = [net.pop(fm_key)] if fm_key in net else []
        net[f"tables.{j}.weight"] = torch.cat([net.pop(f"embeds.{j}.weight"), net.pop(f"biases.{j}.weight"), *fm], 1)
    if "genre_bias.weight" in net:
        net["genre_bag.weight"] = torch.cat([net["genre_bag.weight"], net.pop("genre_bias.weight")], 1)
    return net
