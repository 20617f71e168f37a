"""Thread limits for a worker process that shares the machine's cores with others, and its exit with
its parent.

Kept free of numeric imports: torch, numba, LightGBM and the BLAS read these variables once, when they load,
so a fresh (spawned) worker sets them before it imports them. A spawned worker imports its parent's main
script first, though (before the pool's initializer), and a script that imports torch at the top (a
notebook's, `bench/run.py`, a Kaggle kernel) has loaded them already: those are limited where they stand."""

from __future__ import annotations

import os
import sys
import threading
import time

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_threads(n: int) -> None:
    """Let the numeric libraries this process loads from now on use `n` threads (OpenMP: LightGBM and torch;
    BLAS; numba)."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)
    _limit_loaded(n)


def _limit_loaded(n: int) -> None:
    """`n` threads for the numeric libraries this process has loaded already (they read the variables when
    they loaded): torch's intra-op threads, numba's pool (when it has not started yet) and every OpenMP and
    BLAS runtime (threadpoolctl; LightGBM shares torch's OpenMP)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "numba" in sys.modules:
        from numba.core import config
        from numba.np.ufunc import parallel

        if not parallel._is_initialized:  # numba's threads start on the first parallel call, with this count
            config.reload_config()
    if {"numpy", "torch", "lightgbm"} & sys.modules.keys():
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)  # applies now; the returned object only restores the old limits if asked


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
