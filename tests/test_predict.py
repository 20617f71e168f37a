"""Using what was trained: `make predict` reproduces the test predictions for the test pairs, applies the
cold-start policies to new ids and names bad rows; `make embeddings` writes the factors by raw id."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfblend.ensemble import BlendConfig, run_blend
from cfblend.ensemble.predict import export_embeddings, predict_pairs, read_pairs
from cfblend.runs import train_cv

SETS = {"dot": {"epochs": 3, "device": "cpu"}, "nn": {"epochs": 2, "batch_size": 128, "device": "cpu"},
        "biases": None}


@pytest.fixture
def trained(comp_env):
    comp, folds, paths = comp_env
    for name, cfg in SETS.items():
        train_cv(name, comp, folds, paths, overrides=cfg)
    run_blend(comp, paths, BlendConfig(models=list(SETS)))
    return comp, paths


def test_predict_gives_the_test_predictions_for_the_test_pairs(trained, tmp_path):
    comp, paths = trained
    rows = predict_pairs(paths, comp, comp.test[["user_id", "item_id", "timestamp"]])
    for m in SETS:
        want = pd.read_parquet(paths.test(m))["pred"].to_numpy()
        np.testing.assert_allclose(rows[m].to_numpy(), want, rtol=1e-6, atol=1e-6)
    sub = pd.read_csv(paths.output / "submission.csv").set_index("id").loc[comp.test["id"], "rating"]
    np.testing.assert_allclose(rows["blend"].to_numpy(), sub.to_numpy(), atol=1e-6)


def test_new_ids_are_flagged_and_predicted_by_the_cold_start_policy(trained, tmp_path):
    comp, paths = trained
    u, i = int(comp.train["user_id"].iloc[0]), int(comp.train["item_id"].iloc[0])
    file = tmp_path / "pairs.csv"
    pd.DataFrame({"user_id": [u, 10**6, u, 10**6], "item_id": [i, i, 10**6, 10**6]}).to_csv(file, index=False)
    rows = predict_pairs(paths, comp, read_pairs(file))
    assert rows["unseen_user"].tolist() == [False, True, False, True]
    assert rows["unseen_item"].tolist() == [False, False, True, True]
    # "unseen" means unseen in training: an item rated in train but never in test is a seen item
    only_train = sorted(set(comp.train["item_id"]) - set(comp.test["item_id"]))
    assert only_train
    seen = predict_pairs(paths, comp, pd.DataFrame({"user_id": [u], "item_id": [only_train[0]]}))
    assert not seen["unseen_item"].iloc[0]
    assert (rows["timestamp"] == comp.train["timestamp"].max()).all()  # no timestamp column: the latest train one
    assert rows[[*SETS, "blend"]].notna().all().all() and rows["blend"].between(1, 5).all()
    np.testing.assert_allclose(rows["biases"].iloc[3], comp.train["rating"].mean(), atol=0.05)  # both unseen: ~mean


def test_a_made_up_time_gives_no_sitting(trained, monkeypatch):
    """Pairs without timestamps get the latest train time for the members, but no sittings by the clock in the
    blend's meta-features: the rows reach `meta_features` without their made-up time."""
    import cfblend.ensemble.predict as predict_module

    comp, paths = trained
    clocks, real = [], predict_module.meta_features
    monkeypatch.setattr(predict_module, "meta_features",
                        lambda rows, *a, **k: clocks.append("timestamp" in rows) or real(rows, *a, **k))
    pairs = comp.test[["user_id", "item_id", "timestamp"]].head(5)
    without, given = predict_pairs(paths, comp, pairs.drop(columns="timestamp")), predict_pairs(paths, comp, pairs)
    assert clocks == [False, True]
    assert (without["timestamp"] == comp.train["timestamp"].max()).all() and len(given) == 5


@pytest.mark.parametrize("text, message", [
    ("user,item_id\n1,2\n", "missing column(s) user_id"),
    ("user_id,item_id\n1,2\n3,x\n", "row 3 (line 3): item_id='x' is not an integer"),
])
def test_bad_pairs_files_name_the_problem(tmp_path, text, message):
    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_pairs(tmp_path / "p.csv")


def test_embeddings_are_written_by_raw_id_and_fold(trained):
    comp, paths = trained
    written = {p.name for p in export_embeddings(paths, comp)}
    assert written == {"dot_users.parquet", "dot_items.parquet", "nn_users.parquet", "nn_items.parquet"}
    items = pd.read_parquet(paths.output / "embeddings" / "dot_items.parquet")
    assert sorted(items["fold"].unique()) == [0, 1, 2]
    assert {"item_id", "bias", "f0"} <= set(items.columns) and len([c for c in items if c[1:].isdigit()]) == 20
    from cfblend.models.dot import DotModel
    from cfblend.runs import side_info

    m = DotModel.load(paths.models("dot") / "fold1.pt", side_info(comp))
    one = items[items["fold"] == 1].iloc[0]
    f, b = m.embeddings("item", [one["item_id"]])
    np.testing.assert_allclose(one[[f"f{j}" for j in range(20)]].to_numpy(float), f[0], rtol=1e-6)
    assert one["bias"] == pytest.approx(b[0])
    assert set(items.loc[items["fold"] == 1, "item_id"]) == set(m.items_.ids)
    users = pd.read_parquet(paths.output / "embeddings" / "nn_users.parquet")
    assert {"user_id", "bias", "e0", "fm0"} <= set(users.columns)


@pytest.mark.parametrize("method", ["stack", "resid"])
def test_a_stack_blend_is_reproduced_from_its_saved_trees(trained, method):
    """The `stack` (or `resid`) blender's trees are saved with the blend and rebuilt by `make predict`."""
    comp, paths = trained
    run_blend(comp, paths, BlendConfig(models=list(SETS), method=method))
    rows = predict_pairs(paths, comp, comp.test[["user_id", "item_id", "timestamp"]])
    sub = pd.read_csv(paths.output / "submission.csv").set_index("id").loc[comp.test["id"], "rating"]
    np.testing.assert_allclose(rows["blend"].to_numpy(), sub.to_numpy(), atol=1e-6)


def test_a_blend_fitted_on_other_meta_features_is_refused(trained):
    """A `stack` blend saved by a version with other meta-features (the three of before) cannot be applied to
    this version's: `make predict` says to rerun `make blend` instead of predicting with shifted columns."""
    from cfblend.io import read_json, write_json
    from cfblend.runs.artifacts import StaleArtifact

    comp, paths = trained
    run_blend(comp, paths, BlendConfig(models=list(SETS), method="stack"))
    scores = read_json(paths.scores("blend"))
    write_json({k: v for k, v in scores.items() if k != "meta_features"}, paths.scores("blend"))
    with pytest.raises(StaleArtifact, match=r"fitted on the meta-features \['intercept', 'log1p_user_count', "
                                            r"'log1p_item_count'\].*rerun `make blend`"):
        predict_pairs(paths, comp, comp.test[["user_id", "item_id", "timestamp"]].head(5))
