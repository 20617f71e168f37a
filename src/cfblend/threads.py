"""Thread limits for a worker process that shares the machine's cores with others, and its exit with
its parent.

Kept free of numeric imports: a fresh (spawned) worker runs `limit_threads` before it imports torch,
numba or LightGBM, which read these variables once, when they load."""

from __future__ import annotations

import os
import threading
import time

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_threads(n: int) -> None:
    """Let the numeric libraries this process loads from now on use `n` threads (OpenMP: LightGBM and torch;
    BLAS; numba)."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)


def init_worker(threads: int, poll: float = 1.0) -> None:
    """A spawned fold worker's set-up: `threads` threads for the numeric libraries (0: no limit), and a
    watchdog that ends the worker when its parent dies (a killed run must not leave its workers
    training on every core)."""
    if threads:
        limit_threads(threads)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
