"""Publish a dataset as a Kaggle-style competition, and read it back for the models.

`input/<dataset>-<split>/` gets train.csv (id, user_id, item_id, timestamp, rating), test.csv
(id, user_id, item_id, timestamp), sample_submission.csv (id, rating), users.csv, items.csv and
competition.json; `solution/solution.csv` (id, rating, Usage) holds the hidden answers with a
seeded Public/Private split, and only the scorer reads it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cfblend.competition.splits import split_mask
from cfblend.data.load import Dataset
from cfblend.io import read_json, sha256_file, staged_dir, write_csv, write_json

log = logging.getLogger(__name__)

TRAIN_COLS = ["id", "user_id", "item_id", "timestamp", "rating"]
TEST_COLS = ["id", "user_id", "item_id", "timestamp"]


def competition_name(dataset: str, split: str) -> str:
    """Folder name of a competition: `<dataset>-<split>`."""
    return f"{dataset}-{split}"


def make_competition(ds: Dataset, split: str, folder: Path | str, seed: int = 42, test_frac: float = 0.1,
                     public_frac: float = 0.3) -> Path:
    """Split `ds` and write the competition into `folder` (replaced atomically as a whole)."""
    folder = Path(folder)
    r = ds.ratings
    mask = split_mask(r, split, seed=seed, test_frac=test_frac)
    train = r[~mask].sort_values(["user_id", "item_id"], kind="stable")
    test = r[mask].sort_values(["user_id", "item_id"], kind="stable")
    train = train.assign(id=np.arange(len(train), dtype=np.int64))
    test = test.assign(id=np.arange(len(train), len(train) + len(test), dtype=np.int64))
    rng = np.random.default_rng(seed + 1)
    n_public = round(len(test) * public_frac)
    usage = np.full(len(test), "Private", dtype=object)
    usage[rng.permutation(len(test))[:n_public]] = "Public"
    mean = float(train["rating"].mean())

    with staged_dir(folder) as tmp:
        write_csv(train[TRAIN_COLS], tmp / "train.csv")
        write_csv(test[TEST_COLS], tmp / "test.csv")
        write_csv(pd.DataFrame({"id": test["id"], "rating": round(mean, 4)}), tmp / "sample_submission.csv")
        write_csv(ds.users, tmp / "users.csv")
        write_csv(ds.items.assign(genres=ds.items["genres"].map("|".join)), tmp / "items.csv")
        write_csv(pd.DataFrame({"id": test["id"], "rating": test["rating"], "Usage": usage}),
                  tmp / "solution" / "solution.csv")
        meta = {"name": folder.name, "dataset": ds.name, "split": split, "seed": seed,
                "test_frac": test_frac if split in ("random", "time") else None, "public_frac": public_frac,
                "rating_scale": list(ds.rating_scale), "n_train": len(train), "n_test": len(test),
                "n_users": int(r["user_id"].nunique()), "n_items": int(r["item_id"].nunique())}
        write_json(meta, tmp / "competition.json")
    log.info("competition %s: %d train rows, %d test rows (%d Public)", folder.name, len(train), len(test), n_public)
    return folder


PUBLIC_FILES = ("competition.json", "train.csv", "test.csv", "users.csv", "items.csv")  # what models may read


def content_fingerprint(folder: Path | str) -> str:
    """SHA-256 over the bytes of the files a model may read (never the solution): the competition's
    identity by content, so a rewritten competition under the same name is a different one."""
    h = hashlib.sha256()
    for name in PUBLIC_FILES:
        h.update(name.encode() + b"\0" + sha256_file(Path(folder) / name).encode())
    return h.hexdigest()


@dataclass
class Competition:
    """What a competitor sees: train, test and the side tables. Never the solution."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    rating_scale: tuple[float, float]
    meta: dict
    fingerprint: str = ""  # content_fingerprint of the folder it was loaded from

    @classmethod
    def load(cls, folder: Path | str) -> Competition:
        """Read a competition folder written by `make_competition`."""
        folder = Path(folder)
        if not (folder / "competition.json").is_file():
            raise FileNotFoundError(f"{folder}: no competition here; run `make competition` first")
        meta = read_json(folder / "competition.json")
        train = pd.read_csv(folder / "train.csv", dtype={"rating": "float32"}, engine="pyarrow")
        test = pd.read_csv(folder / "test.csv", engine="pyarrow")
        users = pd.read_csv(folder / "users.csv", dtype={"zip": str, "gender": str, "occupation": str})
        items = pd.read_csv(folder / "items.csv", dtype={"genres": str, "title": str})
        items["genres"] = [g.split("|") if isinstance(g, str) and g else [] for g in items["genres"]]
        return cls(meta["name"], train, test, users, items, tuple(meta["rating_scale"]), meta,
                   content_fingerprint(folder))
