"""Distance of embeddings: two items built to be alike come out nearest to each other."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfblend.models import make_model
from cfblend.report.similar import factor_sets, find_item, nearest, side_by_side, similar_table
from cfblend.runs import side_info

TWIN = 10**5


def twin_of(rows: pd.DataFrame, item: int) -> pd.DataFrame:
    """`rows` plus a copy of `item`'s rows as item `TWIN`: same raters, same ratings."""
    twin = rows[rows["item_id"] == item]
    return pd.concat([rows, twin.assign(item_id=TWIN, id=twin["id"] + 10**7)], ignore_index=True)


@pytest.fixture
def twins(comp_env):
    """The competition with a twin of its most rated item: same raters, same ratings, same genres and year."""
    comp, _, paths = comp_env
    base = comp.train
    item = int(base["item_id"].value_counts().index[0])
    comp.train = twin_of(base, item)
    comp.items = pd.concat([comp.items, comp.items[comp.items["item_id"] == item].assign(
        item_id=TWIN, title="The Twin (1999)")], ignore_index=True)
    return comp, paths, item, base


SETTINGS = {"dot": {"epochs": 30, "factors": 8}, "nn": {"epochs": 20, "fm_wd": 0.02},
            "bfm": {"rank": 4, "sweeps": 60, "use_side": False}}


@pytest.mark.parametrize("name", ["dot", "nn", "bfm"])
def test_an_item_and_its_twin_are_nearest_neighbours(twins, name):
    if name == "bfm":
        pytest.importorskip("myfm", reason="myfm not installed")
    comp, paths, item, base = twins
    side = side_info(comp)
    overrides = SETTINGS[name]
    for k in range(2):  # two "fold" models, each in its own rotation of the latent space
        rows = twin_of(base.sample(frac=0.9, random_state=k), item)  # the twin keeps its item's sampled rows
        model = make_model(name, side, {**overrides, "seed": k}).fit(rows)
        model.save(paths.models(name) / f"fold{k}{model.suffix}")
    sets = factor_sets(paths, comp, name)
    assert len(sets) >= 2  # two fold models (times the saved posterior samples of bfm)
    counts = comp.train["item_id"].value_counts()
    top = nearest(sets, item, counts.index[counts >= 5].to_numpy(), k=3)
    assert top.index[0] == TWIN and top.iloc[0] > top.iloc[1]
    table = similar_table(paths, comp, [item], [name], k=3, min_count=5)
    assert table["title"].iloc[0] == "The Twin (1999)" and list(table["rank"]) == [1, 2, 3]
    assert "The Twin (1999)" in side_by_side(table)[name].iloc[0]


def test_find_item_by_id_exact_title_or_part_and_clear_refusals():
    items = pd.DataFrame({"item_id": [1, 2, 3, 50], "title": ["Toy Story (1995)", "Toy Story 2 (1999)",
                                                               "Star Wars (1977)", "Heat (1995)"]})
    assert find_item(items, "50") == 50
    assert find_item(items, "star wars") == 3
    assert find_item(items, "toy story (1995)") == 1  # an exact title wins over a part of another
    with pytest.raises(ValueError, match=r"2 movies match 'toy'.*Toy Story 2 \(1999\) \(id 2\)"):
        find_item(items, "toy")
    with pytest.raises(ValueError, match="no movie matches 'alien'"):
        find_item(items, "alien")


def test_a_similarity_is_the_mean_cosine_over_the_factor_sets_that_know_both_items():
    first = (np.array([1, 2, 3]), np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]]))  # items 1, 2, 3
    second = (np.array([1, 2]), np.array([[0.0, 3.0], [0.0, 1.0]]))  # item 3 unknown here
    sim = nearest([first, second], 1, np.array([1, 2, 3, 4]), k=5)
    assert list(sim.index) == [2, 3]  # the query itself and an item no set knows are left out
    assert sim[2] == pytest.approx((np.sqrt(0.5) + 1.0) / 2)
    assert sim[3] == pytest.approx(0.0)  # averaged over the one set that knows it
    assert nearest([second], 3, np.array([1, 2])).empty  # a query no set knows has no neighbours
