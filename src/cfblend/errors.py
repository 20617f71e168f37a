"""The failures every stage may raise and the command line turns into one clear line."""

from __future__ import annotations


class DataError(RuntimeError):
    """The data could not be obtained or did not verify."""


class SubmissionError(ValueError):
    """A submission that cannot be scored, with the reason."""


class ArtifactConflict(RuntimeError):
    """Artifacts exist for a different config or competition; refusing to overwrite silently."""


class KaggleError(RuntimeError):
    """A kaggle command that cannot run here, with what to do about it."""
