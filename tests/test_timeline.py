"""The users' public timelines (`models/timeline.py`), by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfblend.models.timeline import (
    RatingTimeline,
    genre_masks,
    item_vectors,
    timeline_of,
    timeline_ranks,
    timeline_table,
)


def test_timeline_table_by_hand():
    """Each public pair's place and timing in its user's history, from the pairs alone: ties by item id, the
    same UTC day counted per user, gaps NaN at either end; one pair listed twice counts once."""
    day = 86400
    pairs = pd.DataFrame({"user_id": [1, 1, 1, 1, 2, 1],
                          "item_id": [30, 10, 20, 40, 10, 30],
                          "timestamp": [5 * day + 10, 5 * day + 10, 2 * day, 9 * day, 7 * day, 5 * day + 10]})
    t = timeline_table(pairs)
    # user 1 by time (ties by item id): 20 (day 2), 10 and 30 (day 5 + 10 s), 40 (day 9)
    np.testing.assert_allclose(t.loc[[(1, 20), (1, 10), (1, 30), (1, 40)], "tl_pos"], [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_array_equal(t.loc[[(1, 20), (1, 10), (1, 30), (1, 40)], "tl_same_day"], [1, 2, 2, 1])
    np.testing.assert_allclose(t.loc[(1, 40), ["tl_since_first", "tl_gap_prev"]], [7, 4 - 10 / day])
    np.testing.assert_allclose(t.loc[(1, 10), ["tl_gap_prev", "tl_gap_next"]], [3 + 10 / day, 0])
    assert np.isnan(t.loc[(1, 20), "tl_gap_prev"]) and np.isnan(t.loc[(1, 40), "tl_gap_next"])
    assert t.loc[(2, 10)].tolist()[:3] == [0, 1, 0] and np.isnan(t.loc[(2, 10)].tolist()[3:]).all()
    assert len(t) == 5
    look = timeline_of(t, pd.DataFrame({"user_id": [1, 3, 1], "item_id": [40, 10, 20]}))  # the rows' order
    np.testing.assert_allclose(look["tl_pos"], [1, np.nan, 0])  # (3, 10) is not public
    assert look.iloc[1].isna().all()


def test_rating_timeline_by_hand():
    """The neighbouring fit rows' residuals (from damped global, item and user means, computed here the long
    way) along the user's public timeline; a row is never its own neighbour; NaN where there is none."""
    day = 86400
    # user 1's timeline: items 10, 20, 30, 40, 50, 60 (60 and 10 tie on time: 10 first); user 2 rates 10, 20
    pairs = pd.DataFrame({"user_id": [1, 1, 1, 1, 1, 1, 2, 2],
                          "item_id": [60, 20, 30, 40, 50, 10, 10, 20],
                          "timestamp": [1 * day, 2 * day, 3 * day, 4 * day, 5 * day, 1 * day, 1 * day, 2 * day]})
    ranks = timeline_ranks(pairs)
    assert ranks.of([1, 1, 1, 1, 2], [10, 60, 20, 50, 20]).tolist() == [0, 1, 2, 5, 1]
    assert np.isnan(ranks.of([2, 3, 1], [30, 10, 99])).all()  # not public: unknown pair, user, item
    fit = pd.DataFrame({"user_id": [1, 1, 1, 1, 2, 2], "item_id": [10, 60, 20, 50, 10, 20],
                        "rating": [5.0, 1.0, 4.0, 2.0, 3.0, 4.0]})
    res = fit["rating"] - fit["rating"].mean()
    res = res - res.groupby(fit["item_id"]).transform(lambda s: s.sum() / (len(s) + 25.0))
    res = res - res.groupby(fit["user_id"]).transform(lambda s: s.sum() / (len(s) + 10.0))
    r = dict(zip(zip(fit["user_id"], fit["item_id"], strict=True), res, strict=True))
    tl = RatingTimeline(fit, ranks, window=1)
    rows = pd.DataFrame({"user_id": [1, 1, 1, 1, 3, 1], "item_id": [30, 40, 20, 10, 10, 99]})
    out = tl.lookup(rows)
    assert out.columns.tolist() == ["nb_prev", "nb_next", "nb_mean1", "nb_mean3", "nb_count", "nb_genre1", "nb_sit0",
                                    "nb_sit60", "nb_sit300"]
    assert out.iloc[:, 5:].isna().all().all()  # no genres given, no timestamps on the fit rows
    # 30 (rank 3) sits between 20 (rank 2) and 50 (rank 5): 40 (rank 4) is public but not a fit row
    np.testing.assert_allclose(out.iloc[0, :3], [r[1, 20], r[1, 50], (r[1, 20] + r[1, 50]) / 2])
    np.testing.assert_allclose(out.iloc[0, 3], np.mean([r[1, k] for k in (10, 60, 20, 50)]))
    np.testing.assert_allclose(out.iloc[1, :2], [r[1, 20], r[1, 50]])
    # a fit row itself: its own rating is skipped, the rows on either side are used
    np.testing.assert_allclose(out.iloc[2, :3], [r[1, 60], r[1, 50], (r[1, 60] + r[1, 50]) / 2])
    np.testing.assert_allclose(out.iloc[2, 3], np.mean([r[1, k] for k in (10, 60, 50)]))
    assert out.iloc[2, 4] == 3
    assert np.isnan(out.iloc[3, 0]) and out.iloc[3, 1] == pytest.approx(r[1, 60])  # the first of the timeline
    assert out.iloc[4:, :4].isna().all().all() and out["nb_count"].iloc[4:].tolist() == [0, 0]  # unknown user, pair
    assert r[1, 10] != r[2, 10]  # the other user's ratings of the same items are not neighbours
    assert tl.lookup(rows.iloc[:0]).shape == (0, 9)
    np.testing.assert_allclose(tl.residuals(fit), res)  # the residuals laid along the timelines
    other = pd.DataFrame({"user_id": [3, 2], "item_id": [10, 99], "rating": [4.0, 1.0]})  # an unseen user, item
    item_10 = (fit["rating"] - fit["rating"].mean())[fit["item_id"] == 10].sum() / (2 + 25.0)
    user_2 = ((fit["rating"] - fit["rating"].mean()) - (fit["rating"] - fit["rating"].mean()).groupby(
        fit["item_id"]).transform(lambda s: s.sum() / (len(s) + 25.0)))[fit["user_id"] == 2].sum() / (2 + 10.0)
    np.testing.assert_allclose(tl.residuals(other), [4.0 - fit["rating"].mean() - item_10,
                                                     1.0 - fit["rating"].mean() - user_2])


