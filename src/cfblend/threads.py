"""Thread limits for a worker process that shares the machine's cores with others, and its exit with
its parent.

torch, numba, LightGBM and the BLAS read these variables once, when they load, so a worker must have them
before it imports any of them. A spawned worker imports its parent's main script first, before the
pool's initializer runs, and a script that imports torch at the top (`bench/run.py`, a notebook's) would
load them on every core: `spawn_context` starts each worker with the variables already in its
environment. Kept free of numeric imports."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from multiprocessing.context import SpawnContext, SpawnProcess

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_threads(n: int) -> None:
    """Let the numeric libraries this process loads from now on use `n` threads (OpenMP: LightGBM and torch;
    BLAS; numba)."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)


def restore_environ(saved: dict[str, str | None]) -> None:
    """Put the environment variables of `saved` back as they were (None: unset)."""
    for var, value in saved.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


class _LimitedProcess(SpawnProcess):
    """A spawned process whose environment has `threads` threads in the variables above from its first
    instruction: the parent's environment holds them while the process starts."""

    threads = 0

    def start(self) -> None:
        saved = {var: os.environ.get(var) for var in THREAD_VARIABLES}
        limit_threads(self.threads)
        try:
            super().start()
        finally:
            restore_environ(saved)


class _LimitedSpawnContext(SpawnContext):
    """The "spawn" context, its processes made `_LimitedProcess`es with `threads` threads."""

    def __init__(self, threads: int):
        self.threads = threads

    def Process(self, *args, **kwargs) -> _LimitedProcess:  # multiprocessing's name
        process = _LimitedProcess(*args, **kwargs)
        process.threads = self.threads
        return process


def spawn_context(threads: int) -> SpawnContext:
    """A "spawn" multiprocessing context whose processes start with `threads` threads in the variables above
    (0: the parent's environment as it is)."""
    return _LimitedSpawnContext(threads) if threads else multiprocessing.get_context("spawn")


def init_worker(poll: float = 1.0) -> None:
    """A spawned fold worker's set-up (its thread limit came with its environment, `spawn_context`): a
    watchdog that ends the worker when its parent dies (a killed run must not leave its workers training
    on every core)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
