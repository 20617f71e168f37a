"""Splits (the official ml-100k ones reproduced exactly), the competition files, the folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfblend.competition import Competition, make_competition
from cfblend.competition.folds import cold_user_share, make_folds, read_folds
from cfblend.competition.splits import OFFICIAL_100K, split_mask
from cfblend.data.load import load_dataset
from cfblend.errors import ArtifactConflict


@pytest.mark.parametrize("split", OFFICIAL_100K)
def test_official_ml100k_splits_are_reproduced_exactly(split, tmp_path):
    from conftest import real_data

    folder = real_data("ml-100k", needs=f"{split}.test")
    ds = load_dataset("ml-100k", folder)
    comp = Competition.load(make_competition(ds, split, tmp_path / f"ml-100k-{split}"))
    cols = ["user_id", "item_id", "rating", "timestamp"]
    official_test = pd.read_csv(folder / f"{split}.test", sep="\t", names=cols)
    official_base = pd.read_csv(folder / f"{split}.base", sep="\t", names=cols)
    sol = pd.read_csv(tmp_path / f"ml-100k-{split}" / "solution" / "solution.csv")
    ours_test = comp.test.merge(sol[["id", "rating"]], on="id")[cols]
    # Same rows in the same (user, item) order as the official files.
    np.testing.assert_array_equal(ours_test.to_numpy(), official_test.to_numpy())
    np.testing.assert_array_equal(comp.train[cols].to_numpy(), official_base.to_numpy())


def test_ua_takes_each_users_first_ten_in_file_order():
    r = pd.DataFrame({"user_id": [1] * 12 + [2] * 3, "item_id": range(15), "rating": 3.0, "timestamp": 0})
    ua, ub = split_mask(r, "ua"), split_mask(r, "ub")
    assert ua.tolist() == [True] * 10 + [False] * 2 + [True] * 3
    assert ub.tolist() == [False] * 10 + [True] * 2 + [False] * 3


def test_random_and_time_splits():
    rng = np.random.default_rng(0)
    r = pd.DataFrame({"user_id": rng.integers(0, 50, 1000), "item_id": np.arange(1000), "rating": 3.0,
                      "timestamp": rng.permutation(1000)})
    m = split_mask(r, "random", seed=1, test_frac=0.2)
    assert m.sum() == 200 and np.array_equal(m, split_mask(r, "random", seed=1, test_frac=0.2))
    assert not np.array_equal(m, split_mask(r, "random", seed=2, test_frac=0.2))
    t = split_mask(r, "time", test_frac=0.1)
    assert r["timestamp"][t].min() > r["timestamp"][~t].max()
    with pytest.raises(ValueError, match="unknown split"):
        split_mask(r, "u9")


def test_competition_files(ml100k_dir, tmp_path):
    folder, spec = ml100k_dir
    ds = load_dataset("ml-100k", folder, spec)
    out = make_competition(ds, "random", tmp_path / "comp", seed=3, test_frac=0.2)
    train, test = pd.read_csv(out / "train.csv"), pd.read_csv(out / "test.csv")
    sample, sol = pd.read_csv(out / "sample_submission.csv"), pd.read_csv(out / "solution" / "solution.csv")
    assert list(train.columns) == ["id", "user_id", "item_id", "timestamp", "rating"]
    assert list(test.columns) == ["id", "user_id", "item_id", "timestamp"]
    assert list(sample.columns) == ["id", "rating"] and sample["id"].tolist() == test["id"].tolist()
    assert list(sol.columns) == ["id", "rating", "Usage"] and sol["id"].tolist() == test["id"].tolist()
    assert not (out / "solution.csv").exists()  # kept apart from what competitors read
    assert len(set(train["id"]) | set(test["id"])) == len(train) + len(test) == len(ds.ratings)
    assert abs((sol["Usage"] == "Public").mean() - 0.3) < 0.01
    again = make_competition(ds, "random", tmp_path / "comp2", seed=3, test_frac=0.2)
    assert (again / "solution" / "solution.csv").read_text() == (out / "solution" / "solution.csv").read_text()


def test_folds_cover_each_train_row_once_and_are_seeded():
    train = pd.DataFrame({"id": np.arange(100, 1103)})
    f = make_folds(train, k=5, seed=7)
    assert sorted(f["id"]) == list(train["id"]) and f["id"].is_unique
    assert np.bincount(f["fold"]).tolist() in ([201, 201, 201, 200, 200],)
    assert f.equals(make_folds(train, k=5, seed=7)) and not f.equals(make_folds(train, k=5, seed=8))


def test_read_folds_aligns_and_refuses_foreign_files(tmp_path):
    train = pd.DataFrame({"id": [5, 3, 9, 1]})
    pd.DataFrame({"id": [1, 3, 5, 9], "fold": [0, 1, 0, 1]}).to_csv(tmp_path / "f.csv", index=False)
    assert read_folds(tmp_path / "f.csv", train).tolist() == [0, 1, 1, 0]
    with pytest.raises(ValueError, match="do not match"):
        read_folds(tmp_path / "f.csv", pd.DataFrame({"id": [1, 3, 5, 10]}))


def _comp(name: str, n: int = 50, sha: str = "a"):
    from types import SimpleNamespace

    return SimpleNamespace(name=name, train=pd.DataFrame({"id": np.arange(n)}), fingerprint=sha, test=None)


def test_ensure_folds_keeps_identical_folds_and_refuses_foreign_output(tmp_path):
    from cfblend.competition.folds import ensure_folds
    from cfblend.paths import Paths

    paths = Paths(tmp_path / "input", tmp_path / "output")
    first = ensure_folds(_comp("a-u1"), paths, k=5, seed=1)
    stamp = paths.folds.stat().st_mtime_ns
    assert np.array_equal(ensure_folds(_comp("a-u1"), paths, k=5, seed=1), first)
    assert paths.folds.stat().st_mtime_ns == stamp  # unchanged, not rewritten
    with pytest.raises(ArtifactConflict, match="holds artifacts of a-u1"):
        ensure_folds(_comp("b-random"), paths, k=5, seed=1)
    with pytest.raises(ArtifactConflict, match="another assignment"):
        ensure_folds(_comp("a-u1"), paths, k=5, seed=2)
    assert not np.array_equal(ensure_folds(_comp("b-random"), paths, k=5, seed=2, overwrite=True), first)


def test_switching_a_folder_to_another_competition_with_force_moves_the_stamp(tmp_path):
    """Defect: with the same fold assignment, FORCE returned at "folds unchanged" and kept the old stamp."""
    from cfblend.competition.folds import check_stamp, ensure_folds, load_folds
    from cfblend.paths import Paths

    paths = Paths(tmp_path / "input", tmp_path / "output")
    ensure_folds(_comp("ml-100k-u1"), paths, k=5, seed=1)
    ensure_folds(_comp("ml-100k-u2", sha="b"), paths, k=5, seed=1, overwrite=True)  # same ids, same folds
    assert check_stamp(paths, _comp("ml-100k-u2", sha="b"))["competition"] == "ml-100k-u2"
    load_folds(paths, _comp("ml-100k-u2", sha="b"))
    with pytest.raises(ArtifactConflict, match="holds artifacts of ml-100k-u2"):
        check_stamp(paths, _comp("ml-100k-u1"))


def test_a_rewritten_competition_is_not_the_one_the_folds_were_made_for(tmp_path):
    from cfblend.competition.folds import ensure_folds, load_folds
    from cfblend.paths import Paths

    paths = Paths(tmp_path / "input", tmp_path / "output")
    ensure_folds(_comp("ml-100k-random", sha="seed42"), paths, k=5, seed=1)
    with pytest.raises(ArtifactConflict, match="was rewritten since the folds"):
        load_folds(paths, _comp("ml-100k-random", sha="seed7"))
    with pytest.raises(ArtifactConflict, match="was rewritten since the folds"):
        ensure_folds(_comp("ml-100k-random", sha="seed7"), paths, k=5, seed=1)


def test_hand_edited_folds_are_refused(tmp_path):
    from cfblend.competition.folds import ensure_folds, load_folds
    from cfblend.paths import Paths

    paths = Paths(tmp_path / "input", tmp_path / "output")
    ensure_folds(_comp("c"), paths, k=5, seed=1)
    f = pd.read_csv(paths.folds)
    f["fold"] = f["fold"].iloc[::-1].to_numpy()
    f.to_csv(paths.folds, index=False)
    with pytest.raises(ArtifactConflict, match="not the assignment"):
        load_folds(paths, _comp("c"))


@pytest.mark.parametrize("k", [1, 101, 51])
def test_fold_count_out_of_range_is_refused(tmp_path, k):
    from cfblend.competition.folds import ensure_folds
    from cfblend.paths import Paths

    with pytest.raises(ValueError, match="number of folds must be between 2 and 50"):
        ensure_folds(_comp("c", n=50), Paths(tmp_path / "i", tmp_path / "o"), k=k)


def test_folds_stay_plain_random_rows_when_the_test_users_were_all_seen():
    """The assignment every output folder of a random or official split was made with: a seeded permutation of
    the rows dealt round the folds, the same with or without a test set whose users all have training rows."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"id": np.arange(1000), "user_id": rng.integers(0, 50, 1000)})
    plain = np.empty(1000, dtype=np.int64)
    plain[np.random.default_rng(3).permutation(1000)] = np.arange(1000) % 5
    assert make_folds(train, k=5, seed=3)["fold"].tolist() == plain.tolist()
    seen = pd.DataFrame({"id": np.arange(1000, 1100), "user_id": rng.integers(0, 50, 100)})
    assert make_folds(train, k=5, seed=3, cold_share=cold_user_share(train, seen))["fold"].tolist() == plain.tolist()


