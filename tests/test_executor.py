"""Fold jobs on a Dask cluster: a small competition through a local cluster of two workers gives the same
leaderboard (and the same predictions) as the run in this process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cfblend.ensemble import BlendConfig, run_blend
from cfblend.runs import train_cv
from cfblend.runs.executor import LocalExecutor, make_executor

pytest.importorskip("distributed", reason="dask's distributed is in requirements.txt")

SETS = {"biases": None, "dot": {"epochs": 3, "device": "cpu"},
        "gbm": {"inner_folds": 2, "max_rounds": 30, "dot": {"epochs": 3}}}


def _run(comp, folds, paths, executor):
    scores = {m: train_cv(m, comp, folds, paths, overrides=cfg, executor=executor) for m, cfg in SETS.items()}
    blend = run_blend(comp, paths, BlendConfig(models=list(SETS)))
    board = {m: round(s["oof_rmse"], 6) for m, s in scores.items()} | {"blend": round(blend["cv_rmse_mean"], 6)}
    preds = {m: pd.read_parquet(paths.test(m))["pred"].to_numpy() for m in SETS}
    return board, preds, (paths.output / "submission.csv").read_bytes()


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_in_process_leaderboard(comp_env, tmp_path):
    from cfblend.competition.folds import ensure_folds
    from cfblend.paths import Paths

    comp, folds, paths = comp_env
    local = _run(comp, folds, paths, LocalExecutor())
    other = Paths(paths.input, tmp_path / "dask-output")
    ensure_folds(comp, other, k=3, seed=0)
    executor = make_executor("dask", workers=2)
    try:
        assert len(executor.client.scheduler_info()["workers"]) == 2
        remote = _run(comp, folds, other, executor)
    finally:
        executor.close()
    assert remote[0] == local[0]
    for m in SETS:
        np.testing.assert_allclose(remote[1][m], local[1][m], rtol=1e-6, atol=1e-6)
    assert sorted(p.name for p in other.models("dot").iterdir()) == ["fold0.pt", "fold1.pt", "fold2.pt"]


def _omp_threads() -> str | None:
    return os.environ.get("OMP_NUM_THREADS")


def test_a_local_dask_cluster_leaves_the_thread_settings_of_this_process_alone(monkeypatch):
    """Dask's nannies set OMP_NUM_THREADS=1 in the environment of the process that starts them, for their
    workers; left there, everything this process runs after the cluster (a blend, the next member) would
    start single-threaded."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    executor = make_executor("dask", workers=1)
    try:
        assert "OMP_NUM_THREADS" not in os.environ and os.environ["MKL_NUM_THREADS"] == "3"
        assert executor.map(_omp_threads, [{}]) == ["1"]  # the worker still runs on one thread
    finally:
        executor.close()
    assert "OMP_NUM_THREADS" not in os.environ and os.environ["MKL_NUM_THREADS"] == "3"


def test_an_unknown_executor_is_refused():
    with pytest.raises(ValueError, match="EXECUTOR='spark'"):
        make_executor("spark")


def _total(a, i):
    return float(a.sum()) + i


def test_the_same_shared_argument_sent_by_map_after_map_is_never_lost():
    """Every train_cv sends the same competition again; with content-hashed keys the cluster could still be
    forgetting the last copy, and the jobs were cancelled for "lost dependencies" (failed 3 runs out of 3)."""
    arr = np.arange(100_000.0)
    executor = make_executor("dask", workers=2)
    try:
        for _ in range(40):
            assert executor.map(_total, [{"a": arr, "i": i} for i in range(4)]) == [arr.sum() + i for i in range(4)]
    finally:
        executor.close()


def test_a_one_core_member_fits_its_folds_in_processes_and_gets_the_in_process_numbers(comp_env, monkeypatch, caplog):
    """bfm (myFM's sampler is single-threaded) fits its folds side by side, one process per core; the OOF and
    test predictions are the ones of the fits one after another here."""
    from cfblend.runs.cv import cross_validate

    comp, folds, _ = comp_env
    cfg = {"rank": 4, "sweeps": 20, "burn_in": 5}
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    with caplog.at_level("INFO", logger="cfblend.runs.cv"):
        side_by_side = cross_validate("bfm", comp, folds, cfg)
    assert "run 2 at a time in single-threaded processes of their own" in caplog.text
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    caplog.clear()
    with caplog.at_level("INFO", logger="cfblend.runs.cv"):
        here = cross_validate("bfm", comp, folds, cfg)
    assert "processes of their own" not in caplog.text
    np.testing.assert_array_equal(side_by_side.oof, here.oof)
    np.testing.assert_array_equal(side_by_side.test, here.test)
    assert side_by_side.fold_rmse == here.fold_rmse


