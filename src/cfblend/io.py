"""Atomic artifact writes: every file lands under a temp name, then is renamed into place."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)

FAULT_ENV = "CFBLEND_FAULT"  # test hook: the name of a fault point at which the process dies


def fault_point(name: str) -> None:
    """Die at once, as a killed process would (no cleanup, exit 137), when `CFBLEND_FAULT` names this
    point. The fault-injection tests use it to stop a run between two artifact writes."""
    if os.environ.get(FAULT_ENV) == name:
        os._exit(137)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def make_tempdir(parent: str | Path, prefix: str) -> Path:
    """A temp folder inside `parent` (for staging a folder that is renamed into place), with the
    usual permissions rather than mkdtemp's 0700."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    return tmp


@contextlib.contextmanager
def staged_dir(folder: str | Path) -> Iterator[Path]:
    """Yield a temp folder beside `folder` to build it in; if the block succeeds, swap it into place
    as a whole (any old `folder` is replaced), else remove it. Nothing half-built is ever left."""
    folder = Path(folder)
    tmp = make_tempdir(folder.parent, f".{folder.name}.")
    try:
        yield tmp
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write `df` as CSV (no index) atomically; Arrow's multi-threaded writer for large frames."""
    with atomic_path(path) as tmp:
        if len(df) > 100_000:
            import pyarrow as pa
            import pyarrow.csv as pacsv

            pacsv.write_csv(pa.Table.from_pandas(df, preserve_index=False), tmp)
        else:
            df.to_csv(tmp, index=False)


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write `df` as parquet (no index) atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_json(obj: Any, path: str | Path) -> None:
    """Write `obj` as indented JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_text(text: str, path: str | Path) -> None:
    """Write `text` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple | set):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
