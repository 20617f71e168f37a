#!/usr/bin/env python
"""The sweeps curve of a Gibbs member (`bfm`, `bfm_op`, `bfm_opu`, `bfm_opi`) from one chain on one fold:
the held-out RMSE of each sweep's sample and of the posterior mean so far (what a fit of that many sweeps
predicts, `models/bfm_trace.py`), alpha and seconds, and the limit more sweeps tend to. The config is the one
`make all` gives the member on that dataset (its committed tuned entry), `--set` over it, one chain.

Usage:
    python bench/gibbs_trace.py --competition output/ml-1m/input/competitions/ml-1m-random \
        --folds output/ml-1m/folds.csv --model bfm [--fold 0] [--set "sweeps=300"] [--every 10] [--out FILE]

It writes `bench/results/gibbs-trace-<competition>-<model>.md` unless `--out` says otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without `make install` too

import argparse
import json
import logging

import numpy as np
from machine import machine_line  # bench/, beside this script

log = logging.getLogger("gibbs_trace")


def table(points, title: str, config: dict, fit_rmse: float) -> str:
    """The markdown: one row per traced sweep, the fitted limit, the check against the fitted model."""
    from cfblend.models.bfm_trace import mc_limit

    lines = [f"# {title}", "",
             "| sweeps | seconds | alpha | one sample's RMSE | posterior mean's RMSE (kept samples) |",
             "|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.sweep} | {p.seconds:.0f} | {p.alpha:.3f} | {p.sample_rmse:.4f} | "
                     + (f"{p.mean_rmse:.4f} ({p.kept}) |" if p.kept else "(burn-in) |"))
    later = [p for p in points if p.kept and p.sweep >= points[-1].sweep / 2]
    if len({p.kept for p in later}) >= 2:
        b, v = mc_limit(np.array([p.kept for p in later]), np.array([p.mean_rmse for p in later]) ** 2)
        limit = f"{np.sqrt(b):.4f}" if b > 0 else "none (the fit's B is not positive)"
        lines += ["", f"Fitted over the later half (MSE = B + V / kept samples): the posterior mean tends to RMSE "
                      f"{limit} (V = {v:.3f}); the chain's mean ends {points[-1].mean_rmse:.4f}."]
    lines += ["", f"The fitted model's own prediction of the held-out rows: RMSE {fit_rmse:.4f} (the last row's mean, "
                  f"by construction). Config: `{json.dumps(config)}`.",
              "", machine_line(["myfm", "numba", "numpy"]), ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """CLI of `bench/gibbs_trace.py`."""
    p = argparse.ArgumentParser(prog="bench/gibbs_trace.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--competition", required=True)
    p.add_argument("--folds", required=True)
    p.add_argument("--model", default="bfm")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--set", default="", help='config overrides, as `make train SET="..."`')
    p.add_argument("--every", type=int, default=10, help="trace every this many sweeps")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from cfblend.competition import Competition
    from cfblend.competition.folds import read_folds
    from cfblend.competition.scoring import rmse
    from cfblend.models import make_model, parse_set
    from cfblend.models.bfm import BFMModel
    from cfblend.models.bfm_trace import trace_chain
    from cfblend.runs import side_info
    from cfblend.runs.tune import with_tuned

    comp = Competition.load(args.competition)
    folds = read_folds(args.folds, comp.train)
    config = {**with_tuned(comp.meta["dataset"], parse_set(args.set, [args.model]))[args.model], "chains": 1}
    model = make_model(args.model, side_info(comp), config)
    if not isinstance(model, BFMModel):
        raise SystemExit(f"bench/gibbs_trace.py: {args.model} is not a Gibbs member (bfm, bfm_op, bfm_opu, bfm_opi)")
    fit, held_out = comp.train[folds != args.fold], comp.train[folds == args.fold]
    points = trace_chain(model, fit, held_out, args.every)
    fit_rmse = rmse(held_out["rating"], model.predict(held_out))
    for q in points:
        log.info("sweep %d: %.0f s, sample %.4f, mean %.4f", q.sweep, q.seconds, q.sample_rmse, q.mean_rmse)
    out = Path(args.out or f"bench/results/gibbs-trace-{comp.name}-{args.model}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"Gibbs sweeps curve: `{args.model}` on fold {args.fold} of `{comp.name}`, one chain"
    out.write_text(table(points, title, config, fit_rmse))
    log.info("-> %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
