"""The Kaggle workflow: the generated kernel runs against a simulated /kaggle layout; the CLI
wrappers stop with a clear message, not a traceback, when there are no credentials."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cfblend.kaggle.kernel import PLACEHOLDER_USER, build_kernel

REPO = Path(__file__).resolve().parents[1]
SMOKE = ("autorec.epochs=3 dot.epochs=2 dot_no_heavy.epochs=2 nn.epochs=1 gbm.inner_folds=2 gbm.max_rounds=30 "
         "gbm.dot={epochs: 2}")


def test_kernel_metadata(tmp_path, monkeypatch):
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # not signed in
    out = build_kernel(tmp_path / "kernel")
    meta = json.loads((out / "kernel-metadata.json").read_text())
    assert meta["id"] == f"{PLACEHOLDER_USER}/cfblend-movielens-rating-prediction"
    assert meta["enable_internet"] is False and meta["kernel_type"] == "script"
    assert meta["dataset_sources"] == ["prajitdatta/movielens-100k-dataset"]
    assert (out / meta["code_file"]).is_file()


KAGGLE_PYTHON = REPO / ".venv-kaggle" / "bin" / "python"
KAGGLE_VERSIONS = {"pandas": "2.3.3", "lightgbm": "4.6.0", "numba": "0.65.1", "scikit-learn": "1.6.1",
                   "myfm": "absent"}


@pytest.mark.slow
@pytest.mark.parametrize("python", ["local pins", "Kaggle image versions"])
def test_generated_kernel_runs_end_to_end_on_a_simulated_kaggle_layout(tmp_path, python):
    from conftest import real_data

    if python == "local pins":
        exe = sys.executable
    elif KAGGLE_PYTHON.exists():
        exe = str(KAGGLE_PYTHON)
    else:
        pytest.skip("no .venv-kaggle: `make kaggle-env` builds it (requirements-kaggle.txt, Kaggle's image versions)")
    src = real_data("ml-100k")
    kaggle_input = tmp_path / "kaggle" / "input" / "movielens-100k-dataset" / "ml-100k"
    kaggle_input.mkdir(parents=True)
    for f in ("u.data", "u.item", "u.user", "u.genre", "u.occupation"):
        shutil.copy(src / f, kaggle_input / f)
    script = build_kernel(tmp_path / "kernel") / "cfblend_kernel.py"
    working = tmp_path / "kaggle" / "working"
    working.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"CFBLEND_KAGGLE_INPUT": str(tmp_path / "kaggle" / "input"), "CFBLEND_KAGGLE_WORKING": str(working),
            "CFBLEND_KERNEL_MODELS": "global_mean,biases,dot,svdpp,nn,gbm,autorec", "CFBLEND_KERNEL_SET": SMOKE}
    # Run from an empty folder so that only the embedded package can be imported.
    done = subprocess.run([exe, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "served by Kaggle input" in done.stderr
    imported = next(line for line in done.stdout.splitlines() if "imported from" in line)
    assert imported.endswith("cfblend.zip/cfblend/__init__.py"), imported  # the embedded package, not the installed one
    assert f"submission written to {working / 'submission.csv'}" in done.stdout
    if python != "local pins":  # really Kaggle's versions
        packages = next(line for line in done.stdout.splitlines() if line.startswith("packages: "))
        assert all(f"{n} {v}" in packages for n, v in KAGGLE_VERSIONS.items()), packages
    sub = pd.read_csv(working / "submission.csv")
    sample = pd.read_csv(working / "input" / "ml-100k-u1" / "sample_submission.csv")
    assert sub["id"].tolist() == sample["id"].tolist() and sub["rating"].between(1, 5).all()
    board = pd.read_csv(working / "leaderboard.csv")
    assert {"blend", "dot", "svdpp", "nn", "gbm"} <= set(board["model"])
    assert (working / "report.html").is_file()


@pytest.mark.parametrize("args", [["kernel-push"], ["submit", "--comp", "some-competition"]])
def test_kaggle_commands_without_credentials_fail_cleanly(args, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE")}
    env |= {"KAGGLE_CONFIG_DIR": str(tmp_path / "nowhere"), "HOME": str(tmp_path)}
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "kernel-metadata.json").write_text("{}")
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "submission.csv").write_text("id,rating\n")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "cfblend.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "no Kaggle credentials" in done.stderr and "Traceback" not in done.stderr
