"""Headless Chromium screenshots of the report page, offline (no network, no GPU, fresh profile)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if exe := shutil.which(name):
            return exe
    return None


def screenshot(page: Path | str, png: Path | str, width: int = 1200, height: int = 5200,
               timeout: int = 90) -> Path:
    """Render `page` to `png`; a proxy that goes nowhere makes any network request fail."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found: `apt-get install chromium`")
    page, png = Path(page).resolve(), Path(png).resolve()
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png}", page.as_uri()]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"Chromium wrote no screenshot of {page}")
    return png


def main(argv: list[str]) -> int:
    """CLI: `screenshot_report.py PAGE.html OUT.png`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if len(argv) != 2:
        log.error("usage: screenshot_report.py PAGE.html OUT.png")
        return 2
    try:
        log.info("screenshot -> %s", screenshot(argv[0], argv[1]))
    except (FileNotFoundError, RuntimeError, subprocess.SubprocessError) as e:
        log.error("%s", e)
        return 1
    return 0
