"""Command line: `python -m cfblend <step>`; the Makefile and scripts/ call this."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cfblend.competition import Competition, competition_name, make_competition
from cfblend.competition.folds import ensure_folds, load_folds
from cfblend.data import get_spec, load_dataset
from cfblend.data.sources import ensure_dataset
from cfblend.errors import ArtifactConflict, DataError, KaggleError, SubmissionError
from cfblend.paths import Paths

log = logging.getLogger("cfblend")


def _models(text: str, dataset: str, default: tuple[str, ...]) -> list[str]:
    """Model names from a comma- or space-separated list, list names (`fast`, `full`) expanded for
    `dataset`; `default` when empty."""
    from cfblend.models import expand_models

    return expand_models(text, dataset) or list(default)


def _split(args) -> str:
    return args.split or get_spec(args.dataset).default_split


def _paths(args) -> Paths:
    return Paths(Path(args.input), Path(args.output))


def _competition(args) -> Competition:
    return Competition.load(_paths(args).competition(competition_name(args.dataset, _split(args))))


def cmd_data(args) -> None:
    spec = get_spec(args.dataset)
    folder = ensure_dataset(spec, args.input, data_dir=args.data_dir or None)
    ds = load_dataset(args.dataset, folder)
    log.info("%s: %d ratings, %d users, %d items", spec.name, len(ds.ratings), ds.ratings["user_id"].nunique(),
             ds.ratings["item_id"].nunique())


def cmd_synth(args) -> None:
    from dataclasses import replace

    from cfblend.data.synth import SynthSpec, write_synth

    base = SynthSpec(seed=args.seed)
    spec = replace(base, n_users=round(base.n_users * args.scale), n_items=round(base.n_items * args.scale),
                   n_ratings=round(base.n_ratings * args.scale)) if args.scale != 1.0 else base
    write_synth(_paths(args).raw("synth-25m"), spec)


def cmd_competition(args) -> None:
    paths = _paths(args)
    folder = paths.raw(args.dataset)
    if not (folder / get_spec(args.dataset).ratings_file).exists():
        folder = ensure_dataset(get_spec(args.dataset), args.input)
    ds = load_dataset(args.dataset, folder)
    make_competition(ds, _split(args), paths.competition(competition_name(args.dataset, _split(args))),
                     seed=args.seed, test_frac=args.test_frac)


def cmd_folds(args) -> None:
    comp = _competition(args)
    ensure_folds(comp, _paths(args), k=args.k, seed=args.seed, overwrite=args.overwrite)


def cmd_train(args) -> None:
    from cfblend.models import ANALYSIS_MODELS, available, default_models, model_class, parse_set
    from cfblend.runs import train_members
    from cfblend.runs.tune import with_tuned

    names = _models(args.model, args.dataset, default_models(args.dataset))
    for n in names:
        if not available(n):
            raise ValueError(f"{n} needs {model_class(n).requires}, which is not installed: `make install`")
    if args.with_analysis:
        names += [m for m in ANALYSIS_MODELS if m not in names]
    overrides = parse_set(args.set, names, {"seed": args.seed, **({"device": args.device} if args.device else {})})
    overrides = with_tuned(args.dataset, overrides)
    comp = _competition(args)
    paths = _paths(args)
    folds, _ = load_folds(paths, comp)
    executor = _executor(args)
    try:
        train_members(names, comp, folds, paths, {n: overrides[n] or None for n in names}, args.overwrite, executor)
    finally:
        executor.close()


def _executor(args):
    from cfblend.runs.executor import make_executor

    return make_executor(args.executor, args.scheduler, args.workers)


def cmd_tune(args) -> None:
    from cfblend.models import parse_set
    from cfblend.runs.tune import save_best, tune, with_tuned

    comp = _competition(args)
    paths = _paths(args)
    folds, _ = load_folds(paths, comp)
    base = with_tuned(args.dataset, parse_set(args.set, [args.model]))[args.model]
    study = tune(args.model, comp, folds, paths, args.trials, n_folds=args.folds, storage=args.storage, base=base,
                 seed=args.seed)
    print(f"best OOF RMSE {study.best_value:.5f} ({len(study.trials)} trials): {study.best_params}")
    if args.save:
        log.info("best config of %s for %s -> %s", args.model, args.dataset,
                 save_best(args.dataset, args.model, study.best_params))


def cmd_score(args) -> None:
    from cfblend.competition.scoring import score_file
    from cfblend.io import read_json

    paths = _paths(args)
    if Path(args.sub).resolve() == (paths.output / "submission.csv").resolve():
        from cfblend.ensemble.run import check_submission_file

        check_submission_file(paths, _competition(args))  # our own submission: only if its blend is current
    name = competition_name(args.dataset, _split(args))
    meta = paths.competition(name) / "competition.json"
    scale = tuple(read_json(meta)["rating_scale"]) if meta.exists() else None
    s = score_file(args.sub, paths.solution(name), scale)
    print(f"Public RMSE  {s['public_rmse']:.5f}\nPrivate RMSE {s['private_rmse']:.5f}")


def cmd_blend(args) -> None:
    from cfblend.ensemble import BlendConfig, run_blend

    models = _models(args.models, args.dataset, ())
    run_blend(_competition(args), _paths(args), BlendConfig(models=models, method=args.method))


def cmd_report(args) -> None:
    from cfblend.report.run import run_report

    run_report(_competition(args), _paths(args))


def cmd_all(args) -> None:
    from cfblend.models import default_models
    from cfblend.pipeline import run_pipeline

    executor = _executor(args)
    try:
        models = _models(args.models, args.dataset, default_models(args.dataset))
        run_pipeline(args.dataset, _split(args), _paths(args), models=models, k=args.k, seed=args.seed,
                     overrides=args.set, blend_method=args.method, data_dir=args.data_dir or None,
                     device=args.device, overwrite=args.overwrite, executor=executor)
    finally:
        executor.close()


def cmd_predict(args) -> None:
    from cfblend.ensemble.predict import predict_pairs, read_pairs
    from cfblend.io import write_csv

    paths = _paths(args)
    rows = predict_pairs(paths, _competition(args), read_pairs(args.pairs))
    out = Path(args.out or paths.output / "predictions.csv")
    write_csv(rows, out)
    shown = rows.head(20).round(4).to_string(index=False)
    print(f"{shown}\n... {len(rows)} rows -> {out}" if len(rows) > 20 else f"{shown}\n-> {out}")


def cmd_embeddings(args) -> None:
    from cfblend.ensemble.predict import export_embeddings

    if not export_embeddings(_paths(args), _competition(args)):
        raise FileNotFoundError(f"no trained dot or nn in {args.output}: run `make train MODEL=dot` first")


def cmd_similar(args) -> None:
    from cfblend.competition.folds import load_folds
    from cfblend.report.similar import EMBEDDING_MEMBERS, find_item, side_by_side, similar_table
    from cfblend.runs import artifacts

    comp = _competition(args)
    paths = _paths(args)
    _, folds_sha = load_folds(paths, comp)
    members = [m for m in EMBEDDING_MEMBERS
               if artifacts.valid(paths, m, comp.fingerprint, folds_sha, loads_models=True)]
    if not members:
        raise FileNotFoundError(f"no trained {' or '.join(EMBEDDING_MEMBERS)} in {paths.output}: "
                                "run `make train MODEL=dot` first")
    item = find_item(comp.items, args.item)
    n = int((comp.train["item_id"] == item).sum())
    title = comp.items.set_index("item_id")["title"].get(item, item)
    if n < args.min_count:
        log.warning("%s has only %d train ratings: its factors are noisy", title, n)
    table = similar_table(paths, comp, [item], members, k=args.k, min_count=args.min_count)
    print(f"Nearest movies to {title} (id {item}, {n} train ratings) by cosine similarity of item factors; "
          f"candidates with at least {args.min_count} ratings. Cells: title (ratings, similarity).")
    print(side_by_side(table).to_string(index=False))


def cmd_models(args) -> None:
    import typing
    from dataclasses import fields

    from cfblend.models import ANALYSIS_MODELS, FAST_MODELS, FULL_MODELS, REGISTRY, available

    for name, (cls, cfg) in REGISTRY.items():
        role = ("fast and full lists" if name in FAST_MODELS else "full list" if name in FULL_MODELS
                else "analysis" if name in ANALYSIS_MODELS else "optional")
        extra = "" if available(name) else f"; needs {cls.requires}, not installed"
        print(f"{name}  ({cls.__name__}, {role}{extra})")
        hints = typing.get_type_hints(type(cfg))
        for f in fields(cfg):
            h = hints[f.name]
            kind = str(h).replace("typing.", "") if typing.get_origin(h) else h.__name__
            rule = type(cfg).limits.get(f.name)
            print(f"    {f.name}: {kind} = {getattr(cfg, f.name)!r}" + (f"  (range {rule})" if rule else ""))


def cmd_clean(args) -> None:
    from cfblend.paths import remove_output

    remove_output(args.output)
    log.info("removed %s", args.output)


def cmd_kernel(args) -> None:
    from cfblend.kaggle.kernel import build_kernel

    build_kernel(args.out, dataset=args.dataset, split=_split(args), kernel_id=args.kernel_id or None)


def cmd_kernel_push(args) -> None:
    from cfblend.kaggle.client import push_kernel

    push_kernel(args.out)


def cmd_submit(args) -> None:
    from cfblend.io import read_json
    from cfblend.kaggle.client import client, submit

    client()  # no credentials: say so before anything else
    paths = _paths(args)
    message = "cfblend"
    file = Path(args.file or paths.output / "submission.csv")
    if file.resolve() == (paths.output / "submission.csv").resolve() and file.exists():
        from cfblend.ensemble.run import check_submission_file

        check_submission_file(paths, _competition(args))
        b = read_json(paths.scores("blend"))
        message = f"blend of {', '.join(b['weights'])} ({b['method']}), CV RMSE {b['cv_rmse_mean']:.4f}"
    submit(args.comp, file, message)


# Commands whose log is kept beside the artifacts they write (output/logs/<command>-<time>.log).
LOGGED = {"folds", "train", "tune", "score", "blend", "report", "all", "predict", "embeddings"}


def log_to_file(output: Path, cmd: str, argv: list[str]) -> Path:
    """Also write this command's log (INFO and up, with dates) to `output/logs/<cmd>-<UTC time>.log`."""
    import platform
    import time

    from cfblend import __version__

    folder = output / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = folder / f"{cmd}-{stamp}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    log.info("cfblend %s, Python %s on %s: cfblend %s", __version__, platform.python_version(), platform.node(),
             " ".join(argv))
    log.info("log file: %s", path)
    return path


