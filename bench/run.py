"""`make bench`: our models against the peers a user would otherwise pick (Surprise), on identical data.

Protocols: ml-100k's official 5-fold (u1..u5, the mean RMSE papers report) and ml-1m random
90/10 (seeded). For each split:

- every member of `--models` (default `full`, the leaderboard setting; `fast`: what a plain
  `make all` trains on ml-100k) and the `blend` run through the competition pipeline exactly as `make all`
  does (5-fold CV inside train, or `--k`, test prediction = mean of the fold models, blend on the OOF
  predictions), scored on the split's test rows;
- for the timing comparison, `dot` (its numba trainer on the CPU), `dot_torch` (the same model
  with the torch trainer) and `nn` are also fitted once on the split's whole train set,
  like Surprise's `SVD` (defaults: 100 factors, 20 epochs), `SVDpp` and `KNNBaseline`
  (item-based, pearson_baseline); fit seconds are the median of `repeats` fits.

Results go to `bench/results/<dataset>.md` with the CPU count and package versions. The machine
is noisy: ratios measured in one run are the figures to quote.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without `make install` too

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from machine import machine_line  # bench/, beside this script

from cfblend.competition import Competition, competition_name, make_competition
from cfblend.competition.scoring import rmse
from cfblend.data import get_spec, load_dataset
from cfblend.data.sources import ensure_dataset
from cfblend.models import expand_models, make_model
from cfblend.paths import Paths
from cfblend.pipeline import run_pipeline
from cfblend.report.leaderboard import to_markdown
from cfblend.runs import side_info
from cfblend.runs.tune import tuned_overrides

log = logging.getLogger(__name__)

PROTOCOLS = {"ml-100k": ["u1", "u2", "u3", "u4", "u5"], "ml-1m": ["random"]}
PEERS = ("SVD", "SVDpp", "KNNBaseline")


def _timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def surprise_fit_predict(name: str, train: pd.DataFrame, test: pd.DataFrame, scale, seed: int, repeats: int):
    """Fit a Surprise algorithm on `train` (median time of `repeats`) and predict `test`."""
    from surprise import SVD, Dataset, KNNBaseline, Reader, SVDpp

    data = Dataset.load_from_df(train[["user_id", "item_id", "rating"]], Reader(rating_scale=tuple(scale)))
    trainset = data.build_full_trainset()
    factories = {"SVD": lambda: SVD(random_state=seed), "SVDpp": lambda: SVDpp(random_state=seed),
                 "KNNBaseline": lambda: KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": False},
                                                    verbose=False)}

    def fit():
        algo = factories[name]()
        algo.fit(trainset)
        return algo

    algo, fit_s = _timed(fit, repeats)
    pred = np.array([algo.predict(u, i).est for u, i in zip(test["user_id"], test["item_id"], strict=True)])
    return pred, fit_s


def ours_fit_predict(name: str, comp: Competition, test: pd.DataFrame, repeats: int):
    """Fit one of our models on the whole train set (median time), with the config `make all` gives it on this
    dataset (its committed tuned entry); its predictions of `test`, fit seconds and epochs."""
    overrides = {**tuned_overrides(comp.meta["dataset"], name), "device": "cpu"}
    model, fit_s = _timed(lambda: make_model(name, side_info(comp), overrides).fit(comp.train), repeats)
    return model.predict(test), fit_s, model.config.epochs


def bench_split(dataset: str, split: str, work: Path, peers: tuple[str, ...], repeats: int, seed: int,
                pipeline: bool, k: int, models: str) -> list[dict]:
    """All rows of the table for one split (`pipeline=False`: the one-fit comparisons only; `k`: the
    pipeline's folds; `models`: its members, names or list names as `MODELS` takes them)."""
    paths = Paths(work / "input", work / "output" / f"{dataset}-{split}")
    spec = get_spec(dataset)
    raw = ensure_dataset(spec, paths.input)
    name = competition_name(dataset, split)
    comp = Competition.load(make_competition(load_dataset(dataset, raw), split, paths.competition(name), seed=seed))
    y = pd.read_csv(paths.solution(name)).set_index("id").loc[comp.test["id"], "rating"].to_numpy()
    rows = []
    t0 = time.perf_counter()
    members = expand_models(models, dataset)
    if pipeline:
        run_pipeline(dataset, split, paths, models=members, k=k, seed=seed, html=False)
    pipeline_s = time.perf_counter() - t0
    for m in (*[m for m in members if m != "global_mean"], "blend") if pipeline else ():
        pred = pd.read_parquet(paths.test(m)).set_index("id").loc[comp.test["id"], "pred"].to_numpy()
        rows.append({"split": split, "model": f"{m} ({k}-fold CV, as make all)", "rmse": rmse(y, pred),
                     "fit_s": np.nan, "ratings_per_s_per_epoch": np.nan})
    if pipeline:
        rows.append({"split": split, "model": "pipeline: all models + blend", "rmse": np.nan, "fit_s": pipeline_s,
                     "ratings_per_s_per_epoch": np.nan})
    for m in ("dot", "dot_torch", "nn"):
        pred, fit_s, epochs = ours_fit_predict(m, comp, comp.test, repeats)
        rows.append({"split": split, "model": f"{m} (one fit on train)", "rmse": rmse(y, pred), "fit_s": fit_s,
                     "ratings_per_s_per_epoch": len(comp.train) * epochs / fit_s})
    for p in peers:
        pred, fit_s = surprise_fit_predict(p, comp.train, comp.test, comp.rating_scale, seed, repeats)
        rows.append({"split": split, "model": f"Surprise {p}", "rmse": rmse(y, np.clip(pred, *comp.rating_scale)),
                     "fit_s": fit_s, "ratings_per_s_per_epoch": np.nan})
    for r in rows:
        log.info("%s %-40s rmse %.4f fit %.2fs", split, r["model"], r["rmse"], r["fit_s"])
    return rows


def summarise(rows: list[dict]) -> pd.DataFrame:
    """Mean RMSE over splits, median fit time, and the time ratio of our dot fit to Surprise SVD."""
    df = pd.DataFrame(rows)
    out = df.groupby("model", sort=False).agg(rmse=("rmse", "mean"), rmse_std=("rmse", "std"),
                                               fit_s=("fit_s", "median"),
                                               ratings_per_s_per_epoch=("ratings_per_s_per_epoch", "median"))
    svd = df[df["model"] == "Surprise SVD"].set_index("split")["fit_s"]
    out["time_vs_SVD"] = np.nan
    for ours in ("dot (one fit on train)", "dot_torch (one fit on train)"):
        dot = df[df["model"] == ours].set_index("split")["fit_s"]
        if len(svd) and len(dot):
            out.loc[ours, "time_vs_SVD"] = float((dot / svd).median())
    return out.reset_index()


def results_name(dataset: str, k: int) -> str:
    """`<dataset>.md` for the default 5 folds, `<dataset>-k<k>.md` otherwise (both settings' tables kept)."""
    return f"{dataset}.md" if k == 5 else f"{dataset}-k{k}.md"


def run_bench(datasets: list[str], work: Path, results: Path, peers: tuple[str, ...], repeats: int, seed: int,
              splits: list[str] | None, pipeline: bool, k: int, models: str) -> dict[str, pd.DataFrame]:
    """Run the protocols and write `results/<dataset>.md` (`<dataset>-k<k>.md` when `k` is not 5)."""
    tables = {}
    for ds in datasets:
        rows = []
        for split in splits or PROTOCOLS[ds]:
            rows += bench_split(ds, split, work, peers, repeats, seed, pipeline, k, models)
        table = summarise(rows)
        per_split = pd.DataFrame(rows).pivot_table(index="model", columns="split", values="rmse", sort=False)
        note = "" if pipeline else f"The {k}-fold pipeline rows were skipped in this run (--no-pipeline).\n"
        header = (note + machine_line(["torch", "lightgbm", "pandas", "numpy", "scikit-learn", "scikit-surprise"])
                  + "\n\n"
                  f"Protocol: {', '.join(splits or PROTOCOLS[ds])}; pipeline members: MODELS={models}; "
                  "rmse = mean over splits of the test RMSE; "
                  f"fit_s = median over splits of the median of {repeats} fits on the split's train set; "
                  f"time_vs_SVD = our fit time / Surprise SVD's, median over splits, same run.\n")
        md = to_markdown(table, f"Benchmark: {ds}") + "\n" + header + "\n" + to_markdown(
            per_split.reset_index(), "Test RMSE per split")
        results.mkdir(parents=True, exist_ok=True)
        (results / results_name(ds, k)).write_text(md)
        log.info("%s:\n%s", ds, table.to_string(index=False, float_format="%.4f"))
        tables[ds] = table
    return tables


def main(argv: list[str]) -> int:
    """CLI of `bench/run.py`."""
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="ml-100k,ml-1m")
    p.add_argument("--splits", default="", help="override the protocol's splits (e.g. u1 for a quick run)")
    p.add_argument("--peers", default=",".join(PEERS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--k", type=int, default=5, help="the pipeline's folds (10: the heavier setting)")
    p.add_argument("--work", default="", help="folder for data and artifacts (default: a temp folder)")
    p.add_argument("--input", default="input", help="where the datasets are (or are fetched to)")
    p.add_argument("--results", default="bench/results")
    p.add_argument("--models", default="", help="the pipeline's members, as MODELS takes them (default: full)")
    p.add_argument("--no-pipeline", action="store_true", help="skip the pipeline; one-fit comparisons only")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        (work / "input").mkdir(parents=True, exist_ok=True)
        for ds in args.datasets.split(","):  # reuse the datasets already fetched to input/
            src = Path(args.input) / ds
            if src.exists() and not (work / "input" / ds).exists():
                (work / "input" / ds).symlink_to(src.resolve())
        run_bench(args.datasets.split(","), work, Path(args.results),
                  tuple(x for x in args.peers.split(",") if x), args.repeats, args.seed,
                  [s for s in args.splits.split(",") if s] or None, pipeline=not args.no_pipeline, k=args.k,
                  models=args.models or "full")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
