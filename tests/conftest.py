"""Shared fixtures: small synthetic MovieLens files in the real formats, and the real data when present."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cfblend.data.datasets import DatasetSpec, get_spec
from cfblend.data.movielens_meta import ML100K_GENRES, ML100K_OCCUPATIONS

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def real_data(name: str, needs: str | None = None) -> Path:
    """The real dataset (with file `needs`, if given), the official files: ../shared/data first, then
    input/ unless that copy was rebuilt from a mirror's own format; else skip saying why."""
    import json

    want = needs or get_spec(name).ratings_file
    for folder in (SHARED / name, REPO / "input" / name):
        source = folder / "SOURCE.json"
        derived = source.is_file() and json.loads(source.read_text()).get("derived")
        if (folder / want).is_file() and not derived:
            return folder
    pytest.skip(f"real {name} with {want} (the official files) not found in ../shared/data/{name} or input/{name} "
                f"(unpack the official zip there, or run `make data DATASET={name} DATA_DIR=<official zip>`)")


def synthetic_ratings(n_users: int = 60, n_items: int = 80, per_user: int = 25, seed: int = 0, k: int = 3):
    """Ratings from a low-rank signal plus biases plus noise, rounded to 1..5 stars, in shuffled order."""
    rng = np.random.default_rng(seed)
    P, Q = rng.normal(0, 0.6, (n_users, k)), rng.normal(0, 0.6, (n_items, k))
    bu, bi = rng.normal(0, 0.4, n_users), rng.normal(0, 0.5, n_items)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=per_user, replace=False):
            r = 3.5 + bu[u] + bi[i] + P[u] @ Q[i] + rng.normal(0, 0.3)
            rows.append((u + 1, int(i) + 1, int(np.clip(np.rint(r), 1, 5)), 880_000_000 + rng.integers(0, 10**7)))
    order = rng.permutation(len(rows))
    return [rows[j] for j in order]


def write_ml100k(folder: Path, n_users: int = 60, n_items: int = 80, seed: int = 0) -> DatasetSpec:
    """Write u.data/u.user/u.item/u.genre/u.occupation like the official files; return a matching spec."""
    folder.mkdir(parents=True, exist_ok=True)
    ratings = synthetic_ratings(n_users, n_items, seed=seed)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings))
    rng = np.random.default_rng(seed + 1)
    (folder / "u.user").write_text("".join(
        f"{u}|{rng.integers(15, 70)}|{'MF'[u % 2]}|{ML100K_OCCUPATIONS[u % len(ML100K_OCCUPATIONS)]}|"
        f"{'0123456789'[u % 10]}{u:04d}\n" for u in range(1, n_users + 1)))
    lines = []
    for i in range(1, n_items + 1):
        flags = ["1" if (i + g) % 7 == 0 or g == 1 + i % 17 else "0" for g in range(len(ML100K_GENRES))]
        year = 1930 + i % 68
        lines.append(f"{i}|Movie {i} ({year})|01-Jan-{year}||http://x/{i}|" + "|".join(flags) + "\n")
    (folder / "u.item").write_text("".join(lines), encoding="latin-1")
    (folder / "u.genre").write_text("".join(f"{g}|{n}\n" for n, g in enumerate(ML100K_GENRES)))
    (folder / "u.occupation").write_text("".join(o + "\n" for o in ML100K_OCCUPATIONS))
    def sha(name: str) -> str:
        return hashlib.sha256((folder / name).read_bytes()).hexdigest()

    return replace(get_spec("ml-100k"), ratings_sha256=sha("u.data"), default_split="random",
                   file_sha256={f: sha(f) for f in ("u.item", "u.user", "u.genre", "u.occupation")})


@pytest.fixture
def ml100k_dir(tmp_path) -> tuple[Path, DatasetSpec]:
    """A synthetic ml-100k folder and a spec whose hash matches it."""
    folder = tmp_path / "raw" / "ml-100k"
    return folder, write_ml100k(folder)


@pytest.fixture
def comp_env(ml100k_dir, tmp_path):
    """A synthetic competition with folds and a stamped output folder: (Competition, folds, Paths)."""
    from cfblend.competition import Competition, make_competition
    from cfblend.competition.folds import ensure_folds
    from cfblend.data.load import load_dataset
    from cfblend.paths import Paths

    folder, spec = ml100k_dir
    paths = Paths(tmp_path / "input", tmp_path / "output")
    comp = Competition.load(make_competition(load_dataset("ml-100k", folder, spec), "random",
                                             paths.competition("syn-random"), seed=1, test_frac=0.2))
    return comp, ensure_folds(comp, paths, k=3, seed=0), paths


def check_learns_repeats_and_round_trips(name: str, config: dict, comp_env, tmp_path) -> None:
    """Model `name` beats the training mean on fold 0 by 0.05, a second fit gives the same predictions, and so
    does the model saved and loaded back."""
    from cfblend.competition.scoring import rmse
    from cfblend.models import make_model, model_class
    from cfblend.runs import side_info

    comp, folds, _ = comp_env
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    a = make_model(name, side_info(comp), config).fit(fit)
    pa = a.predict(val)
    assert rmse(val["rating"], pa) < rmse(val["rating"], np.full(len(val), fit["rating"].mean())) - 0.05
    np.testing.assert_array_equal(pa, make_model(name, side_info(comp), config).fit(fit).predict(val))
    a.save(tmp_path / f"{name}.pt")
    np.testing.assert_array_equal(pa, model_class(name).load(tmp_path / f"{name}.pt", side_info(comp)).predict(val))