def test_folds_hold_out_whole_users_as_often_as_the_test_meets_unseen_ones():
    """A test set whose rows are 40% of users with no training row (as the time split's are): about 40% of the
    train rows are of users held out whole, each in one fold, so that an OOF row's user is unseen in its fold's
    training as often as a test row's; the other users' rows are spread over the folds; sizes stay near-equal."""
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"id": np.arange(6000), "user_id": rng.integers(0, 300, 6000)})
    new_users = 1000 + np.arange(1000) % 40
    test = pd.DataFrame({"id": np.arange(6000, 7000),
                         "user_id": np.where(np.arange(1000) < 400, new_users, rng.integers(0, 300, 1000))})
    assert cold_user_share(train, test) == pytest.approx(0.4)
    share = cold_user_share(train, test)
    fold = make_folds(train, k=5, seed=2, cold_share=share)["fold"].to_numpy()
    assert fold.tolist() == make_folds(train, k=5, seed=2, cold_share=share)["fold"].tolist()
    folds_of_user = train.assign(fold=fold).groupby("user_id")["fold"].nunique()
    users = train["user_id"].to_numpy()
    unseen = np.array([not (users[fold != k] == u).any() for k, u in zip(fold, users, strict=True)])
    assert abs(unseen.mean() - 0.4) < 0.01
    cold_users = train["user_id"][unseen].unique()
    assert (folds_of_user[cold_users] == 1).all() and (folds_of_user.drop(cold_users) > 1).all()
    sizes = np.bincount(fold, minlength=5)
    assert sizes.max() - sizes.min() <= 2 * train["user_id"].value_counts().max()
