"""numba for the models' compiled loops, in one place: `njit` and `prange` (None and `range` where numba
is missing; it is in requirements.txt), and `CACHE`: whether compiled code may be cached beside the
package's files (not inside a zip, as in the Kaggle kernel)."""

from __future__ import annotations

import os

try:
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - numba is in requirements.txt
    numba, njit, prange = None, None, range

CACHE = os.path.isfile(__file__)

__all__ = ["CACHE", "njit", "numba", "prange"]
