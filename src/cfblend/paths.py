"""Where things live: input/<dataset>, input/<dataset>-<split>, output/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
