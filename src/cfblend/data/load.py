"""Read any supported MovieLens dataset into one canonical form.

ratings: user_id, item_id (int64), rating (float32), timestamp (int64), in file order.
users:   user_id plus age, gender, occupation, zip where the dataset has them.
items:   item_id, title, year (float, NaN when unknown), genres (list of str).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cfblend.data.datasets import DatasetSpec, get_spec
from cfblend.data.movielens_meta import ML1M_OCCUPATIONS, ML100K_GENRES
from cfblend.errors import DataError

_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass
class Dataset:
    """A loaded dataset in canonical form."""

    name: str
    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    rating_scale: tuple[float, float]


def load_dataset(name: str, folder: Path | str, spec: DatasetSpec | None = None) -> Dataset:
    """Load dataset `name` from `folder` (as the official zip unpacks it)."""
    spec = spec or get_spec(name)
    folder = Path(folder)
    readers = {"100k": _load_100k, "1m": _load_1m, "latest": _load_latest}
    ratings, users, items = readers[spec.reader](folder)
    check_ratings(ratings, folder / spec.ratings_file, spec.rating_scale)
    return Dataset(name, ratings, users, items, spec.rating_scale)


# --- validation ----------------------------------------------------------------------------


def check_ratings(r: pd.DataFrame, path: Path, scale: tuple[float, float]) -> None:
    """Refuse ratings outside the scale or repeated (user, item) pairs, naming file and row."""
    lo, hi = scale
    bad = ~r["rating"].between(lo, hi)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: row {row + 1}: rating {r['rating'].iloc[row]} outside [{lo}, {hi}]")
    key = r["user_id"].to_numpy(np.int64) * (1 << 32) + r["item_id"].to_numpy(np.int64)
    dup = pd.Series(key).duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise DataError(f"{path}: row {row + 1}: repeated rating of item {r['item_id'].iloc[row]} "
                        f"by user {r['user_id'].iloc[row]}")


def _numeric(df: pd.DataFrame, path: Path, cols: dict[str, str], header_rows: int = 0) -> pd.DataFrame:
    """Cast columns to dtypes; on failure name the file, the row (1-based line) and the bad value."""
    out = {}
    for col, dtype in cols.items():
        s = df[col]
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: row {row + 1 + header_rows}: column {col}: "
                            f"not a number: {s.iloc[row]!r}")
        if dtype.startswith("int") and (num != np.round(num)).any():
            row = int(np.flatnonzero((num != np.round(num)).to_numpy())[0])
            raise DataError(f"{path}: row {row + 1 + header_rows}: column {col}: not an integer: {s.iloc[row]!r}")
        out[col] = num.astype(dtype)
    return df.assign(**out)


def _read_table(path: Path, sep: str, names: list[str], usecols: list[int] | None = None,
                header: int | None = None, encoding: str = "utf-8") -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return pd.read_csv(path, sep=sep, header=header, names=names, usecols=usecols, dtype=str,
                           encoding=encoding, keep_default_na=False, engine="c")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: {e}") from None


_RATING_TYPES = {"user_id": "int64", "item_id": "int64", "rating": "float32", "timestamp": "int64"}


def _ratings(path: Path, sep: str, usecols: list[int] | None = None, header: int | None = None) -> pd.DataFrame:
    names = list(_RATING_TYPES)
    if path.is_file():  # fast path: typed parse; fall back to a checked parse to locate errors
        try:
            df = pd.read_csv(path, sep=sep, header=header, names=names, usecols=usecols,
                             dtype=_RATING_TYPES, engine="c")
            if not df.isna().any().any() and len(df.columns) == 4:
                return df[names]
        except (ValueError, pd.errors.ParserError):
            pass
    df = _read_table(path, sep, names, usecols=usecols, header=header)
    return _numeric(df, path, _RATING_TYPES, header_rows=0 if header is None else header + 1)[names]


def _year_from_title(titles: pd.Series) -> pd.Series:
    return titles.str.extract(_YEAR, expand=False).astype(float)


# --- ml-100k -------------------------------------------------------------------------------


def _load_100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _ratings(folder / "u.data", "\t")
    upath = folder / "u.user"
    users = _read_table(upath, "|", ["user_id", "age", "gender", "occupation", "zip"], encoding="latin-1")
    users = _numeric(users, upath, {"user_id": "int64", "age": "float64"})
    ipath = folder / "u.item"
    cols = ["item_id", "title", "release_date", "video_date", "url", *ML100K_GENRES]
    raw = _read_table(ipath, "|", cols, encoding="latin-1")
    raw = _numeric(raw, ipath, {"item_id": "int64"})
    flags = raw[list(ML100K_GENRES)].to_numpy() == "1"
    year = pd.to_numeric(raw["release_date"].str[-4:], errors="coerce")
    year = year.fillna(_year_from_title(raw["title"]))
    items = pd.DataFrame({
        "item_id": raw["item_id"],
        "title": raw["title"],
        "year": year.astype(float),
        "genres": [[g for g, f in zip(ML100K_GENRES, row, strict=True) if f] for row in flags],
    })
    return ratings, users, items


# --- ml-1m ---------------------------------------------------------------------------------


def _load_1m(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    # '::' separated; splitting on ':' and keeping every other field keeps the fast C parser.
    ratings = _ratings(folder / "ratings.dat", ":", usecols=[0, 2, 4, 6])
    upath = folder / "users.dat"
    users = _read_table(upath, ":", ["user_id", "gender", "age", "occupation", "zip"],
                        usecols=[0, 2, 4, 6, 8], encoding="latin-1")
    users = _numeric(users, upath, {"user_id": "int64", "age": "float64", "occupation": "int64"})
    users["occupation"] = users["occupation"].map(dict(enumerate(ML1M_OCCUPATIONS))).fillna("other")
    users = users[["user_id", "age", "gender", "occupation", "zip"]]
    mpath = folder / "movies.dat"
    rows = []
    for n, line in enumerate(mpath.read_text(encoding="latin-1").splitlines(), 1):
        if not line:
            continue
        parts = line.split("::")
        if len(parts) != 3 or not parts[0].isdigit():
            raise DataError(f"{mpath}: row {n}: expected 'MovieID::Title::Genres', got {line!r}")
        rows.append((int(parts[0]), parts[1], parts[2].split("|") if parts[2] else []))
    items = pd.DataFrame(rows, columns=["item_id", "title", "genres"])
    items.insert(2, "year", _year_from_title(items["title"]))
    return ratings, users, items


# --- ml-latest-small (and other ml-latest / ml-25m style csv sets) ------------------------


def _load_latest(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _ratings(folder / "ratings.csv", ",", header=0)
    mpath = folder / "movies.csv"
    if not mpath.is_file():
        raise DataError(f"{mpath}: file not found")
    movies = pd.read_csv(mpath, dtype={"movieId": "int64", "title": str, "genres": str})
    genres = [[] if g == "(no genres listed)" else g.split("|") for g in movies["genres"].fillna("")]
    items = pd.DataFrame({"item_id": movies["movieId"], "title": movies["title"],
                          "year": _year_from_title(movies["title"].str.strip()), "genres": genres})
    users = pd.DataFrame({"user_id": np.sort(ratings["user_id"].unique())})
    return ratings, users, items
