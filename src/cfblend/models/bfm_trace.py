"""The sweeps curve of a Bayesian FM member from one Gibbs chain (`bench/gibbs_trace.py` writes it).

After every sweep: the held-out RMSE of that sweep's sample and of the posterior mean so far. The first n
sweeps of a seeded chain are the chain a fit with `sweeps=n` runs (the same draws), so the running mean at n
is exactly what that fit predicts, and one fit gives the RMSE of every sweep count. With it, the noise
precision `alpha` (Gaussian likelihood; 1 for the ordered probit) and the seconds so far.

How far the posterior mean still is from where more sweeps would take it: over the later half of the
chain, the held-out MSE of the mean of n kept samples is fitted as B + V/n (`mc_limit`), Monte Carlo noise
that falls as 1/n around a limit B. On ml-1m's fold 0 (`bfm`, rank 24) one sample scores about 0.88 while
the mean of 195 scores 0.818: most of what sweeps buy is averaging.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cfblend.models.bfm import BFMModel


@dataclass
class SweepPoint:
    """One traced sweep (1-based `sweep`: the chain's length so far)."""

    sweep: int
    seconds: float
    alpha: float
    sample_rmse: float  # this sweep's sample alone
    mean_rmse: float  # the mean of the kept samples so far (nan inside the burn-in): a fit of `sweep` sweeps
    kept: int  # how many samples that mean is over


def trace_chain(model: BFMModel, fit: pd.DataFrame, held_out: pd.DataFrame, every: int = 10) -> list[SweepPoint]:
    """Fit `model` (one chain: set `chains=1`) on `fit`, tracing it on `held_out` every `every` sweeps and at
    the last. Predictions are clipped to the rating scale, as `predict` clips them."""
    if model.config.chains != 1:
        raise ValueError(f"trace_chain: chains={model.config.chains}; a trace follows one chain (chains=1)")
    y = held_out["rating"].to_numpy(np.float64)
    low, high = model.side.rating_scale
    total = np.zeros(len(held_out))
    state: dict = {"kept": 0, "predict": None}
    points: list[SweepPoint] = []
    start = time.perf_counter()

    def on_sweep(chain: int, sweep: int, sample, hyper) -> None:
        if state["predict"] is None:  # the model's vocabularies exist once fitting has begun
            state["predict"] = model.sample_predictor(held_out)
        p = state["predict"](sample)
        if sweep >= model.config.burn_in:  # the samples a fit of sweep + 1 sweeps keeps
            total[:] += p
            state["kept"] += 1
        n = sweep + 1
        if n % every == 0 or n == model.config.sweeps:
            kept = state["kept"]
            mean = np.sqrt(np.mean((np.clip(total / kept, low, high) - y) ** 2)) if kept else float("nan")
            points.append(SweepPoint(n, time.perf_counter() - start, float(hyper.alpha),
                                     float(np.sqrt(np.mean((np.clip(p, low, high) - y) ** 2))), float(mean), kept))

    model.fit(fit, on_sweep=on_sweep)
    return points


def mc_limit(kept: np.ndarray, mse: np.ndarray) -> tuple[float, float]:
    """Least-squares fit of mse = B + V / kept: (B, V), B the MSE the posterior mean tends to with more samples
    and V the Monte Carlo variance one sample adds (autocorrelation included)."""
    kept, mse = np.asarray(kept, np.float64), np.asarray(mse, np.float64)
    if len(kept) < 2 or np.ptp(kept) == 0:
        raise ValueError("mc_limit: needs two or more different sample counts")
    A = np.column_stack([np.ones(len(kept)), 1.0 / kept])
    (b, v), *_ = np.linalg.lstsq(A, mse, rcond=None)
    return float(b), float(v)


__all__ = ["SweepPoint", "mc_limit", "trace_chain"]
