"""The cross-validation runner: aligned OOF, artifacts, refusal to overwrite silently, the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfblend.competition.scoring import rmse
from cfblend.errors import ArtifactConflict
from cfblend.io import read_json
from cfblend.report.leaderboard import COLUMNS
from cfblend.report.run import run_report
from cfblend.runs import train_cv
from cfblend.runs.runner import fold_mean_rmse, warn_if_worse_than_mean

FAST = {"epochs": 3, "batch_size": 256, "device": "cpu"}


def test_oof_is_aligned_with_train_ids_and_scores_are_consistent(comp_env):
    comp, folds, paths = comp_env
    scores = train_cv("dot", comp, folds, paths, overrides=FAST)
    oof = pd.read_parquet(paths.oof("dot"))
    assert oof["id"].tolist() == comp.train["id"].tolist() and oof["fold"].tolist() == folds.tolist()
    assert not oof["pred"].isna().any()
    assert scores["oof_rmse"] == pytest.approx(rmse(comp.train["rating"], oof["pred"]))
    for k in range(3):
        m = folds == k
        assert scores["fold_rmse"][k] == pytest.approx(rmse(comp.train["rating"][m], oof["pred"][m]))
    test = pd.read_parquet(paths.test("dot"))
    assert test["id"].tolist() == comp.test["id"].tolist()
    assert sorted(p.name for p in paths.models("dot").iterdir()) == ["fold0.pt", "fold1.pt", "fold2.pt"]
    assert read_json(paths.scores("dot"))["config"]["epochs"] == 3


def test_same_config_and_seed_give_identical_oof(comp_env):
    comp, folds, paths = comp_env
    train_cv("dot", comp, folds, paths, overrides=FAST)
    first = pd.read_parquet(paths.oof("dot"))
    train_cv("dot", comp, folds, paths, overrides=FAST, overwrite=True)
    pd.testing.assert_frame_equal(first, pd.read_parquet(paths.oof("dot")))


def test_an_already_trained_model_is_not_retrained(comp_env, caplog):
    caplog.set_level("INFO")
    comp, folds, paths = comp_env
    first = train_cv("dot", comp, folds, paths, overrides=FAST)
    stamps = {p: p.stat().st_mtime_ns for p in (paths.oof("dot"), paths.test("dot"), paths.scores("dot"))}
    again = train_cv("dot", comp, folds, paths, overrides=FAST)
    assert again["fingerprint"] == first["fingerprint"] and "nothing to do" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_other_config_under_same_name_is_refused_unless_overwrite(comp_env):
    comp, folds, paths = comp_env
    train_cv("dot", comp, folds, paths, overrides=FAST)
    before = paths.oof("dot").read_bytes()
    with pytest.raises(ArtifactConflict, match="another config"):
        train_cv("dot", comp, folds, paths, overrides={**FAST, "epochs": 4})
    assert paths.oof("dot").read_bytes() == before
    assert train_cv("dot", comp, folds, paths, overrides={**FAST, "epochs": 4}, overwrite=True)["config"]["epochs"] == 4


def test_cold_start_rows_are_counted(comp_env):
    comp, folds, paths = comp_env
    comp.test.loc[comp.test.index[:3], "item_id"] = 10**6  # three test rows with an unseen item
    comp.test.loc[comp.test.index[2:5], "user_id"] = 10**6  # three with an unseen user, one overlapping
    s = train_cv("global_mean", comp, folds, paths)["cold_start"]["test"]
    assert (s["unseen_item"], s["unseen_user"], s["unseen_any"]) == (3, 3, 5)


def test_report_reads_what_was_trained_and_never_trains(comp_env, caplog):
    comp, folds, paths = comp_env
    train_cv("dot", comp, folds, paths, overrides=FAST)

    def artifacts():
        return {p: p.stat().st_mtime_ns for d in ("oof", "test", "models", "scores", "cache")
                for p in (paths.output / d).rglob("*")}

    before = artifacts()
    board = run_report(comp, paths)
    assert set(board["model"]) == {"dot"}
    assert artifacts() == before  # nothing trained, nothing rewritten
    assert "not trained, so not in the report: global_mean, biases" in caplog.text


def test_report_has_the_fixed_columns_and_baselines(comp_env):
    comp, folds, paths = comp_env
    for name in ("global_mean", "biases"):
        train_cv(name, comp, folds, paths)
    train_cv("dot", comp, folds, paths, overrides=FAST)
    board = run_report(comp, paths)
    assert list(board.columns) == COLUMNS
    assert set(board["model"]) == {"dot", "global_mean", "biases"}
    assert board["private_rmse"].is_monotonic_increasing
    on_disk = pd.read_csv(paths.output / "leaderboard.csv")
    assert list(on_disk.columns) == COLUMNS
    assert (paths.output / "leaderboard.md").read_text().count("\n|") == len(board) + 2  # header, rule, rows
    gm = board.set_index("model").loc["global_mean"]
    sol = pd.read_csv(paths.solution(comp.name))
    assert gm["test_rmse"] == pytest.approx(rmse(sol["rating"], np.full(len(sol), comp.train["rating"].mean())),
                                            abs=0.02)


def test_output_of_another_competition_is_refused_by_train_blend_and_report(comp_env):
    from cfblend.ensemble import run_blend

    comp, folds, paths = comp_env
    train_cv("biases", comp, folds, paths)
    comp.name = "other-comp"
    with pytest.raises(ArtifactConflict, match="holds artifacts of"):
        train_cv("dot", comp, folds, paths, overrides=FAST)
    with pytest.raises(ArtifactConflict, match="holds artifacts of"):
        run_blend(comp, paths)
    with pytest.raises(ArtifactConflict, match="holds artifacts of"):
        run_report(comp, paths)
    assert not (paths.output / "submission.csv").exists()


def test_a_shared_feature_module_is_part_of_its_members_code_fingerprint(monkeypatch):
    """Artifacts go stale when the code that made them changes, shared feature modules included: an edit of
    `models/timeline.py` changes `gbm`'s and `bfm`'s code fingerprint, not `svdpp`'s, which does not use it."""
    from cfblend.models import model_class
    from cfblend.runs import artifacts

    names = ("gbm", "bfm", "svdpp")
    artifacts.code_fingerprint.cache_clear()
    before = {n: artifacts.code_fingerprint(model_class(n)) for n in names}
    real = artifacts.inspect.getsource
    monkeypatch.setattr(artifacts.inspect, "getsource", lambda obj: real(obj) + (
        "# edited" if getattr(obj, "__name__", "") == "cfblend.models.timeline" else ""))
    artifacts.code_fingerprint.cache_clear()
    try:
        after = {n: artifacts.code_fingerprint(model_class(n)) for n in names}
    finally:
        artifacts.code_fingerprint.cache_clear()
    assert after["gbm"] != before["gbm"] and after["bfm"] != before["bfm"]
    assert after["svdpp"] == before["svdpp"]
    monkeypatch.setattr(artifacts.inspect, "getsource", lambda obj: real(obj) + (
        "# edited" if getattr(obj, "__name__", "") == "cfblend.competition.folds" else ""))
    try:  # gbm (and bfm) draw their inner folds with competition.folds.inner_folds
        folds_edited = {n: artifacts.code_fingerprint(model_class(n)) for n in names}
    finally:
        artifacts.code_fingerprint.cache_clear()
    assert folds_edited["gbm"] != before["gbm"] and folds_edited["bfm"] != before["bfm"]
    assert folds_edited["svdpp"] == before["svdpp"]


