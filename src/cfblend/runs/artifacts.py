"""Which artifacts can be trusted: a model's files are committed together, and readers check them.

A trained model is the set `oof/<m>.parquet`, `test/<m>.parquet`, `models/<m>/` and
`scores/<m>.json`. The scores file is the set's *manifest*: it is written last and holds the
SHA-256 of every other file of the set, the content hash of the competition and of the fold
assignment it was trained on, and the run's fingerprint (model, config, code, data, folds). A
set is built in a staging folder and moved into place only when complete (`commit`); until its
manifest is written the model counts as not trained. `check` is what every reader calls.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import logging
import os
import pkgutil
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from cfblend.errors import ArtifactConflict
from cfblend.io import fault_point, make_tempdir, read_json, sha256_file, write_json
from cfblend.paths import Paths

log = logging.getLogger(__name__)


class StaleArtifact(ArtifactConflict):
    """Artifacts that were not made from what is there now (or are incomplete); says what to run."""


FEATURE_MODULES = ("cfblend.models.", "cfblend.competition.folds")  # shared code a member's numbers depend on


@functools.cache
def code_fingerprint(cls: type) -> str:
    """SHA-256 of the source of the module defining `cls` and, when that module lives in a package of
    its own (`models/dot/`), of every module of that package; and of the other `cfblend.models` modules
    whose names it imports (`models/timeline.py` for `gbm` and `bfm`, the dot package for `gbm`; not
    `models/base.py`, the interface every member shares), and `competition/folds.py` where a member draws folds of
    its own with it (`gbm`'s and `bfm`'s inner folds), so a change to a feature shared between members
    makes their artifacts stale too. Read through the import system, so it works inside the Kaggle kernel's
    zip too."""
    module = sys.modules[cls.__module__]
    names = {module.__name__}
    package = module.__name__.rpartition(".")[0]
    pkg = sys.modules.get(package)
    if pkg is not None and package.count(".") >= 2 and hasattr(pkg, "__path__"):  # cfblend.models.<pkg>
        names = {package} | {f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)}
    for value in list(vars(module).values()):
        name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(name, str) and name.startswith(FEATURE_MODULES) and name != "cfblend.models.base":
            names.add(name)
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(inspect.getsource(importlib.import_module(name)).encode())
    return h.hexdigest()[:16]


_HASHES: dict[tuple, str] = {}


def _sha(path: Path) -> str:
    """SHA-256 of a file, remembered for as long as the file is the same (inode, size, mtime): the
    readers of one command (blend, report, `check_blend`) check the same files more than once."""
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


def file_hashes(paths: Paths, files: list[Path]) -> dict[str, str]:
    """{path relative to the output folder: SHA-256} of `files`."""
    return {f.relative_to(paths.output).as_posix(): _sha(f) for f in files}


def model_file(path: Path, bag: int) -> Path:
    """Where bag `bag` of a fold job saved as `path` (`fold<k><suffix>`, `refit<suffix>`) goes: `path` itself for
    the first bag, `fold<k>-bag<b><suffix>` beside it for the others (`runs.cv.fit_fold`)."""
    if bag == 0:
        return path
    stem, dot, rest = path.name.partition(".")
    return path.with_name(f"{stem}-bag{bag}{dot}{rest}")


def fold_model_files(paths: Paths, name: str, suffix: str, bags: bool = False) -> list[Path]:
    """The saved fold models `fold<k><suffix>` of `name`, in fold order (not companion files such as gbm's
    `fold0.dot.pt`); with `bags`, each fold's further bags `fold<k>-bag<b><suffix>` too, after it."""
    return _saved_models(paths, name, r"fold(\d+)", suffix, bags)


def refit_model_files(paths: Paths, name: str, suffix: str) -> list[Path]:
    """The saved refit model `refit<suffix>` of `name` and its further bags `refit-bag<b><suffix>` (none when
    the member has no refit)."""
    return _saved_models(paths, name, r"refit()", suffix, bags=True)


