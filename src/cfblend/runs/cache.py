"""A content-addressed cache of fitted models (under `output/cache/`): the same class, config and
training rows give the same key, so a model fitted once (a dot model of a CV fold, say) is loaded
instead of refitted."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cfblend.models.base import Model, SideInfo
from cfblend.runs.artifacts import code_fingerprint

log = logging.getLogger(__name__)


class ModelCache:
    """Fitted models under `folder/<class>/<key><suffix>`."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)

    @staticmethod
    def key(model: Model, train: pd.DataFrame) -> str:
        """Hash of the model's class, config and code, and the exact training rows."""
        h = hashlib.sha256(json.dumps({"class": type(model).__name__, "config": model.config.to_dict(),
                                       "code": code_fingerprint(type(model))}, sort_keys=True).encode())
        for col in ("user_id", "item_id", "rating", "timestamp"):
            if col in train:
                h.update(np.ascontiguousarray(train[col].to_numpy()).tobytes())
        return h.hexdigest()[:24]

    def path(self, model: Model, train: pd.DataFrame) -> Path:
        return self.folder / type(model).__name__ / f"{self.key(model, train)}{model.suffix}"

    def put(self, model: Model, train: pd.DataFrame) -> None:
        """Store a model fitted on `train`."""
        model.save(self.path(model, train))

    def fit(self, model: Model, train: pd.DataFrame, side: SideInfo) -> Model:
        """`model` fitted on `train`: loaded from the cache when present, else fitted and stored."""
        path = self.path(model, train)
        if path.exists():
            log.debug("cache hit %s", path)
            return type(model).load(path, side)
        model.fit(train)
        model.save(path)
        return model