def test_one_core_members_run_side_by_side_only_as_far_as_memory_holds(monkeypatch):
    """One fold process per core, but never more than the available memory holds at the model's stated
    bytes per rating: at 25M ratings, bfm's folds run one at a time on a 24 GB machine."""
    from cfblend.models.bfm import BFMModel
    from cfblend.runs.cv import fold_processes

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("cfblend.runs.cv.available_memory", lambda: 22 * 2**30)
    per = BFMModel.fit_bytes_per_rating
    assert fold_processes(per, 900_000, 5) == 2  # ml-1m
    assert fold_processes(per, 22_500_000, 5) == 1  # ML-25M scale
    assert fold_processes(per, 900_000, 1) == 1  # one job
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert fold_processes(per, 22_500_000, 5) == 1
    assert fold_processes(per, 2_250_000, 5) == 5
    assert fold_processes(0.0, 10**9, 5) == 5  # no estimate: one per core


def _threads() -> tuple[int, int]:
    import numba
    import torch

    return torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS


def test_a_process_executor_limits_its_workers_threads(monkeypatch):
    """Side-by-side fold processes are single-threaded (torch, numba, OpenMP), so two of them share two cores
    instead of each starting a thread per core; without a limit a worker keeps the libraries' defaults."""
    from cfblend.runs.executor import ProcessExecutor
    from cfblend.threads import THREAD_VARIABLES

    for var in THREAD_VARIABLES:  # the libraries' defaults, whatever the shell running the tests set
        monkeypatch.delenv(var, raising=False)

    limited = ProcessExecutor(1, threads=1)
    try:
        assert list(limited.map(_threads, [{}])) == [(1, 1)]
    finally:
        limited.close()
    if (os.cpu_count() or 1) > 1:
        free = ProcessExecutor(1)
        try:
            assert min(next(iter(free.map(_threads, [{}])))) > 1
        finally:
            free.close()


MAIN_SCRIPT_WITH_TORCH = """
import sys
sys.path.insert(0, {src!r})
import lightgbm, numba, numpy, torch  # at the top, before the worker's limit: as bench/run.py or a notebook does
from cfblend.runs.executor import ProcessExecutor


@numba.njit(parallel=True)
def total(a):
    s = 0.0
    for i in numba.prange(len(a)):
        s += a[i]
    return s


def probe():
    import lightgbm, numba, numpy, torch
    from threadpoolctl import threadpool_info

    x = numpy.random.default_rng(0).normal(size=(2000, 5))
    lightgbm.train({{"num_threads": 0, "verbosity": -1}}, lightgbm.Dataset(x, x[:, 0]), 5)  # as gbm: "num_threads": 0
    total(x[:, 0])  # numba's pool starts here (the dot trainer's blocks)
    pools = sorted({{(i["user_api"], i["num_threads"]) for i in threadpool_info()}})
    return torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS, pools


if __name__ == "__main__":
    pool = ProcessExecutor(1, threads=1)
    print(next(iter(pool.map(probe, [{{}}]))))
    pool.close()
"""