def _residuals(fit: pd.DataFrame) -> dict:
    """`RatingTimeline`'s residuals of the fit rows, computed the long way, by (user, item)."""
    res = fit["rating"] - fit["rating"].mean()
    res = res - res.groupby(fit["item_id"]).transform(lambda s: s.sum() / (len(s) + 25.0))
    res = res - res.groupby(fit["user_id"]).transform(lambda s: s.sum() / (len(s) + 10.0))
    return dict(zip(zip(fit["user_id"], fit["item_id"], strict=True), res, strict=True))


def test_sittings_by_the_clock_and_by_genre():
    """`nb_sit<s>`: the mean residual of the user's fit rows rated within s seconds of the row, its own pair left
    out, other users' never in; `nb_genre<w>`: the window's residuals weighted by shared genres (Jaccard)."""
    fit = pd.DataFrame({"user_id": [1, 1, 1, 1, 2], "item_id": [10, 20, 30, 40, 50],
                        "timestamp": [100, 130, 400, 1000, 120], "rating": [5.0, 2.0, 4.0, 1.0, 3.0]})
    pairs = pd.concat([fit, pd.DataFrame({"user_id": [1], "item_id": [50], "timestamp": [120]})])
    r = _residuals(fit)
    items = pd.DataFrame({"item_id": [10, 20, 30, 40, 50],
                          "genres": [["Drama"], ["Drama", "War"], ["Comedy"], [], ["Drama", "Comedy"]]})
    masks = genre_masks(items)
    assert masks.loc[10] & masks.loc[20] and not masks.loc[10] & masks.loc[30] and masks.loc[40] == 0
    tl = RatingTimeline(fit, timeline_ranks(pairs), window=2, genres=masks)
    rows = pd.DataFrame({"user_id": [1, 1, 3], "item_id": [50, 20, 10], "timestamp": [120, 130, 100]})
    out = tl.lookup(rows)
    # (1, 50) at 120 s: nothing at 120 itself; 10 (100 s) and 20 (130 s) within a minute; 30 (400 s) within five
    assert np.isnan(out.loc[0, "nb_sit0"])
    np.testing.assert_allclose(out.loc[0, ["nb_sit60", "nb_sit300"]],
                               [(r[1, 10] + r[1, 20]) / 2, (r[1, 10] + r[1, 20] + r[1, 30]) / 3])
    # its window (two on each side: 10 | 20, 30, 40): shared genres over all of both, Drama+Comedy against
    # Drama 1/2, Drama+War 1/3, Comedy 1/2, none 0
    w = {10: 1 / 2, 20: 1 / 3, 30: 1 / 2, 40: 0.0}
    np.testing.assert_allclose(out.loc[0, "nb_genre2"], sum(w[k] * r[1, k] for k in w) / sum(w.values()))
    # (1, 20) is a fit row: never its own sitting, so nothing at 130 s; 10 (30 s away) within a minute
    assert np.isnan(out.loc[1, "nb_sit0"])
    np.testing.assert_allclose(out.loc[1, ["nb_sit60", "nb_sit300"]], [r[1, 10], (r[1, 10] + r[1, 30]) / 2])
    assert out.loc[2, ["nb_sit0", "nb_sit60", "nb_sit300", "nb_genre2"]].isna().all()  # a user the fit rows lack
    no_clock = tl.lookup(rows.drop(columns="timestamp"))  # rows without a time have no sitting
    assert no_clock[["nb_sit0", "nb_sit60", "nb_sit300"]].isna().all().all()
    np.testing.assert_allclose(no_clock["nb_genre2"], out["nb_genre2"])


