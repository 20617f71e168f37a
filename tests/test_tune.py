"""`make tune`: an Optuna study per competition and model, resumable, shareable between processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="optuna not installed (pip install -r requirements.txt)")

from cfblend.competition import make_competition  # noqa: E402
from cfblend.data.load import load_dataset  # noqa: E402
from cfblend.runs.tune import SEARCH_SPACES, save_best, tune, tuned_overrides, with_tuned  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_a_study_is_resumed_and_its_best_is_the_lowest_oof_rmse(comp_env):
    comp, folds, paths = comp_env
    first = tune("biases", comp, folds, paths, trials=3, n_folds=2)
    again = tune("biases", comp, folds, paths, trials=2, n_folds=2)  # the same SQLite study, five trials now
    assert len(again.trials) == 5 and first.study_name == again.study_name == "syn-random-biases"
    assert again.best_value == min(t.value for t in again.trials)
    assert (paths.output / "tune" / "biases.db").is_file()


def test_two_processes_share_one_study(ml100k_dir, tmp_path):
    raw, spec = ml100k_dir
    make_competition(load_dataset("ml-100k", raw, spec), "random", tmp_path / "input" / "ml-100k-random", seed=1)
    run = [sys.executable, str(REPO / "scripts" / "cfblend.py"), "--split", "random"]
    assert subprocess.run([*run, "folds"], cwd=tmp_path, capture_output=True).returncode == 0
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    workers = [subprocess.Popen([*run, "tune", "--model", "biases", "--trials", "3", "--storage", storage],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="ml-100k-random-biases", storage=storage)
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 6


def test_the_objective_scores_a_members_bags_as_training_does(comp_env):
    """With `bags` = 2 the objective is the RMSE of the two seeded models' mean on each held-out fold, what
    `make train` puts in the OOF file; not the first model's alone."""
    from cfblend.competition.scoring import rmse
    from cfblend.models import make_model
    from cfblend.runs import side_info
    from cfblend.runs.tune import oof_rmse

    comp, folds, _ = comp_env
    config = {"epochs": 2, "factors": 8}
    fit, val = comp.train[folds != 0], comp.train[folds == 0]
    one, two = (make_model("dot", side_info(comp), {**config, "seed": 42 + b}).fit(fit).predict(val) for b in (0, 1))
    bagged = oof_rmse("dot", comp, folds, {**config, "bags": 2}, n_folds=1)
    single = oof_rmse("dot", comp, folds, config, n_folds=1)
    assert bagged == pytest.approx(rmse(val["rating"], (one + two) / 2), abs=1e-9)
    assert single == pytest.approx(rmse(val["rating"], one), abs=1e-9)
    assert abs(bagged - single) > 1e-6


def test_search_spaces_give_valid_configs():
    from cfblend.models import model_config

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for name, space in SEARCH_SPACES.items():
        for _ in range(5):
            model_config(name, space(study.ask()))  # typed and range-checked


def test_saved_best_configs_are_what_training_uses(tmp_path):
    file = tmp_path / "tuned.yaml"
    file.write_text("# header kept\n{}\n")
    save_best("ml-100k", "bfm", {"rank": 13}, file)
    assert file.read_text().startswith("# header kept\n") and "rank: 13" in file.read_text()
    assert tuned_overrides("no-such-dataset", "bfm") == {}
    assert with_tuned("no-such-dataset", {"bfm": {"rank": 3}}) == {"bfm": {"rank": 3}}  # SET wins


def test_a_dataset_can_share_a_named_setting(tmp_path):
    """`ml-25m: large-data` gives ml-25m the large-data entry's configs; saving a tuned config for it copies
    the shared entry first, so the other datasets that share it keep it unchanged."""
    file = tmp_path / "tuned.yaml"
    file.write_text("large-data:\n  bfm:\n    rank: 8\n  gbm:\n    max_rows: 100\nml-25m: large-data\n"
                    "ml-32m: large-data\n")
    assert tuned_overrides("ml-25m", "bfm", file) == {"rank": 8}
    assert tuned_overrides("ml-32m", "gbm", file) == {"max_rows": 100}
    save_best("ml-25m", "bfm", {"rank": 12}, file)
    assert tuned_overrides("ml-25m", "bfm", file) == {"rank": 12}
    assert tuned_overrides("ml-25m", "gbm", file) == {"max_rows": 100}
    assert tuned_overrides("ml-32m", "bfm", file) == {"rank": 8}


def test_a_variant_member_takes_its_base_members_tuned_config_until_it_has_its_own(tmp_path):
    file = tmp_path / "tuned.yaml"
    file.write_text("ml-100k:\n  bfm_op:\n    rank: 22\n  dot:\n    wd: 0.05\n")
    assert tuned_overrides("ml-100k", "dot_no_heavy", file) == {"wd": 0.05}  # the report compares it with dot
    assert tuned_overrides("ml-100k", "dot_torch", file) == {"wd": 0.05}  # and the benchmark
    assert tuned_overrides("ml-100k", "bfm_opu", file) == {"rank": 22}  # TUNED_FROM: bfm_op's
    assert tuned_overrides("ml-100k", "bfm_opi", file) == {"rank": 22}
    assert tuned_overrides("ml-100k", "bfm", file) == {}  # not a variant of bfm_op
    save_best("ml-100k", "bfm_opu", {"rank": 9}, file)
    assert tuned_overrides("ml-100k", "bfm_opu", file) == {"rank": 9}
    assert tuned_overrides("ml-100k", "bfm_opi", file) == {"rank": 22}


def test_every_committed_tuned_config_is_valid():
    """A typo or an out-of-range value in tuned.yaml fails here, not at the start of someone's run."""
    from importlib import resources

    import yaml

    from cfblend.models import model_config

    data = yaml.safe_load(resources.files("cfblend.models").joinpath("tuned.yaml").read_text())
    assert {"ml-100k", "ml-1m", "ml-25m", "large-data"} <= set(data)
    for dataset, entry in data.items():
        if isinstance(entry, str):
            assert isinstance(data.get(entry), dict), f"{dataset}: names {entry!r}, which is not an entry"
            continue
        for model in entry:
            model_config(model, tuned_overrides(dataset, model))
