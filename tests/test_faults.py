"""Artifact integrity under faults: a run killed at any artifact write, a rewritten competition, a
changed fold assignment, a retrained member. Every following command redoes the work or refuses
clearly, and no leaderboard row or submission ever mixes two runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cfblend.competition import Competition, make_competition
from cfblend.competition.folds import ensure_folds, load_folds
from cfblend.data.load import load_dataset
from cfblend.ensemble import run_blend
from cfblend.ensemble.run import check_blend, check_submission_file
from cfblend.errors import ArtifactConflict
from cfblend.paths import Paths
from cfblend.report.run import run_report
from cfblend.runs import train_cv
from cfblend.runs.artifacts import StaleArtifact, check

REPO = Path(__file__).resolve().parents[1]
FAST = {"epochs": 2}


def cli(tmp_path: Path, *args: str, fault: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "CFBLEND_FAULT": fault}
    return subprocess.run([sys.executable, str(REPO / "scripts" / "cfblend.py"), "--split", "random", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A synthetic ml-100k-random competition, its folds, biases and dot trained and blended."""
    from conftest import write_ml100k

    base = tmp_path_factory.mktemp("trained")
    spec = write_ml100k(base / "raw" / "ml-100k")
    paths = Paths(base / "input", base / "output")
    comp = Competition.load(make_competition(load_dataset("ml-100k", base / "raw" / "ml-100k", spec), "random",
                                             paths.competition("ml-100k-random"), seed=1))
    folds = ensure_folds(comp, paths, k=3, seed=0)
    train_cv("biases", comp, folds, paths)
    train_cv("dot", comp, folds, paths, overrides=FAST)
    run_blend(comp, paths)
    return base


@pytest.fixture
def folder(trained, tmp_path):
    """A copy of the trained folder for one test: (folder, Competition, Paths)."""
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    paths = Paths(tmp_path / "input", tmp_path / "output")
    return tmp_path, Competition.load(paths.competition("ml-100k-random")), paths


def manifest(paths: Paths, name: str) -> dict:
    return json.loads(paths.scores(name).read_text())


@pytest.mark.parametrize("point", ["train:staged", "commit:after_unlink", "commit:after_models",
                                   "commit:after_oof", "commit:after_test"])
def test_a_retrain_killed_at_any_write_never_leaves_a_mixed_member(folder, point):
    tmp, comp, paths = folder
    old = manifest(paths, "dot")
    killed = cli(tmp, "train", "--model", "dot", "--set", "epochs=3", "--overwrite", fault=point)
    assert killed.returncode == 137
    if point == "train:staged":  # killed before anything moved: the old run is whole and still valid
        run_blend(comp, paths)
        assert manifest(paths, "dot") == old
    else:  # the old manifest went first: dot counts as not trained, and every reader says what to run
        for read in (run_blend, check_submission_file):
            with pytest.raises(StaleArtifact, match="make train MODEL=dot"):
                read(comp, paths) if read is run_blend else read(paths, comp)
        assert not paths.scores("dot").exists()
    folds, _ = load_folds(paths, comp)
    train_cv("dot", comp, folds, paths, overrides={"epochs": 3}, overwrite=True)
    assert manifest(paths, "dot")["config"]["epochs"] == 3
    run_blend(comp, paths)
    board = run_report(comp, paths).set_index("model")
    oof = pd.read_parquet(paths.oof("dot")).set_index("id")["pred"]
    y = comp.train.set_index("id")["rating"]
    assert board.loc["dot", "oof_rmse"] == pytest.approx(float(((oof - y.loc[oof.index]) ** 2).mean() ** 0.5))


def test_a_killed_run_is_redone_by_the_next_plain_train(folder):
    tmp, _, _ = folder
    assert cli(tmp, "train", "--model", "biases", "--overwrite", fault="commit:after_oof").returncode == 137
    again = cli(tmp, "train", "--model", "biases")  # same config, no FORCE: the incomplete run is redone
    assert again.returncode == 0 and "nothing to do" not in again.stderr


@pytest.mark.parametrize("point", ["blend:after_unlink", "blend:after_submission", "blend:after_predictions"])
def test_a_blend_killed_at_any_write_is_never_scored_reported_or_submitted(folder, point):
    tmp, comp, paths = folder
    assert cli(tmp, "blend", "--method", "linear", fault=point).returncode == 137
    score = cli(tmp, "score", "--sub", "output/submission.csv")
    assert score.returncode == 1 and "make blend" in score.stderr
    assert "blend" not in set(run_report(comp, paths)["model"])
    run_blend(comp, paths)
    check_submission_file(paths, comp)


