"""Atomic writes: a file or folder appears whole or not at all, and no temp file is left behind."""

from __future__ import annotations

import pytest

from cfblend.io import atomic_path, staged_dir, write_json


def test_atomic_write_keeps_the_old_file_on_failure_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a" / "scores.json"
    write_json({"v": 1}, path)
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text().strip().endswith("}") and '"v": 1' in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["scores.json"]


def test_staged_dir_replaces_a_folder_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "comp"
    with staged_dir(folder) as tmp:
        (tmp / "train.csv").write_text("old")
    with pytest.raises(RuntimeError), staged_dir(folder) as tmp:
        (tmp / "train.csv").write_text("new")
        raise RuntimeError("failed while building")
    assert (folder / "train.csv").read_text() == "old"
    with staged_dir(folder) as tmp:
        (tmp / "test.csv").write_text("new")
    assert [p.name for p in folder.iterdir()] == ["test.csv"]  # replaced as a whole, nothing of the old one left
    assert [p.name for p in tmp_path.iterdir()] == ["comp"]  # no staging or .old folder left


def test_clean_removes_an_artifact_folder_and_refuses_anything_else(tmp_path, monkeypatch):
    from cfblend.errors import ArtifactConflict
    from cfblend.paths import remove_output

    out = tmp_path / "output"
    write_json({"competition": "x"}, out / "competition.json")
    write_json({}, out / "scores" / "dot.json")
    write_json({"competition": "y"}, out / "ml-1m" / "competition.json")  # a nested artifact folder (OUT=output/ml-1m)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("months of work")
    monkeypatch.chdir(tmp_path)
    refused = ((tmp_path / "mine", "did not write"), (tmp_path, "current folder"), (tmp_path / "..", "parents"))
    for folder, why in refused:
        with pytest.raises(ArtifactConflict, match=why):
            remove_output(folder)
    remove_output(out)
    assert not out.exists() and (tmp_path / "mine" / "thesis.tex").exists()
