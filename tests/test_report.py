"""Report pieces: number formatting, Markdown tables, model tables with baselines, best first."""

import json

import pandas as pd

from xtalml.evaluation.report import (accuracy_by_group, fmt, load_model_metrics, markdown_table, model_table,
                                      seed_spread_table)


def _metrics(acc, seconds, cv=None):
    m = {"test": {"accuracy": acc, "top3_accuracy": acc + 0.1, "top5_accuracy": acc + 0.2, "balanced_accuracy": acc / 2,
                  "f1_macro": acc / 3, "f1_weighted": acc / 4},
         "train_seconds": seconds, "baselines": {"most_frequent": {"accuracy": 0.1}, "stratified": {"accuracy": 0.05}}}
    if cv:
        m["cv"] = {"accuracy_mean": cv, "accuracy_std": 0.01}
    return m


def test_model_table_lists_models_and_baselines_best_first():
    results = {"knn": _metrics(0.4, 0.2, 0.38), "random_forest": _metrics(0.6, 3.0, 0.55), "mlp_classifier": _metrics(0.05, 9.0)}
    table = model_table(results)
    assert table["model"].tolist() == ["random_forest", "knn", "baseline: most frequent", "mlp_classifier", "baseline: stratified"]
    assert table.loc[0, "CV accuracy (train)"] == "0.550 ± 0.010" and table.loc[0, "train s"] == 3.0
    results["knn"]["data"] = {"refitted_on_train_and_val_rows": 500}
    results["knn"]["validation"] = {"accuracy": 0.37, "n": 100}
    table = model_table(results).set_index("model")
    assert table.loc["knn", "fitted on"] == "train + val" and table.loc["random_forest", "fitted on"] == "train"
    assert table.loc["knn", "val accuracy"] == 0.37


def test_the_report_reads_only_the_configured_runs(tmp_path):
    for task, model in (("sg", "knn"), ("sg", "svm"), ("vol", "tabnet")):
        (tmp_path / task).mkdir(exist_ok=True)
        (tmp_path / task / f"{model}.json").write_text(json.dumps({"task": task, "test": {"accuracy": 0.5}}))
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "summary.json").write_text("{}")  # not a model run
    assert {t: set(m) for t, m in load_model_metrics(tmp_path).items()} == {"sg": {"knn", "svm"}, "vol": {"tabnet"}}
    runs = [{"task": "sg", "model": "svm"}, {"task": "vol", "model": "tabnet"}]  # knn taken out of train.matrix
    assert {t: set(m) for t, m in load_model_metrics(tmp_path, runs).items()} == {"sg": {"svm"}, "vol": {"tabnet"}}


def test_regression_table_sorts_by_error():
    results = {m: {"test": {"mae": mae, "rmse": 1, "r2": 0.9, "mape": 3}, "train_seconds": 1,
                   "baselines": {"analytic_volume": {"mae": 2e-4, "rmse": 3e-4, "r2": 1.0, "mape": 1e-4}}}
               for m, mae in (("tabnet", 38.0), ("wide_deep", 0.9))}
    table = model_table(results)
    assert table["model"].tolist() == ["baseline: analytic volume", "wide_deep", "tabnet"]
    text = markdown_table(table)
    assert "| baseline: analytic volume | 2.00e-04 |" in text and text.count("\n") == 4


def test_fmt_and_markdown_escape():
    assert fmt(0.12345) == "0.123" and fmt(12345) == "12,345" and fmt(None) == "–" and fmt(float("nan")) == "–"
    assert "a\\|b" in markdown_table(pd.DataFrame({"x": ["a|b"]}))


def test_accuracy_by_group_uses_the_true_label_group():
    frame = pd.DataFrame({"true": ["225", "225", "14", "other"], "predicted:rf": ["225", "221", "14", "14"]})
    from xtalml.evaluation.report import crystal_system_of

    table = accuracy_by_group(frame, crystal_system_of)
    assert table.loc["cubic", "rows"] == 2 and table.loc["cubic", "rf"] == 0.5
    assert table.loc["monoclinic", "rf"] == 1.0 and table.loc["other", "rf"] == 0.0


def test_lattice_table_sets_summed_space_groups_beside_the_direct_model():
    from xtalml.evaluation.report import lattice_table

    sg = _metrics(0.45, 1.0)
    sg["test"] |= {"bravais_accuracy_from_sg_proba": 0.58, "stage1_bravais_accuracy": 0.56}
    table = lattice_table({"bravais_from_composition": {"lightgbm": _metrics(0.57, 1.0)},
                           "sg_from_composition": {"two_stage": sg, "knn": _metrics(0.3, 1.0)}})
    assert table[["model", "how", "Bravais accuracy"]].values.tolist() == [
        ["lightgbm", "direct Bravais-lattice model", 0.57],
        ["two_stage", "sum of its space-group probabilities", 0.58], ["two_stage", "its own stage 1", 0.56]]


def test_the_seed_spread_table_names_a_model_within_the_range():
    run = {"task": "vol", "model": "wide_deep", "nearest_model": {"metric": "test.mae", "model": "lgbm", "test": 0.5,
                                                                  "gap": 0.1},
           "metrics": {"test.mae": {"per_seed": {"42": 0.55, "43": 0.65}, "spread": 0.1}},
           "ranking_holds_over_seeds": False, "models_within_range": ["mlp"]}
    table = seed_spread_table([run, {**run, "model": "tabnet", "ranking_holds_over_seeds": True}])
    assert table.columns.tolist() == ["task", "model", "metric", "seed 42", "seed 43", "spread", "nearest model", "gap",
                                      "ranking holds"]
    assert table["ranking holds"].tolist() == ["no: mlp", "yes"] and table.loc[0, "nearest model"] == "lgbm (0.500)"
