"""Every member at a given scale: ratings/s per epoch, fit seconds, peak RSS and fold-0 RMSE, on one CV fold.

Each model is fitted on fold 0's training part of a competition (and scored on the held-out fold) in
a process of its own, so its peak RSS is its own, with the config `make all` gives it there (the
dataset's committed tuned config, `--set` over it). One model prints its JSON line; several write a
table, with the CPU count and package versions, to `--out` (default `bench/results/scale.md`), and their
JSON lines beside it (`scale.jsonl`); `--update` keeps the rows of the models not measured this time, so
one member can be re-measured without re-running the others.

Usage:
    python bench/scale.py --competition input/synth-25m-random --folds output/synth/folds.csv \
        --models dot,nn,autorec --set "dot.batch_size=65536 dot.trainer=fused epochs=2"
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without `make install` too

import argparse
import json
import logging
import resource
import subprocess
import time

from machine import machine_line  # bench/, beside this script

log = logging.getLogger("scale")


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def measure(competition: str, folds_file: str, model_name: str, overrides: dict, reuse: bool = True) -> dict:
    """Fit `model_name` on fold 0's training rows; its speed, memory and held-out RMSE. `reuse=False`: with
    glibc's default allocator thresholds (`runs.allocator`), to measure what that setting gains."""
    from cfblend.competition import Competition
    from cfblend.competition.folds import read_folds
    from cfblend.competition.scoring import rmse
    from cfblend.models import make_model, model_class
    from cfblend.runs import side_info
    from cfblend.runs.allocator import reuse_freed_memory

    t0 = time.perf_counter()
    comp = Competition.load(competition)
    folds = read_folds(folds_file, comp.train)
    fit_rows, val = comp.train[folds != 0], comp.train[folds == 0]
    log.info("loaded %d train rows in %.1fs; peak RSS %.2f GB", len(comp.train), time.perf_counter() - t0,
             peak_rss_gb())
    if reuse:
        reuse_freed_memory(len(comp.train), model_class(model_name).large_step_blocks)  # as `fit_fold` does
    model = make_model(model_name, side_info(comp), overrides)
    t0 = time.perf_counter()
    model.fit(fit_rows)
    fit_s = time.perf_counter() - t0
    epochs = getattr(model.config, "epochs", None) or getattr(model.config, "sweeps", None)
    per_epoch = getattr(model, "epoch_seconds_", None)  # the training loop alone, setup excluded
    epoch_s = sorted(per_epoch)[len(per_epoch) // 2] if per_epoch else (fit_s / epochs if epochs else None)
    t0 = time.perf_counter()
    predicted = model.predict(val)
    predict_s = time.perf_counter() - t0
    return {"model": model_name, "config": overrides, "fit_rows": len(fit_rows), "fit_seconds": round(fit_s, 2),
            "epoch_seconds": round(epoch_s, 2) if epoch_s else None,
            "ratings_per_s_per_epoch": round(len(fit_rows) / epoch_s) if epoch_s else None,
            "predict_seconds": round(predict_s, 2),
            "fold0_rmse": round(rmse(val["rating"], predicted), 4), "peak_rss_gb": round(peak_rss_gb(), 2)}


def table(rows: list[dict], competition: str) -> str:
    """The markdown of `bench/results/scale.md`."""
    lines = [f"# Scale: every member on fold 0 of `{competition}`", "",
             "| model | fit rows | fit s | s / epoch | ratings/s per epoch | predict s | peak RSS GB | fold-0 RMSE "
             "| config |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['fit_rows']:,} | {r['fit_seconds']} | {r['epoch_seconds'] or ''} | "
                     f"{r['ratings_per_s_per_epoch'] or ''} | {r.get('predict_seconds', '')} | {r['peak_rss_gb']} | "
                     f"{r['fold0_rmse']} | "
                     f"`{json.dumps(r['config'])}` |")
    lines += ["", machine_line(["torch", "lightgbm", "myfm", "numba", "pandas", "numpy"]) + " Each model in a process "
              "of its own; s / epoch (or per Gibbs sweep) is the training loop's median where the model times its "
              "epochs, else fit seconds / epochs; predict s: predicting fold 0's held-out rows (blank in rows "
              "measured before it was recorded).", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/scale.py")
    p.add_argument("--competition", required=True)
    p.add_argument("--folds", required=True)
    p.add_argument("--model", default="", help="one model: print its JSON line")
    p.add_argument("--models", default="", help="several, comma separated: write the table to --out")
    p.add_argument("--set", default="", help='config overrides, as `make train SET="..."`')
    p.add_argument("--config", default="", help="one model's overrides as JSON (what --models passes on)")
    p.add_argument("--out", default="bench/results/scale.md")
    p.add_argument("--update", action="store_true", help="keep --out's rows of the models not measured now")
    p.add_argument("--default-malloc", action="store_true",
                   help="one model, with glibc's default allocator thresholds (what runs.allocator's setting gains)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from cfblend.models import parse_set
    from cfblend.runs.tune import with_tuned

    # what `make all` would use: the dataset's committed tuned config, with --set over it
    dataset = json.loads((Path(args.competition) / "competition.json").read_text())["dataset"]
    if args.model:
        overrides = (json.loads(args.config) if args.config
                     else with_tuned(dataset, parse_set(args.set, [args.model]))[args.model])
        print(json.dumps(measure(args.competition, args.folds, args.model, overrides, reuse=not args.default_malloc)))
        return 0
    names = [m for m in args.models.split(",") if m]
    per_model = with_tuned(dataset, parse_set(args.set, names))  # a bad override is one line before anything runs
    raw = Path(args.out).with_suffix(".jsonl")
    kept = ([json.loads(line) for line in raw.read_text().splitlines() if line.strip()]
            if args.update and raw.exists() else [])
    rows: list[dict] = []

    def write() -> None:  # after every model: a stopped run keeps what it measured
        fresh = {r["model"]: r for r in rows}
        merged = [fresh.pop(r["model"], r) for r in kept] + list(fresh.values())  # re-measured rows keep their place
        raw.write_text("".join(json.dumps(r) + "\n" for r in merged))
        Path(args.out).write_text(table(merged, args.competition))

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        done = subprocess.run([sys.executable, __file__, "--competition", args.competition, "--folds", args.folds,
                               "--model", name, "--config", json.dumps(per_model[name])], capture_output=True,
                              text=True)
        if done.returncode != 0:
            log.error("%s failed: %s", name, done.stderr.strip().splitlines()[-1:])
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        log.info("%s", rows[-1])
        write()
    log.info("-> %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