def test_a_fold_worker_is_single_threaded_even_when_the_main_script_loaded_torch_first(tmp_path):
    """A spawned worker imports its parent's main script before its initializer runs: a script that imports
    torch, numba or numpy at the top had OpenMP, numba and BLAS set up for every core before the limit, and two
    such workers on two cores thrashed (`make bench`: an nn fold took 511 s instead of 26)."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: every thread pool has one thread anyway")
    from cfblend.threads import THREAD_VARIABLES

    script = tmp_path / "main.py"
    script.write_text(MAIN_SCRIPT_WITH_TORCH.format(src=str(Path(__file__).resolve().parents[1] / "src")))
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    torch_threads, numba_threads, pools = eval(run.stdout.strip().splitlines()[-1])
    assert (torch_threads, numba_threads) == (1, 1)
    assert pools and all(n == 1 for _, n in pools), pools  # OpenMP (torch's, LightGBM's) and BLAS


def _running(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie nobody reaped has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_a_fold_worker_exits_when_the_process_that_started_it_dies():
    """A killed run leaves no fold worker training on: the worker's watchdog (`init_worker`, the pool's
    initializer) sees its parent gone and exits. Without it the worker below would sleep for a minute."""
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc to read a process's state")
    worker = "from cfblend.threads import init_worker; import time; init_worker(poll=0.05); time.sleep(60)"
    starter = ("import subprocess, sys; w = subprocess.Popen([sys.executable, '-c', sys.argv[1]]); "
               "print(w.pid, flush=True); w.wait()")
    parent = subprocess.Popen([sys.executable, "-c", starter, worker], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    time.sleep(1.0)
    assert _running(pid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)


def test_which_members_fit_their_folds_side_by_side(monkeypatch):
    """One-core members always (as far as memory holds); multi-threaded `side_by_side` ones (nn, gbm, autorec)
    on mid-sized sets only; the rest one after another in this process."""
    from cfblend.models import model_class
    from cfblend.runs.cv import SIDE_BY_SIDE_ROWS, side_by_side_processes

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("cfblend.runs.cv.available_memory", lambda: 22 * 2**30)
    lo, hi = SIDE_BY_SIDE_ROWS
    for name in ("nn", "gbm", "autorec"):
        assert side_by_side_processes(model_class(name), 900_000, 5) == 2, name
        assert side_by_side_processes(model_class(name), lo - 1, 5) == 1, name
        assert side_by_side_processes(model_class(name), hi + 1, 5) == 1, name
    assert side_by_side_processes(model_class("bfm"), lo - 1, 5) == 2
    assert side_by_side_processes(model_class("bfm"), hi + 1, 5) == 2
    for name in ("dot", "svdpp", "biases"):
        assert side_by_side_processes(model_class(name), 900_000, 5) == 1, name


def test_a_torch_member_fitted_side_by_side_gets_the_in_process_numbers(comp_env, monkeypatch, caplog):
    """nn's folds in two single-threaded processes: the predictions of the fits one after another here (to
    float32 rounding: one thread sums in another order than two)."""
    from cfblend.runs import executor
    from cfblend.runs.cv import cross_validate

    comp, folds, _ = comp_env
    cfg = {"epochs": 2, "device": "cpu"}
    here = cross_validate("nn", comp, folds, cfg)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("cfblend.runs.cv.SIDE_BY_SIDE_ROWS", (0, 10**9))
    pools = []

    class Recorded(executor.ProcessExecutor):
        def __init__(self, workers: int, threads: int = 0):
            pools.append((workers, threads))
            super().__init__(workers, threads)

    monkeypatch.setattr(executor, "ProcessExecutor", Recorded)
    with caplog.at_level("INFO", logger="cfblend.runs.cv"):
        side_by_side = cross_validate("nn", comp, folds, cfg)
    assert "run 2 at a time in single-threaded processes of their own" in caplog.text
    assert pools == [(2, 1)]
    np.testing.assert_allclose(side_by_side.oof, here.oof, atol=1e-5)
    np.testing.assert_allclose(side_by_side.test, here.test, atol=1e-5)


def test_consecutive_side_by_side_members_share_one_pool_and_get_the_one_by_one_numbers(comp_env, tmp_path,
                                                                                        monkeypatch):
    """nn, autorec and bfm queue their folds in one pool of two single-threaded processes (no core idles while
    a member's last fold runs alone), the longest folds first (bfm, autorec, nn: `fold_cost`); dot, before them,
    is trained first in this process. The artifacts are those of the members trained one by one."""
    from cfblend.competition.folds import ensure_folds
    from cfblend.paths import Paths
    from cfblend.runs import executor, train_members

    comp, folds, paths = comp_env
    sets = {"dot": {"epochs": 2}, "nn": {"epochs": 2, "device": "cpu"}, "autorec": {"epochs": 3, "device": "cpu"},
            "bfm": {"rank": 4, "sweeps": 20, "burn_in": 5}}
    alone = {m: train_cv(m, comp, folds, paths, overrides=cfg) for m, cfg in sets.items()}
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("cfblend.runs.cv.SIDE_BY_SIDE_ROWS", (0, 10**9))
    pools, queued = [], []

    class Recorded(executor.ProcessExecutor):
        def __init__(self, workers: int, threads: int = 0):
            pools.append((workers, threads))
            super().__init__(workers, threads)

        def map(self, fn, jobs):
            queued.append(jobs[0]["name"])
            return super().map(fn, jobs)

    monkeypatch.setattr(executor, "ProcessExecutor", Recorded)
    other = Paths(paths.input, tmp_path / "pooled")
    ensure_folds(comp, other, k=3, seed=0)
    pooled = train_members(list(sets), comp, folds, other, sets)
    assert pools == [(2, 1)]
    assert queued == ["bfm", "autorec", "nn"]
    assert list(pooled) == list(sets)
    for m in sets:
        assert pooled[m]["oof_rmse"] == pytest.approx(alone[m]["oof_rmse"], abs=1e-6), m
        np.testing.assert_allclose(pd.read_parquet(other.test(m))["pred"], pd.read_parquet(paths.test(m))["pred"],
                                   atol=1e-5)
    failing = Paths(paths.input, tmp_path / "failing")  # a member's error surfaces; the queued folds are cancelled
    ensure_folds(comp, failing, k=3, seed=0)
    with pytest.raises(ValueError, match="hidden"):
        train_members(["autorec", "nn"], comp, folds, failing, {"autorec": {"hidden": 0}, "nn": sets["nn"]})
    assert not list((failing.output / ".staging").glob("*"))
