"""Side-feature encoding: unknown categories, missing demographics, multi-genre items."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfblend.models.side import SideEncoder, emb_size

USERS = pd.DataFrame({"user_id": [1, 2, 3], "age": [23.0, 61.0, np.nan], "gender": ["M", "F", "F"],
                      "occupation": ["writer", "doctor", "pilot"], "zip": ["85711", "T8H1N", None]})
ITEMS = pd.DataFrame({"item_id": [10, 20, 30], "title": ["a", "b", "c"], "year": [1995.0, np.nan, 1970.0],
                      "genres": [["Comedy", "Drama", "War"], [], ["Horror"]]})
TRAIN = pd.DataFrame({"user_id": [1, 2, 1], "item_id": [10, 20, 20], "timestamp": [880_000_000] * 3,
                      "rating": [4.0, 3.0, 5.0]})


def test_vocabularies_come_from_training_rows_and_unknowns_map_to_zero():
    enc = SideEncoder().fit(TRAIN, USERS, ITEMS)
    rows = pd.DataFrame({"user_id": [3, 1, 99], "item_id": [30, 10, 10], "timestamp": [890_000_000] * 3})
    out = enc.transform(rows, USERS, ITEMS)
    f = {c: out["cats"][:, j] for j, c in enumerate(enc.cat_fields)}
    assert f["user_id"].tolist() == [0, 1, 0]  # user 3 never rated in training; 99 is unknown everywhere
    assert f["item_id"].tolist() == [0, 1, 1]
    assert f["occupation"][0] == 0  # 'pilot' appears only for an unseen user
    assert f["gender"][0] == enc.vocab["gender"]["F"]  # ...but a seen category of an unseen user flows
    assert f["zip1"][0] == 0  # missing zip
    assert f["decade"][0] == 0 and f["decade"][1] == enc.vocab["decade"][1990.0]


def test_multi_genre_items_and_missing_numerics():
    enc = SideEncoder().fit(TRAIN, USERS, ITEMS)
    out = enc.transform(TRAIN, USERS, ITEMS)
    assert enc.max_genres == 3
    g = out["genres"]
    assert sorted(g[0][g[0] > 0].tolist()) == sorted(enc.genre_vocab[x] for x in ("Comedy", "Drama", "War"))
    assert not g[1].any()  # an item with no genres is all padding
    dense = out["dense"]
    assert dense.shape == (3, enc.n_dense) and np.isfinite(dense).all()
    year = enc.num_fields.index("year")
    assert dense[1, 2 * year] == 0.0 and dense[1, 2 * year + 1] == 1.0  # missing year: imputed, flagged
    assert dense[:, -len(enc.genre_vocab):].sum(1).tolist() == [3.0, 0.0, 0.0]  # raw genre multi-hot


def test_no_demographics_means_no_user_fields():
    users = pd.DataFrame({"user_id": [1, 2]})
    enc = SideEncoder().fit(TRAIN, users, ITEMS)
    assert not {"gender", "occupation", "age_bucket", "zip1", "zip3"} & set(enc.cat_fields)
    assert "age" not in enc.num_fields
    assert enc.transform(TRAIN, users, ITEMS)["dense"].shape[1] == enc.n_dense


def test_ids_only_encoder_and_round_trip():
    assert SideEncoder(use_side=False).fit(TRAIN, USERS, ITEMS).cat_fields == ["user_id", "item_id"]
    enc = SideEncoder().fit(TRAIN, USERS, ITEMS)
    again = SideEncoder.from_dict(enc.to_dict())
    a, b = enc.transform(TRAIN, USERS, ITEMS), again.transform(TRAIN, USERS, ITEMS)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_emb_size_rule():
    assert emb_size(2) == 2 and emb_size(944) == 74 and emb_size(10**9) == 600
