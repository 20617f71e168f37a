"""Where the independent jobs of a run (one fold model each) execute: in this process, or on Dask.

`EXECUTOR=local` (the default) runs them one after another here. `EXECUTOR=dask` sends them to a
Dask distributed cluster: the one at `SCHEDULER=<address>` (e.g. `tcp://10.0.0.5:8786`, started
with `dask scheduler` and `dask worker <address>` on each machine), or a local cluster of
`WORKERS` single-threaded worker processes when no address is given. In a local run, the folds of a
member that fits on one core (`Model.single_threaded`: the Bayesian FMs), or that does more work
per second as one single-threaded process per core than as one process on every core
(`Model.side_by_side`), run side by side in a `ProcessExecutor`, one process per core. Each job reads the
competition it is sent and writes its fold model through the same atomic writer into the output
folder, which every worker must reach (a shared file system for a real cluster); the results
come back in job order, so the artifacts are the ones the local run writes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cfblend.threads import restore_environ

log = logging.getLogger(__name__)


class LocalExecutor:
    """Runs each job in this process, in order."""

    name = "local"

    def map(self, fn: Callable[..., Any], jobs: Sequence[dict[str, Any]]) -> list[Any]:
        """`[fn(**job) for job in jobs]`."""
        return [fn(**job) for job in jobs]

    def close(self) -> None:
        """Nothing to release."""


class ProcessExecutor:
    """Runs jobs side by side in `workers` fresh (spawned) processes of this machine, results in job order,
    each process limited to `threads` threads (0: no limit). For the folds of a member that fits on one core
    (`Model.single_threaded`) or runs faster so (`Model.side_by_side`), so a local run uses every core."""

    name = "processes"

    def __init__(self, workers: int, threads: int = 0):
        from concurrent.futures import ProcessPoolExecutor

        from cfblend.threads import init_worker, spawn_context

        self.workers = workers
        self._pool = ProcessPoolExecutor(workers, mp_context=spawn_context(threads), initializer=init_worker)

    def map(self, fn: Callable[..., Any], jobs: Sequence[dict[str, Any]]) -> Iterator[Any]:
        """Submit every job, then yield each result in job order as it is ready (a failed job raises its
        error here)."""
        futures = [self._pool.submit(fn, **job) for job in jobs]
        return (f.result() for f in futures)

    def close(self) -> None:
        """Stop the worker processes."""
        self._pool.shutdown(cancel_futures=True)


def _dask_spawn_environ() -> dict[str, str | None]:
    """This process's values of the variables a Dask nanny sets in *its own* environment before it spawns a
    worker (`distributed.nanny.pre-spawn-environ`: OMP_NUM_THREADS=1 and the like) and never puts back."""
    import dask

    keys = {*dask.config.get("distributed.nanny.pre-spawn-environ", {}), "PYTHONHASHSEED"}
    return {k: os.environ.get(k) for k in keys}


class DaskExecutor:
    """Runs jobs on a Dask distributed cluster (`scheduler` address) or on a local cluster of `workers`.

    A local cluster's nannies set OMP_NUM_THREADS=1 (and more) in this process's environment to pass it to
    their workers; the executor puts this process's own values back, so that what runs here after it
    (`make all` goes on to blend, report) keeps its threads."""

    name = "dask"

    def __init__(self, scheduler: str = "", workers: int = 0):
        try:
            from distributed import Client, LocalCluster
        except ImportError as e:  # pragma: no cover - distributed is in requirements.txt
            raise RuntimeError("EXECUTOR=dask needs dask's distributed (pip install -r requirements.txt)") from e
        if scheduler:
            self._cluster = None
            self.client = Client(scheduler)
        else:
            n = workers or max(1, os.cpu_count() or 1)
            self._environ = _dask_spawn_environ()
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            restore_environ(self._environ)
            self.client = Client(self._cluster)
        log.info("dask: %s, %d workers", self.client.scheduler.address,
                 len(self.client.scheduler_info().get("workers", {})))

    def map(self, fn: Callable[..., Any], jobs: Sequence[dict[str, Any]]) -> list[Any]:
        """Submit every job, then gather the results in job order (a failed job raises its error here). An
        argument every job shares (the competition, the folds) is sent to the cluster once, not per job."""
        small = str | int | float | Path | dict | list | tuple | None
        shared = {k for k, v in jobs[0].items()
                  if not isinstance(v, small) and all(job[k] is v for job in jobs)} if jobs else set()
        # hash=False: a fresh key per map. With content-hashed keys, the same object sent again by the
        # next map can meet the scheduler still forgetting the last copy, and the jobs are cancelled
        # for "lost dependencies" (dask/distributed#4612).
        sent = {k: self.client.scatter(jobs[0][k], broadcast=True, hash=False) for k in shared}
        futures = [self.client.submit(fn, pure=False, **{**job, **sent}) for job in jobs]
        try:
            return self.client.gather(futures)
        finally:
            self.client.cancel(futures + list(sent.values()))

    def close(self) -> None:
        """Disconnect, and stop the local cluster if this executor started it."""
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            restore_environ(self._environ)  # a worker restarted by its nanny sets them again


def make_executor(kind: str = "local", scheduler: str = "", workers: int = 0) -> LocalExecutor | DaskExecutor:
    """`local` or `dask` (see the module docstring)."""
    if kind in ("", "local"):
        return LocalExecutor()
    if kind == "dask":
        return DaskExecutor(scheduler, workers)
    raise ValueError(f"EXECUTOR={kind!r}: use local or dask")