def _executor_args(s) -> None:
    s.add_argument("--executor", default="local", choices=["local", "dask"], help="where the fold jobs run")
    s.add_argument("--scheduler", default="", help="a Dask scheduler address (default: a local cluster)")
    s.add_argument("--workers", type=int, default=0, help="worker processes of a local Dask cluster (default: CPUs)")


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, run one step, turn known failures into one clear line."""
    p = argparse.ArgumentParser(prog="cfblend", description=__doc__)
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--split", default="", help="default: u1 for ml-100k, random otherwise")
    p.add_argument("--input", default="input")
    p.add_argument("--output", default="output")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("data", help="obtain and verify a dataset into input/")
    s.add_argument("--data-dir", default="")
    s = sub.add_parser("synth", help="write a synthetic ML-25M-shaped dataset to input/synth-25m")
    s.add_argument("--scale", type=float, default=1.0, help="fraction of the ML-25M size")
    s = sub.add_parser("competition", help="write train/test/sample submission/solution")
    s.add_argument("--test-frac", type=float, default=0.1)
    s = sub.add_parser("folds", help="K-fold assignment of the train rows")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--overwrite", action="store_true")
    s = sub.add_parser("train", help="cross-validated training of registered models")
    s.add_argument("--model", default="", help="registered names separated by commas (default: the default members)")
    s.add_argument("--with-analysis", action="store_true", help="also the analysis members the report reads")
    s.add_argument("--set", default="", help='config overrides: "key=value model.key=value ..."')
    s.add_argument("--device", default="", help="auto, cpu or cuda")
    s.add_argument("--overwrite", action="store_true")
    _executor_args(s)
    s = sub.add_parser("tune", help="an Optuna study of a model's config (objective: OOF RMSE)")
    s.add_argument("--model", required=True)
    s.add_argument("--trials", type=int, default=20)
    s.add_argument("--folds", type=int, default=1, help="how many of the folds the objective uses")
    s.add_argument("--storage", default="", help="an Optuna storage URL (default: SQLite under OUT/tune/)")
    s.add_argument("--set", default="", help="fixed config overrides for every trial")
    s.add_argument("--save", action="store_true", help="write the best config to src/cfblend/models/tuned.yaml")
    s = sub.add_parser("score", help="Public/Private RMSE of a submission file")
    s.add_argument("--sub", required=True)
    s = sub.add_parser("blend", help="blend OOF predictions into submission.csv")
    s.add_argument("--models", default="", help="comma separated; default: every trained model")
    s.add_argument("--method", default="auto", choices=["auto", "linear", "hill", "fwls", "stack", "resid"])
    sub.add_parser("report", help="leaderboard of every trained model")
    s = sub.add_parser("all", help="every step in one process (what the Kaggle kernel runs)")
    s.add_argument("--models", default="")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--set", default="", help='config overrides: "key=value model.key=value ..."')
    s.add_argument("--method", default="auto", choices=["auto", "linear", "hill", "fwls", "stack", "resid"])
    s.add_argument("--data-dir", default="")
    s.add_argument("--device", default="", help="auto, cpu or cuda")
    _executor_args(s)
    s.add_argument("--overwrite", action="store_true", help="replace folds and models made with another config")
    sub.add_parser("models", help="every registered model with its config keys, types, defaults and ranges")
    s = sub.add_parser("similar", help="the movies nearest to a movie, by the trained models' item factors")
    s.add_argument("--item", required=True, help="a title (case-insensitive, or part of one) or an item id")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--min-count", type=int, default=20, help="candidates need at least this many train ratings")
    sub.add_parser("clean", help="delete the artifact folder (--output), refusing one that holds anything else")
    s = sub.add_parser("predict", help="each member's and the blend's prediction for the pairs of a CSV")
    s.add_argument("--pairs", required=True, help="CSV with user_id, item_id (and optionally timestamp)")
    s.add_argument("--out", default="", help="default: <output>/predictions.csv")
    sub.add_parser("embeddings", help="export dot's and nn's learned user and item embeddings as parquet")
    s = sub.add_parser("kernel", help="build the Kaggle kernel folder")
    s.add_argument("--out", default="kernel")
    s.add_argument("--kernel-id", default="", help="owner/slug (default: the id already there, else the signed-in "
                   "user's)")
    s = sub.add_parser("kernel-push", help="kaggle kernels push")
    s.add_argument("--out", default="kernel")
    s = sub.add_parser("submit", help="kaggle competitions submit")
    s.add_argument("--comp", default="")
    s.add_argument("--file", default="")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.cmd in LOGGED:
        log_to_file(Path(args.output), args.cmd, argv if argv is not None else sys.argv[1:])
    try:
        {"data": cmd_data, "competition": cmd_competition, "folds": cmd_folds, "train": cmd_train,
         "score": cmd_score, "blend": cmd_blend, "report": cmd_report, "all": cmd_all, "kernel": cmd_kernel,
         "kernel-push": cmd_kernel_push, "submit": cmd_submit, "synth": cmd_synth, "clean": cmd_clean,
         "tune": cmd_tune, "similar": cmd_similar,
         "models": cmd_models, "predict": cmd_predict, "embeddings": cmd_embeddings}[args.cmd](args)
    except (DataError, SubmissionError, ArtifactConflict, KaggleError, FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
