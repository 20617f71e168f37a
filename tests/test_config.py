"""The one config-override syntax (`SET="..."`) and typed configs."""

from __future__ import annotations

import pytest

from cfblend.models import FAST_MODELS, FULL_MODELS, model_config, parse_set
from cfblend.models.dot import DotConfig


def test_a_plain_key_goes_to_every_model_that_has_it_and_a_dotted_key_to_one():
    out = parse_set("epochs=3 gbm.learning_rate=0.1 nn.layers=[64, 32]", ["dot", "nn", "gbm", "biases"])
    assert out["dot"] == {"epochs": 3} and out["nn"] == {"epochs": 3, "layers": [64, 32]}
    assert out["gbm"] == {"learning_rate": 0.1} and out["biases"] == {}


def test_values_are_typed_by_the_config():
    cfg = model_config("dot", parse_set("lr=1e-3 factors=8 y_range=[0, 5.5] one_cycle=false", ["dot"])["dot"])
    assert isinstance(cfg, DotConfig)
    assert cfg.lr == 0.001 and isinstance(cfg.lr, float)  # YAML reads 1e-3 as a string
    assert cfg.factors == 8 and cfg.y_range == (0.0, 5.5) and cfg.one_cycle is False
    assert model_config("nn", {"layers": [64, 32]}).layers == (64, 32)


@pytest.mark.parametrize("text, message", [
    ("factor=3", "unknown key 'factor'"),
    ("svd.factors=3", "'svd' is not among the models"),
    ("factors=2.5", "is not a valid int"),
    ("lr=fast", "is not a valid float"),
    ("y_range=[1, 2, 3]", "is not a valid tuple"),
    ("factors", "expects key=value"),
])
def test_bad_overrides_are_one_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        parse_set(text, ["dot"])


def test_defaults_apply_unless_set():
    out = parse_set("dot.device=cpu", ["dot", "biases", "nn"], {"device": "cuda"})
    assert out["dot"]["device"] == "cpu" and out["nn"]["device"] == "cuda" and "device" not in out["biases"]


def test_empty_set_changes_nothing():
    assert parse_set("", FAST_MODELS) == {m: {} for m in FAST_MODELS}
    assert parse_set(None, ["dot"]) == {"dot": {}}


def test_the_run_seed_reaches_every_model_and_the_dot_models_a_gbm_builds_on():
    out = parse_set("dot.seed=3", ["dot", "gbm", "biases"], {"seed": 7})
    assert out["dot"]["seed"] == 3 and out["biases"]["seed"] == 7  # SET still wins
    gbm = model_config("gbm", out["gbm"])
    assert gbm.seed == 7 and gbm.dot == {"seed": 7}
    assert model_config("gbm", parse_set("gbm.dot={seed: 1}", ["gbm"], {"seed": 7})["gbm"]).dot == {"seed": 1}


def test_a_dataset_default_list_is_its_own_list_in_order():
    from cfblend.models import default_models

    assert default_models("ml-100k") == FAST_MODELS
    assert default_models("ml-1m") == FULL_MODELS and default_models("ml-1m", "fast") == FAST_MODELS
    assert default_models("ml-100k", "full") == FULL_MODELS
    with pytest.raises(ValueError, match="unknown model list 'default'"):
        default_models("ml-100k", "default")


def test_the_fast_list_is_part_of_the_full_list_in_its_order():
    assert set(FAST_MODELS) < set(FULL_MODELS)
    assert tuple(m for m in FULL_MODELS if m in FAST_MODELS) == FAST_MODELS  # the blend's order kept


def test_a_list_name_in_models_expands_in_place_and_each_member_comes_once():
    from cfblend.models import expand_models

    assert expand_models(["full"], "ml-100k") == list(FULL_MODELS)
    assert expand_models(["fast"], "ml-1m") == list(FAST_MODELS)
    assert expand_models(["nn_ids", "fast", "dot"], "ml-100k") == ["nn_ids", *FAST_MODELS]
    assert expand_models(["bfm", "full"], "ml-100k") == ["bfm", *(m for m in FULL_MODELS if m != "bfm")]
    assert expand_models([], "ml-100k") == []
    assert expand_models(" full, nn_ids ", "ml-100k") == [*FULL_MODELS, "nn_ids"]
    assert expand_models("", "ml-100k") == []


def test_the_command_line_reads_models_with_commas_or_spaces_and_list_names():
    from cfblend.cli import _models

    assert _models("full, nn_ids", "ml-100k", ()) == [*FULL_MODELS, "nn_ids"]
    assert _models("dot,nn", "ml-100k", FAST_MODELS) == ["dot", "nn"]
    assert _models("  ", "ml-100k", FAST_MODELS) == list(FAST_MODELS)
