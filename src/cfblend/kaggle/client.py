"""`make kernel-push` and `make submit`: thin calls of the kaggle client, checked for credentials first.

The kaggle package authenticates when imported, so it is never imported here: its command-line
client runs in a subprocess, and only these two commands need credentials.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from cfblend.data.sources import kaggle_credentials_present
from cfblend.errors import KaggleError

log = logging.getLogger(__name__)


def client() -> str:
    """The kaggle executable, once credentials are there; `KaggleError` saying what to do otherwise."""
    if not kaggle_credentials_present():
        raise KaggleError("no Kaggle credentials: put kaggle.json in ~/.kaggle/ (chmod 600) or set KAGGLE_USERNAME "
                          "and KAGGLE_KEY (https://www.kaggle.com/settings -> API -> Create New Token)")
    exe = shutil.which("kaggle") or str(Path(sys.executable).parent / "kaggle")
    if not Path(exe).exists():
        raise KaggleError("the kaggle client is not installed: run `make install`")
    return exe


def _run(cmd: list[str]) -> None:
    log.info("running: %s", " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.stdout:
        log.info("%s", done.stdout.strip())
    if done.returncode != 0:
        raise KaggleError(f"`{' '.join(cmd[:3])} ...` failed: {(done.stderr or done.stdout).strip()}")


def push_kernel(folder: Path | str = "kernel") -> None:
    """`kaggle kernels push -p <folder>`."""
    folder = Path(folder)
    if not (folder / "kernel-metadata.json").exists():
        raise KaggleError(f"{folder}/kernel-metadata.json missing: run `make kernel` first")
    _run([client(), "kernels", "push", "-p", str(folder)])


def submit(competition: str, file: Path | str, message: str) -> None:
    """`kaggle competitions submit <competition> -f <file> -m <message>`."""
    if not competition:
        raise KaggleError("no competition given: `make submit COMP=<competition-slug>`")
    if not Path(file).exists():
        raise KaggleError(f"{file} missing: run `make all` (or `make blend`) first")
    _run([client(), "competitions", "submit", competition, "-f", str(file), "-m", message])
