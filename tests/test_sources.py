"""Obtaining data: verification, local folders and zips, Kaggle's input layout, nothing half-written."""

from __future__ import annotations

import zipfile
from dataclasses import replace

import pytest

from cfblend.data.load import load_dataset
from cfblend.data.sources import _write_ml100k_from_recbole, ensure_dataset
from cfblend.errors import DataError
from cfblend.io import sha256_file


def test_data_dir_folder_is_verified_and_copied(ml100k_dir, tmp_path):
    src, spec = ml100k_dir
    out = ensure_dataset(spec, tmp_path / "input", data_dir=src, network=False)
    assert sha256_file(out / "u.data") == spec.ratings_sha256
    assert (out / "SOURCE.json").read_text().count("DATA_DIR") == 1


def test_corrupted_rating_file_is_rejected_and_nothing_left_behind(ml100k_dir, tmp_path):
    src, spec = ml100k_dir
    with open(src / "u.data", "a") as f:
        f.write("1\t2\t3\t4\n")
    inp = tmp_path / "input"
    with pytest.raises(DataError, match="failed verification"):
        ensure_dataset(spec, inp, data_dir=src, network=False)
    assert not (inp / "ml-100k").exists()
    assert [p.name for p in inp.iterdir()] == []  # no temp folder either


def test_files_already_in_input_are_verified_in_place(ml100k_dir, tmp_path):
    src, spec = ml100k_dir
    inp = tmp_path / "input"
    ensure_dataset(spec, inp, data_dir=src, network=False)
    assert ensure_dataset(spec, inp, network=False) == inp / "ml-100k"
    (inp / "ml-100k" / "u.data").write_text("1\t1\t5\t0\n")
    with pytest.raises(DataError, match=r"SHA-256 .* expected"):
        ensure_dataset(spec, inp, network=False)


def test_data_dir_again_keeps_the_verified_copy(ml100k_dir, tmp_path):
    """`make all DATA_DIR=...` twice: the second run uses the verified files, it does not fail."""
    src, spec = ml100k_dir
    inp = tmp_path / "input"
    ensure_dataset(spec, inp, data_dir=src, network=False)
    before = (inp / "ml-100k" / "SOURCE.json").stat().st_mtime_ns
    assert ensure_dataset(spec, inp, data_dir=src, network=False) == inp / "ml-100k"
    assert (inp / "ml-100k" / "SOURCE.json").stat().st_mtime_ns == before


def test_a_bad_side_file_is_refused_before_anything_is_installed(ml100k_dir, tmp_path):
    """Defect: only the rating file was checked, so a bad u.user given through DATA_DIR was installed."""
    src, spec = ml100k_dir
    (src / "u.user").write_text((src / "u.user").read_text().replace("|M|", "|X|", 1))
    inp = tmp_path / "input"
    with pytest.raises(DataError, match=r"u\.user failed verification"):
        ensure_dataset(spec, inp, data_dir=src, network=False)
    assert not (inp / "ml-100k").exists() and list(inp.iterdir()) == []


def test_a_truncated_item_file_is_refused_even_without_a_pinned_hash(ml100k_dir, tmp_path):
    from dataclasses import replace

    src, spec = ml100k_dir
    lines = (src / "u.item").read_text(encoding="latin-1").splitlines(keepends=True)
    (src / "u.item").write_text("".join(lines[:-10]), encoding="latin-1")
    with pytest.raises(DataError, match=r"u\.item failed verification"):
        ensure_dataset(spec, tmp_path / "input", data_dir=src, network=False)
    unpinned = replace(spec, file_sha256={})  # a mirror's rebuilt file has no official hash: parsing catches it
    with pytest.raises(DataError, match="ratings name items missing from the item file"):
        ensure_dataset(unpinned, tmp_path / "input2", data_dir=src, network=False)
    assert not (tmp_path / "input2" / "ml-100k").exists()


def test_an_installed_file_changed_later_is_refused(ml100k_dir, tmp_path):
    from dataclasses import replace

    src, spec = ml100k_dir
    spec = replace(spec, file_sha256={})  # only what SOURCE.json recorded at install time vouches
    inp = tmp_path / "input"
    ensure_dataset(spec, inp, data_dir=src, network=False)
    with open(inp / "ml-100k" / "u.occupation", "a") as f:
        f.write("astronaut\n")
    with pytest.raises(DataError, match=r"u\.occupation changed since it was verified"):
        ensure_dataset(spec, inp, network=False)


def test_missing_required_file_is_named(ml100k_dir, tmp_path):
    src, spec = ml100k_dir
    (src / "u.item").unlink()
    with pytest.raises(DataError, match=r"missing u\.item"):
        ensure_dataset(spec, tmp_path / "input", data_dir=src, network=False)


def test_official_style_zip_is_unpacked(ml100k_dir, tmp_path):
    src, spec = ml100k_dir
    zpath = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in src.iterdir():
            zf.write(f, f"ml-100k/{f.name}")
    out = ensure_dataset(spec, tmp_path / "input", data_dir=zpath, network=False)
    assert len(load_dataset("ml-100k", out, spec).ratings) == len((src / "u.data").read_text().splitlines())


def test_kaggle_input_layout_is_found(ml100k_dir, tmp_path):
    src, spec = ml100k_dir
    kaggle = tmp_path / "kaggle" / "input" / "movielens-100k-dataset" / "ml-100k"
    kaggle.parent.mkdir(parents=True)
    src.rename(kaggle)
    out = ensure_dataset(spec, tmp_path / "input", kaggle_input=tmp_path / "kaggle" / "input", network=False)
    assert "Kaggle input" in (out / "SOURCE.json").read_text()


def test_no_source_is_a_clear_error_saying_where_to_put_files(ml100k_dir, tmp_path):
    _, spec = ml100k_dir
    with pytest.raises(DataError, match=r"Put the official files .* in .*ml-100k/"):
        ensure_dataset(spec, tmp_path / "input", kaggle_input=tmp_path / "none", network=False)


def test_recbole_atomic_files_rebuild_ml100k(ml100k_dir, tmp_path):
    src, spec = ml100k_dir
    body = (src / "u.data").read_bytes()
    users = [line.split("|") for line in (src / "u.user").read_text().splitlines()]
    members = {
        "ml-100k.inter": b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + body,
        "ml-100k.user": ("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                         + "".join("\t".join(u) + "\n" for u in users)).encode(),
        "ml-100k.item": b"item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                        b"1\tToy Story\t1995\tAnimation Children's Comedy\n2\tUnknown\t\tunknown\n",
    }
    out = tmp_path / "rebuilt"
    out.mkdir()
    _write_ml100k_from_recbole(members, out)
    assert (out / "u.data").read_bytes() == body
    assert (out / "u.user").read_text() == (src / "u.user").read_text()
    ds = load_dataset("ml-100k", out, replace(spec))
    assert ds.items.loc[0, "title"] == "Toy Story (1995)" and ds.items.loc[0, "year"] == 1995
    assert ds.items.loc[0, "genres"] == ["Animation", "Children's", "Comedy"]
    assert ds.items.loc[1, "genres"] == ["unknown"]


def test_real_ml100k_hash_matches_spec():
    from conftest import real_data

    from cfblend.data import get_spec

    folder = real_data("ml-100k")
    assert sha256_file(folder / "u.data") == get_spec("ml-100k").ratings_sha256
