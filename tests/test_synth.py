"""The synthetic ML-25M-shaped generator, at a small scale."""

from __future__ import annotations

import numpy as np
import pytest

from cfblend.data import get_spec, load_dataset
from cfblend.data.sources import ensure_dataset
from cfblend.data.synth import SynthSpec, generate, write_synth
from cfblend.errors import DataError

SMALL = SynthSpec(n_users=300, n_items=400, n_ratings=30_000, seed=3)


def test_shape_and_values():
    r, movies = generate(SMALL)
    assert len(r) == 30_000 and r["userId"].nunique() == 300 and len(movies) == 400
    assert not r.duplicated(["userId", "movieId"]).any()
    assert r.groupby("userId").size().min() >= 20
    assert set(np.unique(r["rating"])) <= {x / 2 for x in range(1, 11)}
    pop = r["movieId"].value_counts()
    assert pop.iloc[0] > 5 * pop.median()  # a skewed, power-law-like popularity
    r2, _ = generate(SMALL)
    assert r.equals(r2)  # seeded


def test_written_set_loads_and_is_verified_by_its_recorded_hash(tmp_path):
    folder = write_synth(tmp_path / "input" / "synth-25m", SMALL)
    spec = get_spec("synth-25m")
    assert ensure_dataset(spec, tmp_path / "input", network=False) == folder
    ds = load_dataset("synth-25m", folder)
    assert len(ds.ratings) == 30_000 and ds.rating_scale == (0.5, 5.0)
    with open(folder / "ratings.csv", "a") as f:
        f.write("1,1,3.0,0\n")
    with pytest.raises(DataError, match="failed verification"):
        ensure_dataset(spec, tmp_path / "input", network=False)
