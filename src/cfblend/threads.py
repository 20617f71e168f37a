"""Thread limits for a worker process that shares the machine's cores with others.

Kept free of numeric imports: a fresh (spawned) worker runs `limit_threads` before it imports torch,
numba or LightGBM, which read these variables once, when they load."""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_threads(n: int) -> None:
    """Let the numeric libraries this process loads from now on use `n` threads (OpenMP: LightGBM and torch;
    BLAS; numba)."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)
