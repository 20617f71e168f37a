"""The line every benchmark table ends with: the machine's CPU count, Python and package versions."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version


def machine_line(packages: Iterable[str]) -> str:
    """`Machine: <n> CPU cores (<cpu>), Python <x.y.z>; <package> <version>, ...` (a package missing says so)."""
    got = []
    for name in packages:
        try:
            got.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            got.append(f"{name} (not installed)")
    return (f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
            f"Python {platform.python_version()}; {', '.join(got)}.")
