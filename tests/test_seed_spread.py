"""The seed_spread stage's arithmetic: spread over seeds, the nearest model, and whether the ranking holds."""

import json

import pytest

from xtalml.studies.seed_spread import headline_spread, seed_spread, spread_table


def test_spread_is_max_minus_min_over_seeds_of_each_test_and_validation_figure():
    per_seed = {44: {"test.mae": 0.9, "validation.mae": 1.0, "test_by_source.oqmd.mae": 5.0},
                42: {"test.mae": 0.6, "validation.mae": 1.1, "test_by_source.oqmd.mae": 5.0},
                43: {"test.mae": 0.7, "validation.mae": 1.0}}
    table = spread_table(per_seed)
    assert set(table) == {"test.mae", "validation.mae"}  # per-source figures are not the headline
    assert table["test.mae"]["per_seed"] == {"42": 0.6, "43": 0.7, "44": 0.9}
    assert table["test.mae"]["spread"] == pytest.approx(0.3)
    assert table["test.mae"]["mean"] == pytest.approx(0.7333333)
    assert table["validation.mae"]["std"] == pytest.approx(0.0577350)


def write_metrics(folder, figures, key="mae"):
    folder.mkdir()
    for model, value in figures.items():
        (folder / f"{model}.json").write_text(json.dumps({"test": {key: value}, "validation": {key: value}}))


@pytest.mark.parametrize("seed_43, within", [(0.70, []), (0.80, ["lightgbm_regressor"])])
def test_the_ranking_holds_only_if_no_other_model_is_within_the_seed_range(tmp_path, seed_43, within):
    write_metrics(tmp_path / "task", {"wide_deep": 0.60, "mlp_regressor": 6.2, "lightgbm_regressor": 0.75})
    per_seed = {42: {"test.mae": 0.60, "test.r2": 0.9}, 43: {"test.mae": seed_43, "test.r2": 0.9}}
    result = seed_spread(per_seed, 42, "regression", "wide_deep", tmp_path / "task")
    assert result["nearest_model"]["model"] == "lightgbm_regressor"
    assert result["nearest_model"]["gap"] == pytest.approx(abs(0.75 - (0.60 + seed_43) / 2))
    assert result["models_within_range"] == within and result["ranking_holds_over_seeds"] is not within
    headline = headline_spread(result)
    assert headline["test.mae"]["spread"] == pytest.approx(seed_43 - 0.60)
    assert headline["ranking_holds_over_seeds"] is not within and "validation.mae" not in headline


def test_a_model_within_the_range_breaks_the_ranking_even_if_another_is_nearer_the_mean(tmp_path):
    write_metrics(tmp_path / "task", {"mlp": 0.0, "tree": 0.5495, "forest": 0.5555}, "accuracy")
    per_seed = {42: {"test.accuracy": 0.55}, 43: {"test.accuracy": 0.55}, 44: {"test.accuracy": 0.556}}
    result = seed_spread(per_seed, 42, "classification", "mlp", tmp_path / "task")
    assert result["nearest_model"]["model"] == "tree" and result["models_within_range"] == ["forest"]
    assert result["ranking_holds_over_seeds"] is False