def _saved_models(paths: Paths, name: str, head: str, suffix: str, bags: bool) -> list[Path]:
    """The files `<head>[-bag<b>]<suffix>` of `name`'s models (`head`'s group: the fold), by fold, then bag."""
    pattern = re.compile(head + r"(?:-bag(\d+))?" + re.escape(suffix))
    found = []
    for f in paths.models(name).glob(f"*{suffix}"):
        m = pattern.fullmatch(f.name)
        if m and (bags or m[2] is None):
            found.append(((int(m[1] or 0), int(m[2] or 0)), f))
    return [f for _, f in sorted(found)]


def member_files(paths: Paths, name: str) -> list[Path]:
    """The files of a trained model's set, the manifest excepted."""
    folder = paths.models(name)
    models = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return [paths.oof(name), paths.test(name), *models]


def check(paths: Paths, name: str, competition_sha: str, folds_sha: str, what: str = "model",
          loads_models: bool = False) -> dict[str, Any]:
    """The manifest of `name`, after checking that its set is complete, intact and made from the
    competition and folds that are there now (and, for a reader that `loads_models`, by the model
    code there now); `StaleArtifact` (saying what to run) otherwise."""
    refresh = "`make blend`" if name == "blend" else f"`make train MODEL={name}`"
    manifest_path = paths.scores(name)
    if not manifest_path.exists():
        raise StaleArtifact(f"{what} {name} is not trained in {paths.output} (or its run did not finish): run "
                            f"{refresh}")
    m = read_json(manifest_path)
    if m.get("competition_sha") != competition_sha or m.get("folds_sha") != folds_sha:
        raise StaleArtifact(f"{what} {name} in {paths.output} was made from another version of the competition or "
                            f"other folds: rerun {refresh}")
    for rel, sha in (m.get("files") or {}).items():
        f = paths.output / rel
        if not f.is_file() or _sha(f) != sha:
            raise StaleArtifact(f"{what} {name}: {rel} is missing or is not the file its run wrote: rerun {refresh}")
    if not m.get("files"):
        raise StaleArtifact(f"{what} {name}: {manifest_path} lists no files (written by an older version): rerun "
                            f"{refresh}")
    if loads_models and name != "blend":
        from cfblend.models import model_class

        if m.get("code") != code_fingerprint(model_class(name)):
            raise StaleArtifact(f"{what} {name}: its fold models were written by another version of its code: rerun "
                                f"{refresh}")
    return m


def valid(paths: Paths, name: str, competition_sha: str, folds_sha: str, loads_models: bool = False) -> bool:
    """True when `check` passes."""
    try:
        check(paths, name, competition_sha, folds_sha, loads_models=loads_models)
    except StaleArtifact:
        return False
    return True


def staging(paths: Paths, name: str) -> Path:
    """A fresh staging folder for a run of `name` (inside the output folder, so renames stay on one disk)."""
    return make_tempdir(paths.output / ".staging", f"{name}.")


def commit(paths: Paths, name: str, stage: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Move a staged set (`stage/oof.parquet`, `stage/test.parquet`, `stage/models/`) into place and
    write its manifest last. The old manifest goes first, so at no moment is a mix of two runs valid."""
    paths.scores(name).unlink(missing_ok=True)
    fault_point("commit:after_unlink")
    target = paths.models(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    if (stage / "models").exists():
        (stage / "models").rename(target)
    shutil.rmtree(old, ignore_errors=True)
    fault_point("commit:after_models")
    for kind, dest in (("oof", paths.oof(name)), ("test", paths.test(name))):
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / f"{kind}.parquet", dest)
        fault_point(f"commit:after_{kind}")
    manifest = {**manifest, "files": file_hashes(paths, member_files(paths, name))}
    write_json(manifest, paths.scores(name))
    shutil.rmtree(stage, ignore_errors=True)
    return manifest
