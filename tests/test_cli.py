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
    assert "output/competition.json missing: run `make folds` first" in done.stderr


def test_unknown_model_and_bad_override_are_refused(ml100k_dir, tmp_path):
    folder, spec = ml100k_dir
    make_competition(load_dataset("ml-100k", folder, spec), "random", tmp_path / "input" / "ml-100k-random")
    assert run_cli("--split", "random", "folds", cwd=tmp_path).returncode == 0
    done = run_cli("--split", "random", "train", "--model", "svd", cwd=tmp_path)
    assert done.returncode == 1 and "unknown model 'svd'" in done.stderr
    done = run_cli("--split", "random", "train", "--model", "dot", "--set", "factor=3", cwd=tmp_path)
    assert done.returncode == 1 and "unknown key 'factor'" in done.stderr and "factors" in done.stderr


def test_all_passes_set_to_every_model_and_trains_the_analysis_member(tmp_path):
    """`make all SET=...` reaches the models (it used to be dropped), per model or for all."""
    import json

    from conftest import real_data

    src = real_data("ml-100k")
    done = run_cli("all", "--models", "global_mean,dot", "--data-dir", str(src),
                   "--set", "epochs=1 dot.factors=4 y_range=[0, 5.5]", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    dot = json.loads((tmp_path / "output" / "scores" / "dot.json").read_text())["config"]
    light = json.loads((tmp_path / "output" / "scores" / "dot_no_heavy.json").read_text())["config"]
    assert (dot["epochs"], dot["factors"], dot["y_range"]) == (1, 4, [0.0, 5.5])
    assert (light["epochs"], light["factors"], light["drop_heavy_raters"]) == (1, 20, 0.01)
    board = pd.read_csv(tmp_path / "output" / "leaderboard.csv")
    assert set(board["model"]) == {"global_mean", "dot", "blend"}  # the analysis member is not ranked
    page = (tmp_path / "output" / "report.html").read_text()
    assert "Heavy raters and item bias" in page and "Learning curves" in page
    curves = json.loads((tmp_path / "output" / "scores" / "dot.json").read_text())["learning_curves"]
    assert [c["fold"] for c in curves] == [0, 1, 2, 3, 4] and all(len(c["valid_rmse"]) == 1 for c in curves)
    logs = list((tmp_path / "output" / "logs").glob("all-*.log"))  # the run's log, beside its artifacts
    assert len(logs) == 1 and "dot fold 4: rmse" in logs[0].read_text() and "cfblend all" in logs[0].read_text()


def test_models_lists_every_registered_model_with_its_config(tmp_path):
    from cfblend.models import REGISTRY

    done = run_cli("models", cwd=tmp_path)
    assert done.returncode == 0
    for name in REGISTRY:
        assert f"\n{name}  (" in "\n" + done.stdout
    assert "    factors: int = 20  (range >=1)" in done.stdout
    assert "    y_range: tuple[float, float] = (0.0, 5.5)" in done.stdout


def test_the_venv_bootstrap_refuses_a_missing_or_old_python_in_one_line(tmp_path):
    script = REPO / "scripts" / "ensure_venv.sh"
    done = subprocess.run(["bash", str(script)], env={"PATH": "/usr/bin:/bin", "BASE_PYTHON": "no-such-python3",
                                                      "VENV": str(tmp_path / "venv")},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.strip() == (
        "cfblend: no 'no-such-python3' found: install Python 3.11 or newer (or run make "
        "BASE_PYTHON=/path/to/python3.11)")
    old = tmp_path / "python3"
    old.write_text("#!/bin/sh\ncase \"$1\" in --version) echo 'Python 3.9.18';; *) exit 1;; esac\n")
    old.chmod(0o755)
    done = subprocess.run(["bash", str(script)], env={"PATH": "/usr/bin:/bin", "BASE_PYTHON": str(old),
                                                      "VENV": str(tmp_path / "venv")},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Python 3.9.18 is too old: Python 3.11 or newer is needed" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_data_and_competition_commands_install_verify_and_publish(tmp_path):
    from conftest import real_data

    src = real_data("ml-100k")
    done = run_cli("data", "--data-dir", str(src), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "served by DATA_DIR" in done.stderr and (tmp_path / "input" / "ml-100k" / "SOURCE.json").is_file()
    again = run_cli("data", cwd=tmp_path)
    assert again.returncode == 0 and "using verified files already in" in again.stderr
    done = run_cli("competition", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    comp = tmp_path / "input" / "ml-100k-u1"
    assert {p.name for p in comp.iterdir()} >= {"train.csv", "test.csv", "sample_submission.csv", "users.csv",
                                                "items.csv", "competition.json", "solution"}
    assert len(pd.read_csv(comp / "test.csv")) == 20_000


def test_the_whole_pipeline_writes_the_same_submission_twice(tmp_path):
    """Determinism end to end: two `all` runs into two folders give byte-identical submissions."""
    from conftest import real_data

    src = real_data("ml-100k")
    subs = []
    for out in ("out_a", "out_b"):
        done = run_cli("--output", out, "all", "--models", "biases,dot,gbm", "--data-dir", str(src),
                       "--set", "epochs=2 gbm.inner_folds=2 gbm.max_rounds=50", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        subs.append((tmp_path / out / "submission.csv").read_bytes())
    assert subs[0] == subs[1]