def test_a_rewritten_competition_leaves_nothing_stale_usable(folder):
    """Defect 1: `make competition SEED=7` kept the name; train said "nothing to do" and blend used the old models."""
    tmp, _, paths = folder
    raw = load_dataset("ml-100k", tmp / "raw" / "ml-100k", _spec(tmp))
    make_competition(raw, "random", paths.competition("ml-100k-random"), seed=7)
    for args in (("train", "--model", "dot", "--set", "epochs=2"), ("score", "--sub", "output/submission.csv")):
        done = cli(tmp, *args)
        assert done.returncode == 1 and "was rewritten since the folds" in done.stderr, args
    new = Competition.load(paths.competition("ml-100k-random"))
    for read in (run_blend, run_report):
        with pytest.raises(ArtifactConflict, match="was rewritten since the folds"):
            read(new, paths)
    folds = ensure_folds(new, paths, k=3, seed=0, overwrite=True)
    with pytest.raises(StaleArtifact, match="another version of the competition or other folds"):
        run_blend(new, paths)
    for m in ("biases", "dot"):
        train_cv(m, new, folds, paths, overrides=FAST if m == "dot" else None)  # stale only: redone without FORCE
    run_blend(new, paths)
    assert set(run_report(new, paths)["model"]) == {"biases", "dot", "blend"}


def _spec(tmp: Path):
    from conftest import write_ml100k

    return write_ml100k(tmp / "raw" / "ml-100k")  # rewrites the same seeded files, returns their spec


def test_new_folds_make_every_member_stale(folder):
    """Defect 2: after `make folds SEED=7 FORCE=1`, `make blend` succeeded on models of the old folds."""
    _, comp, paths = folder
    ensure_folds(comp, paths, k=3, seed=7, overwrite=True)
    with pytest.raises(StaleArtifact, match="rerun `make train MODEL=biases`"):
        run_blend(comp, paths)


def test_a_retrained_member_makes_the_blend_stale(comp_env):
    """Defect 5: after retraining dot with another config the report kept the old blend row."""
    comp, folds, paths = comp_env
    train_cv("biases", comp, folds, paths)
    train_cv("dot", comp, folds, paths, overrides=FAST)
    run_blend(comp, paths)
    train_cv("dot", comp, folds, paths, overrides={"epochs": 1}, overwrite=True)
    with pytest.raises(StaleArtifact, match="dot was retrained since"):
        run_report(comp, paths)
    with pytest.raises(StaleArtifact, match="dot was retrained since"):
        check_blend(paths, comp, load_folds(paths, comp)[1])
    run_blend(comp, paths)
    assert "blend" in set(run_report(comp, paths)["model"])


def test_another_competition_with_the_same_test_ids_is_refused(comp_env, ml100k_dir):
    """Defect 2: u1 and u2 share test ids; a u2 submission was made of u1 models."""
    comp, folds, paths = comp_env
    train_cv("biases", comp, folds, paths)
    ds = load_dataset("ml-100k", *ml100k_dir)
    other = Competition.load(make_competition(ds, "random", paths.competition("syn-other"), seed=2, test_frac=0.2))
    assert list(other.test["id"]) == list(comp.test["id"])
    refusals = []
    for force in (False, True):  # the folder's stamp names syn-random; after FORCE folds, biases is of syn-random
        if force:
            ensure_folds(other, paths, k=3, seed=0, overwrite=True)
        with pytest.raises(ArtifactConflict) as e:
            run_blend(other, paths)
        refusals.append(str(e.value))
    assert "holds artifacts of syn-random" in refusals[0]
    assert "another version of the competition or other folds" in refusals[1]


def test_a_replaced_prediction_file_is_refused(comp_env):
    comp, folds, paths = comp_env
    train_cv("biases", comp, folds, paths)
    t = pd.read_parquet(paths.test("biases"))
    t["pred"] = 3.0
    t.to_parquet(paths.test("biases"))
    with pytest.raises(StaleArtifact, match=r"test/biases\.parquet is missing or is not the file its run wrote"):
        check(paths, "biases", comp.fingerprint, load_folds(paths, comp)[1])
    train_cv("biases", comp, folds, paths)  # same config: the damaged run is redone, not skipped
    check(paths, "biases", comp.fingerprint, load_folds(paths, comp)[1])


def test_a_bad_config_never_replaces_good_artifacts(comp_env):
    comp, folds, paths = comp_env
    good = train_cv("dot", comp, folds, paths, overrides=FAST)
    for bad in ({"lr": -1.0}, {"y_range": [5, 0]}, {"factors": -5}, {"batch_size": 0}):
        with pytest.raises(ValueError, match=r"out of range|lo < hi"):
            train_cv("dot", comp, folds, paths, overrides={**FAST, **bad}, overwrite=True)
    assert check(paths, "dot", comp.fingerprint, load_folds(paths, comp)[1])["fingerprint"] == good["fingerprint"]