def test_bags_average_models_seeded_one_after_another_and_predict_reloads_them_all(comp_env):
    """`bags=2`: each fold's predictions are the mean of the fits seeded 42 and 43 (what `bags=1` gives with
    either seed), every bag is saved, and `make predict` (`member_models`) averages all of them as the test
    predictions did."""
    from cfblend.ensemble.predict import member_models

    comp, folds, paths = comp_env
    single = {}
    for seed in (42, 43):
        train_cv("dot", comp, folds, paths, overrides={**FAST, "seed": seed}, overwrite=True)
        single[seed] = (pd.read_parquet(paths.oof("dot"))["pred"].to_numpy(),
                        pd.read_parquet(paths.test("dot"))["pred"].to_numpy())
    assert not np.allclose(single[42][0], single[43][0])  # the seeds differ, so the mean is not either one
    scores = train_cv("dot", comp, folds, paths, overrides={**FAST, "bags": 2}, overwrite=True)
    oof, test = (pd.read_parquet(p)["pred"].to_numpy() for p in (paths.oof("dot"), paths.test("dot")))
    np.testing.assert_allclose(oof, (single[42][0] + single[43][0]) / 2, atol=1e-6)
    np.testing.assert_allclose(test, (single[42][1] + single[43][1]) / 2, atol=1e-6)
    assert scores["oof_rmse"] == pytest.approx(rmse(comp.train["rating"], oof))
    assert sorted(p.name for p in paths.models("dot").iterdir()) == [
        "fold0-bag1.pt", "fold0.pt", "fold1-bag1.pt", "fold1.pt", "fold2-bag1.pt", "fold2.pt"]
    models = member_models(paths, comp, "dot")
    assert [m.config.seed for m in models] == [42, 43] * 3
    again = np.mean([m.predict(comp.test) for m in models], axis=0)
    np.testing.assert_allclose(again, test, atol=1e-5)


def test_a_bagged_refit_predicts_the_test_rows_with_the_mean_of_its_bags(comp_env):
    from cfblend.ensemble.predict import member_models

    comp, folds, paths = comp_env
    train_cv("dot", comp, folds, paths, overrides={**FAST, "bags": 2, "refit": True})
    assert {"refit.pt", "refit-bag1.pt"} <= {p.name for p in paths.models("dot").iterdir()}
    models = member_models(paths, comp, "dot")
    assert [m.config.seed for m in models] == [42, 43]
    test = pd.read_parquet(paths.test("dot"))["pred"].to_numpy()
    np.testing.assert_allclose(np.mean([m.predict(comp.test) for m in models], axis=0), test, atol=1e-5)


def test_a_member_worse_than_each_folds_training_mean_is_warned_about(comp_env, caplog):
    """`global_mean` scores exactly the fold-mean baseline and is not warned about; a member squeezed into a
    band of ratings no one gives (`y_range` 4.9-5) is worse than it, and `train_cv` says so."""
    caplog.set_level("INFO")
    comp, folds, paths = comp_env
    y = comp.train["rating"].to_numpy()
    by_hand = np.concatenate([y[folds == k] - y[folds != k].mean() for k in range(3)])
    assert fold_mean_rmse(y, folds) == pytest.approx(np.sqrt(np.mean(by_hand ** 2)))
    assert train_cv("global_mean", comp, folds, paths)["oof_rmse"] == pytest.approx(fold_mean_rmse(y, folds))
    assert "worse than predicting" not in caplog.text
    bad = train_cv("dot", comp, folds, paths, overrides={**FAST, "y_range": [4.9, 5.0]})
    assert bad["oof_rmse"] > fold_mean_rmse(y, folds)
    assert "dot: OOF rmse" in caplog.text and "worse than predicting each fold's training mean" in caplog.text
    assert not warn_if_worse_than_mean("dot", fold_mean_rmse(y, folds) - 0.01, y, folds)
