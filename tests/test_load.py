"""Loading every dataset into the canonical form, and clear errors on bad rows."""

from __future__ import annotations

import pytest

from cfblend.data.load import load_dataset
from cfblend.errors import DataError


def test_ml100k_canonical_form(ml100k_dir):
    folder, spec = ml100k_dir
    ds = load_dataset("ml-100k", folder, spec)
    assert list(ds.ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert str(ds.ratings["rating"].dtype) == "float32"
    assert {"user_id", "age", "gender", "occupation", "zip"} <= set(ds.users.columns)
    assert list(ds.items.columns) == ["item_id", "title", "year", "genres"]
    assert all(isinstance(g, list) for g in ds.items["genres"])
    assert ds.items["year"].between(1930, 2000).all()


def test_bad_rating_value_names_file_and_row(ml100k_dir):
    folder, spec = ml100k_dir
    lines = (folder / "u.data").read_text().splitlines()
    lines[6] = "1\t2\tfive\t880000000"
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"u\.data: row 7: column rating: not a number: 'five'"):
        load_dataset("ml-100k", folder, spec)


def test_out_of_range_and_repeated_ratings_are_refused(ml100k_dir):
    folder, spec = ml100k_dir
    lines = (folder / "u.data").read_text().splitlines()
    (folder / "u.data").write_text("\n".join([*lines[:3], "1\t2\t9\t1", *lines[3:]]) + "\n")
    with pytest.raises(DataError, match=r"row 4: rating 9.0 outside"):
        load_dataset("ml-100k", folder, spec)
    (folder / "u.data").write_text("\n".join([*lines, lines[0]]) + "\n")
    with pytest.raises(DataError, match=rf"row {len(lines) + 1}: repeated rating"):
        load_dataset("ml-100k", folder, spec)


def test_ml1m_format(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::10::5::978300760\n2::10::3::978302109\n1::20::4::978301968\n")
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    (folder / "movies.dat").write_bytes("10::Amélie: Le Fabuleux (2001)::Comedy|Romance\n20::Heat (1995)::Action\n"
                                        .encode("latin-1"))
    ds = load_dataset("ml-1m", folder)
    assert ds.ratings["rating"].tolist() == [5, 3, 4]
    assert ds.users.set_index("user_id").loc[1, "occupation"] == "K-12 student"
    items = ds.items.set_index("item_id")
    assert items.loc[10, "title"].startswith("Amélie") and items.loc[10, "year"] == 2001
    assert items.loc[10, "genres"] == ["Comedy", "Romance"]


def test_ml_latest_small_format(tmp_path):
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,0.5,964981247\n")
    (folder / "movies.csv").write_text('movieId,title,genres\n1,"Toy Story (1995)",Adventure|Animation\n'
                                       '3,"Grumpier, Old Men ",(no genres listed)\n')
    ds = load_dataset("ml-latest-small", folder)
    assert ds.rating_scale == (0.5, 5.0)
    assert list(ds.users.columns) == ["user_id"]
    assert ds.items.set_index("item_id").loc[3, "genres"] == []


def test_real_datasets_load():
    from conftest import real_data

    for name, n in (("ml-100k", 100_000), ("ml-latest-small", 100_836)):
        ds = load_dataset(name, real_data(name))
        assert len(ds.ratings) == n
