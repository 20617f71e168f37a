"""Where things live: input/<dataset>, input/<dataset>-<split>, output/."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from cfblend.errors import ArtifactConflict

# What an output folder may hold; `remove_output` refuses to delete a folder holding anything else.
ARTIFACT_NAMES = {"competition.json", "folds.csv", "oof", "test", "models", "scores", "cache", ".staging",
                  "leaderboard.csv", "leaderboard.md", "report.html", "report.png", "submission.csv", "cold_start.csv",
                  "ablation_side_features.md", "gbm_importance.csv", "gbm_importance.png", "embeddings", "logs",
                  "predictions.csv",
                  "tune"}


@dataclass(frozen=True)
class Paths:
    """The folders of one run: raw data, the competition, and the artifacts."""

    input: Path = Path("input")
    output: Path = Path("output")

    def raw(self, dataset: str) -> Path:
        """Raw files of a dataset, as the official zip unpacks them."""
        return self.input / dataset

    def competition(self, name: str) -> Path:
        """The published competition folder (train/test/sample submission)."""
        return self.input / name

    def solution(self, name: str) -> Path:
        """The hidden answers, apart from everything model code reads."""
        return self.input / name / "solution" / "solution.csv"

    @property
    def folds(self) -> Path:
        return self.output / "folds.csv"

    @property
    def stamp(self) -> Path:
        """Which competition the artifacts in output/ belong to."""
        return self.output / "competition.json"

    def oof(self, model: str) -> Path:
        return self.output / "oof" / f"{model}.parquet"

    def test(self, model: str) -> Path:
        return self.output / "test" / f"{model}.parquet"

    def models(self, model: str) -> Path:
        return self.output / "models" / model

    def scores(self, model: str) -> Path:
        return self.output / "scores" / f"{model}.json"


def _foreign(folder: Path) -> list[str]:
    """Entries of `folder` that no artifact folder holds (a nested artifact folder is fine)."""
    out = []
    for p in folder.iterdir():
        if p.name in ARTIFACT_NAMES or (p.name.startswith(".") and p.name.endswith(".tmp")):
            continue
        if p.is_dir() and not p.is_symlink() and ((p / "competition.json").exists() or not any(p.iterdir())):
            out += [f"{p.name}/{q}" for q in _foreign(p)]
            continue
        out.append(p.name)
    return out


def remove_output(folder: Path | str) -> None:
    """`make clean`: delete an artifact folder, refusing anything that does not look like one (the
    repository, a home folder, a folder with files this project did not write)."""
    folder = Path(folder)
    if not folder.exists():
        return
    real = folder.resolve()
    cwd = Path.cwd().resolve()
    if real == Path(real.anchor) or real == Path.home().resolve() or real in (cwd, *cwd.parents):
        raise ArtifactConflict(f"refusing to delete {folder}: it is the file system root, a home folder, or the "
                               "current folder or one of its parents")
    if not real.is_dir() or folder.is_symlink():
        raise ArtifactConflict(f"refusing to delete {folder}: not an artifact folder")
    foreign = _foreign(real)
    if foreign:
        raise ArtifactConflict(f"refusing to delete {folder}: it holds files this project did not write "
                               f"({', '.join(sorted(foreign)[:5])}); delete them by hand if you mean it")
    shutil.rmtree(real)
