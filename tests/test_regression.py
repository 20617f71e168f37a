"""Regression guard on real data: each member, fitted once on ml-100k's u1 train set, lands within a
stated margin of its known test RMSE. A change that silently breaks a model fails here."""

from __future__ import annotations

import pandas as pd
import pytest

from cfblend.competition import Competition, make_competition
from cfblend.competition.scoring import rmse
from cfblend.data.load import load_dataset
from cfblend.models import available, make_model
from cfblend.runs import side_info

# Test RMSE of one fit on u1's train set, registry configs, this repo's CPU build; margin 0.004.
KNOWN = {"biases": 0.9700, "dot": 0.9158, "svdpp": 0.9167, "autorec": 0.9021, "bfm": 0.8750, "bfm_op": 0.8751,
         "bfm_opu": 0.8733}
MARGIN = 0.004


@pytest.fixture(scope="module")
def u1(tmp_path_factory):
    from conftest import real_data

    raw = real_data("ml-100k")
    folder = tmp_path_factory.mktemp("u1") / "ml-100k-u1"
    comp = Competition.load(make_competition(load_dataset("ml-100k", raw), "u1", folder))
    solution = pd.read_csv(folder / "solution" / "solution.csv").set_index("id")
    return comp, solution.loc[comp.test["id"], "rating"].to_numpy()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KNOWN))
def test_member_lands_near_its_known_rmse(u1, name):
    if not available(name):
        pytest.skip(f"{name} needs an optional package that is not installed")
    comp, y = u1
    got = rmse(y, make_model(name, side_info(comp), {"device": "cpu"} if name in ("dot", "autorec") else None)
               .fit(comp.train).predict(comp.test))
    assert abs(got - KNOWN[name]) < MARGIN, f"{name}: test RMSE {got:.4f}, known {KNOWN[name]:.4f}"
