"""The command line: known failures end in one clear line (exit 1), never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from cfblend.competition import make_competition
from cfblend.data.load import load_dataset

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "cfblend.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_score_refuses_a_malformed_submission_cleanly(ml100k_dir, tmp_path):
    folder, spec = ml100k_dir
    comp = make_competition(load_dataset("ml-100k", folder, spec), "random", tmp_path / "input" / "ml-100k-random")
    sample = pd.read_csv(comp / "sample_submission.csv")
    sample.iloc[:-1].to_csv(tmp_path / "short.csv", index=False)
    done = run_cli("--split", "random", "score", "--sub", "short.csv", cwd=tmp_path)
    assert done.returncode == 1 and "1 test ids missing" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("--split", "random", "score", "--sub", str(comp / "sample_submission.csv"), cwd=tmp_path)
    assert done.returncode == 0 and "Public RMSE" in done.stdout and "Private RMSE" in done.stdout


def test_train_before_folds_says_what_to_run(ml100k_dir, tmp_path):
    folder, spec = ml100k_dir
    make_competition(load_dataset("ml-100k", folder, spec), "random", tmp_path / "input" / "ml-100k-random")
    done = run_cli("--split", "random", "train", "--model", "dot", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "folds" in done.stderr


def test_unknown_model_and_bad_override_are_refused(ml100k_dir, tmp_path):
    folder, spec = ml100k_dir
    make_competition(load_dataset("ml-100k", folder, spec), "random", tmp_path / "input" / "ml-100k-random")
    assert run_cli("--split", "random", "folds", cwd=tmp_path).returncode == 0
    done = run_cli("--split", "random", "train", "--model", "svd", cwd=tmp_path)
    assert done.returncode == 1 and "unknown model 'svd'" in done.stderr
    done = run_cli("--split", "random", "train", "--model", "dot", "--set", "factor=3", cwd=tmp_path)
    assert done.returncode == 1 and "unknown keys ['factor']" in done.stderr