def test_item_vectors_give_the_cosine_of_the_items_rater_sets():
    """`item_vectors`: unit vectors whose dot products are the cosines of the items' rater sets (exact here: the
    0/1 matrix has rank 3, the vectors' rank), from which users rated what and never how, seeded."""
    raters = {10: [1, 2, 3], 20: [1, 2, 3], 30: [3, 4, 5, 6], 40: [1, 5, 6]}  # 10 and 20 alike: rank 3
    pairs = pd.DataFrame([(u, i) for i, us in raters.items() for u in us], columns=["user_id", "item_id"])
    vec = item_vectors(pairs.assign(rating=np.arange(len(pairs)) % 5 + 1.0), rank=3)
    assert vec.index.tolist() == [10, 20, 30, 40] and vec.shape == (4, 3)
    want = np.array([[len(set(raters[a]) & set(raters[b])) / np.sqrt(len(raters[a]) * len(raters[b]))
                      for b in raters] for a in raters])
    np.testing.assert_allclose(vec.to_numpy() @ vec.to_numpy().T, want, atol=1e-5)
    again = item_vectors(pairs.assign(rating=5.0).sample(frac=1, random_state=1), rank=3)
    np.testing.assert_allclose(again.to_numpy(), vec.to_numpy(), atol=1e-6)  # the ratings and row order: no matter
    assert item_vectors(pairs.head(1)).empty  # one pair: no rank to speak of


def test_likeness_weights_the_window_by_the_items_cosine_cubed():
    """`nb_sim<w>`: the window's residuals weighted by the cosine of the neighbour's movie with the row's, cubed;
    a neighbour at a negative cosine or without a vector weighs nothing; no column without vectors."""
    fit = pd.DataFrame({"user_id": [1, 1, 1, 1, 1], "item_id": [10, 20, 30, 40, 60],
                        "timestamp": [100, 200, 300, 400, 500], "rating": [5.0, 2.0, 4.0, 1.0, 3.0]})
    pairs = pd.concat([fit, pd.DataFrame({"user_id": [1], "item_id": [50], "timestamp": [250]})])
    r = _residuals(fit)
    vectors = pd.DataFrame([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0], [0.0, 1.0], [0.8, 0.6]],
                           index=[10, 20, 30, 40, 50], dtype=np.float32)  # 60 has none
    tl = RatingTimeline(fit, timeline_ranks(pairs), window=2, vectors=vectors)
    out = tl.lookup(pd.DataFrame({"user_id": [1, 1], "item_id": [50, 70], "timestamp": [250, 600]}))
    # (1, 50) between 20 and 30: window 10, 20 | 30, 40; cosines with (0.8, 0.6): 0.8, 0.96, -0.8, 0.6
    w = {10: 0.8 ** 3, 20: 0.96 ** 3, 30: 0.0, 40: 0.6 ** 3}
    np.testing.assert_allclose(out.loc[0, "nb_sim2"], sum(w[k] * r[1, k] for k in w) / sum(w.values()), rtol=1e-5)
    assert np.isnan(out.loc[1, "nb_sim2"])  # (1, 70) is no public pair
    assert "nb_sim2" not in RatingTimeline(fit, timeline_ranks(pairs), window=2).lookup(fit).columns
    end = RatingTimeline(fit, timeline_ranks(pairs), window=1, vectors=vectors).lookup(fit.tail(1))
    assert np.isnan(end["nb_sim1"].iloc[0])  # (1, 60): its one neighbour, 40, weighs 0 against no vector
