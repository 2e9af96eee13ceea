"""Every model follows the scikit-learn interface, is seeded, and its metrics and baselines compute what they say."""

import numpy as np
import pandas as pd
import pytest
import torch

from xtalml.evaluation.baselines import analytic_volume_baseline, classifier_baselines, elemental_volume_baseline
from xtalml.evaluation.metrics import classification_metrics, regression_metrics, scores_of, top_k
from xtalml.features.composition import TOKEN_WIDTH, element_tokens
from xtalml.models.neighbours import PrototypeNeighbours, stoichiometry_patterns
from xtalml.models.registry import (REGISTRY, build_model, model_spec, models_for, packages, predicts_in_threads,
                                    task_inputs, uses_torch, writes_loss_history)
from xtalml.models.lattices import lattice_of, lattice_proba
from xtalml.training import labels_and_scores, prediction_threads

FAST = {"max_epochs": 3, "patience": 2}
# each registered model on a tiny problem: the fewest rounds, epochs or trees that still fit something
TINY = {"random_forest": {"n_estimators": 5}, "adaboost": {"n_estimators": 5}, "mlp_classifier": FAST,
        "lightgbm": {"n_estimators": 5, "min_child_samples": 2, "n_jobs": 1},
        "lightgbm_regressor": {"n_estimators": 20, "min_child_samples": 2, "n_jobs": 1},
        "two_stage": {"base": "lightgbm", "base_params": {"n_estimators": 5, "min_child_samples": 2, "n_jobs": 1}},
        "mlp_regressor": {"max_epochs": 2, "patience": 2}, "tabnet": {"max_epochs": 2, "patience": 2, "batch_size": 64,
        "virtual_batch_size": 32}, "wide_deep": {"max_epochs": 2, "patience": 2, "wide_feature": "v"},
        "composition_attention": {"max_epochs": 2, "patience": 2, "batch_size": 32, "offset_feature": "v"}}


def _classification(n=240, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(["14", "62", "225", "2", "15"])[rng.integers(0, 5, n)]
    X = rng.normal(size=(n, 6)) + np.array([int(v) for v in labels])[:, None] / 50
    return X, labels


def _volumes(n=240, seed=0):
    rng = np.random.default_rng(seed)
    cells = rng.uniform(3, 10, size=(n, 3))
    volume = cells.prod(axis=1)
    return np.column_stack([cells, volume]), volume


def _volume_inputs(name, n=240, seed=0):
    """(X, volumes, feature names) for a regressor: cell edges and volume, plus element tokens where it reads them."""
    X, y = _volumes(n, seed)
    names = ["a", "b", "c", "v"]
    if "element_tokens" in model_spec(name).input_groups:
        elements = np.array(["O", "Fe", "Si", "Mg", "Al", "Ca", "Na", "K"])
        rng = np.random.default_rng(seed)
        formulas = [f"{a}{rng.integers(1, 4)}{b}{rng.integers(1, 4)}" for a, b in
                    (rng.choice(elements, 2, replace=False) for _ in range(n))]
        tokens = element_tokens(formulas)
        X, names = np.column_stack([tokens.to_numpy(), X]), [*tokens.columns, *names]
    return X, y, names


def _fit(name, model, X, y, X_val, y_val):
    return model.fit(X, y, eval_set=[(X_val, y_val)]) if model_spec(name).uses_validation_rows else model.fit(X, y)


@pytest.mark.parametrize("name", models_for("classification"))
def test_classifiers_fit_predict_and_rank(name):
    X, y = _classification()
    model = _fit(name, build_model(name, TINY.get(name, {}), seed=0), X[:200], y[:200], X[200:], y[200:])
    predicted = model.predict(X[200:])
    assert predicted.shape == (40,) and set(predicted.astype(str)) <= set(y)
    scores = scores_of(model, X[200:])
    assert scores.shape == (40, 5)
    if hasattr(model, "predict_proba") and name != "svm":
        assert np.allclose(model.predict_proba(X[200:]).sum(axis=1), 1)
    if model_spec(name).labels_from_proba:  # evaluation then derives the labels from one predict_proba
        np.testing.assert_array_equal(predicted, np.asarray(model.classes_)[model.predict_proba(X[200:]).argmax(axis=1)])
        labels, proba = labels_and_scores(model, name, X[200:])
        np.testing.assert_array_equal(labels, predicted)
        np.testing.assert_array_equal(proba, scores)
    if predicts_in_threads(name, TINY.get(name, {})):  # blocks of rows in threads: the same labels and scores
        labels, threaded = labels_and_scores(model, name, X[200:], threads=2)
        np.testing.assert_array_equal(labels, predicted)
        np.testing.assert_array_equal(threaded, scores)


@pytest.mark.parametrize("name", models_for("regression"))
def test_regressors_predict_volumes_in_cubic_angstrom(name):
    X, y, names = _volume_inputs(name)
    model = build_model(name, TINY[name], seed=0, feature_names=names)
    model.fit(X[:200], y[:200], eval_set=[(X[200:], y[200:])])
    predicted = model.predict(X[200:])
    assert predicted.shape == (40,) and np.isfinite(predicted).all()  # two epochs: shapes and units, not accuracy
    assert len(model.history_) >= 1 and {"train_loss", "val_loss"} <= model.history_[0].keys()
    if model_spec(name).feature_importance:
        assert model.feature_importances_.shape == (len(names),)


@pytest.mark.parametrize("name", ["mlp_classifier", "wide_deep", "lightgbm", "two_stage", "composition_attention"])
def test_models_are_repeatable(name):
    if name in models_for("regression"):
        X, y, names = _volume_inputs(name)
        fit = lambda: build_model(name, TINY[name], 3, names).fit(X, y).predict(X)  # noqa: E731
    else:
        X, y = _classification()
        fit = lambda: _fit(name, build_model(name, TINY[name], 3), X[:200], y[:200], X[200:], y[200:]).predict_proba(X)  # noqa: E731
    np.testing.assert_allclose(fit(), fit(), rtol=0, atol=1e-6)


def test_lightgbm_stops_early_on_the_validation_rows():
    X, y = _classification(n=600)
    model = build_model("lightgbm", {"n_estimators": 400, "learning_rate": 0.3, "patience": 5, "n_jobs": 1}, 0)
    model.fit(X[:400], y[:400], eval_set=[(X[400:], y[400:])])
    best = int(np.nanargmin([h["val_loss"] for h in model.history_]))
    assert model.best_iteration_ == best + 1 and len(model.history_) == best + 1 + 5 < 400


def test_two_stage_combines_lattices_softly_and_never_contradicts_itself():
    X, y = _classification(n=400)
    cfg = {**TINY["two_stage"], "base_params": {"n_estimators": 20, "min_child_samples": 2, "n_jobs": 1}}
    soft = build_model("two_stage", cfg, seed=0).fit(X[:300], y[:300], eval_set=[(X[300:], y[300:])])
    proba = soft.predict_proba(X)
    assert np.allclose(proba.sum(axis=1), 1)
    # P(sg) = Σ_b P(b) P(sg | b): summing a lattice's groups gives back stage 1's lattice probability
    names, summed = lattice_proba(proba, soft.classes_)
    stage1 = soft.predict_lattice_proba(X)
    np.testing.assert_allclose(summed, stage1[:, [list(soft.lattice_classes_).index(n) for n in names]], atol=1e-9)
    hard = build_model("two_stage", {**cfg, "combine": "hard"}, seed=0).fit(X[:300], y[:300], eval_set=[(X[300:], y[300:])])
    top_lattice = hard.lattice_classes_[hard.predict_lattice_proba(X).argmax(axis=1)]
    assert all(lattice_of(sg) == lat for sg, lat in zip(hard.predict(X), top_lattice))
    assert ((hard.predict_proba(X) > 0).sum(axis=1) < (proba > 0).sum(axis=1)).any()
    assert lattice_of("14") == "mP" and lattice_of("other") == "other"


def _tokens(formulas):
    tokens = element_tokens(formulas).to_numpy()
    return tokens[:, :TOKEN_WIDTH], tokens[:, TOKEN_WIDTH:]


def test_prototype_neighbours_vote_among_formulas_of_the_same_pattern_by_element_likeness():
    # perovskite-like ABO3 rows: the big A cations (Ba, Sr) in one group, the small ones (Mg, Zn) in another
    train = ["BaTiO3", "SrTiO3", "BaZrO3", "MgTiO3", "ZnTiO3", "MgGeO3", "MgAl2O4", "ZnAl2O4"]
    y = ["221", "221", "221", "148", "148", "148", "227", "227"]
    model = PrototypeNeighbours(k=2, tau=1.0).fit(*_tokens(train), y)
    queries = ["SrZrO3", "CoTiO3", "Li3N", "Xx2O"]  # two ABO3; a pattern no training row has; a formula that does not parse
    proba, covered = model.predict_proba(*_tokens(queries))
    assert covered.tolist() == [True, True, False, False]
    classes = list(model.classes_)
    assert proba[0].argmax() == classes.index("221") and proba[1].argmax() == classes.index("148")
    assert np.allclose(proba[:2].sum(axis=1), 1) and not proba[2:].any()
    assert stoichiometry_patterns(*_tokens(["TiSrO3"]))[0] == [(0.2, 0.2, 0.6)]  # Sr, Ti, O: by electronegativity


def test_two_stage_blends_in_neighbours_on_covered_rows_only():
    X, y = _classification(n=300)
    rng = np.random.default_rng(0)
    a, b = rng.choice(["Ba", "Sr", "Ca", "Mg"], 300), rng.choice(["Ti", "Zr", "Ge", "Sn"], 300)
    formulas = [f"{a[i]}{b[i]}O3" if i % 3 else f"{a[i]}2{b[i]}O5" for i in range(300)]
    formulas[-1] = "".join(f"{el}1" for el in ["H", "Li", "Be", "B", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "P",
                                               "S", "Cl", "K", "Ca"])  # 17 elements: no tokens, no neighbours
    tokens = element_tokens(formulas)
    names = [*"abcdef", *tokens.columns]
    X = np.column_stack([X, tokens.to_numpy()])
    cfg = {"base": "random_forest", "base_params": {"n_estimators": 5, "n_jobs": 1},
           "neighbours": {"weight": 0.5, "k": 5, "tau": 1.0}}
    blended = build_model("two_stage", cfg, 0, names).fit(X[:200], y[:200], eval_set=[(X[200:250], y[200:250])])
    plain = build_model("two_stage", {**cfg, "neighbours": {"weight": 0}}, 0, names).fit(X[:200], y[:200], eval_set=[(X[200:250], y[200:250])])
    assert blended.members_[0][0].n_features_in_ == 6  # the stages read the task's features, not the tokens
    p, q = blended.predict_proba(X[200:]), plain.predict_proba(X[200:])
    assert np.allclose(p.sum(axis=1), 1)
    _, covered = blended.neighbours_.predict_proba(*_tokens(formulas[200:]))
    assert covered[:-1].all() and not covered[-1]
    assert not np.allclose(p[:-1], q[:-1]) and np.allclose(p[-1], q[-1])
    with pytest.raises(ValueError, match="combine: soft"):
        build_model("two_stage", {**cfg, "combine": "hard"}, 0, names).fit(X[:200], y[:200], eval_set=[(X[200:250], y[200:250])])
    with pytest.raises(ValueError, match="element_tokens"):
        build_model("two_stage", cfg, 0, list("abcdef")).fit(X[:200, :6], y[:200])
    with pytest.raises(ValueError, match="unknown keys"):
        build_model("two_stage", {**cfg, "neighbours": {"weight": 0.2, "kk": 3}}, 0, names).fit(X[:200], y[:200])


def test_two_stage_ensembles_over_seeds():
    X, y = _classification()
    model = build_model("two_stage", {**TINY["two_stage"], "seeds": 2}, seed=0).fit(X[:200], y[:200], eval_set=[(X[200:], y[200:])])
    assert len(model.members_) == 2 and np.allclose(model.predict_proba(X).sum(axis=1), 1)


def test_two_stage_base_overrides_beat_the_base_learners_section():
    X, y = _classification()
    y = np.where((y == "14") & (np.arange(len(y)) % 2 == 0), "11", y)  # two groups of lattice mP: it gets a forest
    cfg = {"base": "random_forest", "base_params": {"n_estimators": 3, "max_leaf_nodes": 8, "cv_folds": 5},
           "base_overrides": {"max_leaf_nodes": None}}
    stage1, experts = build_model("two_stage", cfg, seed=0).fit(X[:200], y[:200]).members_[0]
    forests = [stage1, *(e for e in experts.values() if hasattr(e, "named_steps"))]
    assert len(forests) > 1
    assert all(f.named_steps["model"].max_leaf_nodes is None and f.named_steps["model"].n_estimators == 3 for f in forests)


def test_two_stage_fitted_in_two_processes_is_the_same_model():
    X, y = _classification()
    even = np.arange(len(y)) % 2 == 0
    y = np.where((y == "14") & even, "11", np.where((y == "15") & even, "12", y))  # lattices mP and mC: two experts
    cfg = {"base": "random_forest", "base_params": {"n_estimators": 5, "n_jobs": 1}}
    one, two = (build_model("two_stage", {**cfg, "n_jobs": n}, seed=0).fit(X[:200], y[:200]) for n in (1, 2))
    assert sum(hasattr(e, "named_steps") for e in two.members_[0][1].values()) == 2
    assert list(one.members_[0][1]) == list(two.members_[0][1])
    np.testing.assert_array_equal(one.predict_proba(X[200:]), two.predict_proba(X[200:]))
    threaded = labels_and_scores(two, "two_stage", X[200:], threads=prediction_threads("two_stage", {**cfg, "predict_jobs": 2}))
    np.testing.assert_array_equal(threaded[1], one.predict_proba(X[200:]))


def test_cross_validation_and_the_final_fit_give_the_same_in_two_processes():
    from xtalml.tasks import TaskData
    from xtalml.evaluation.cross_validation import cross_validate
    from xtalml.training import fit_and_evaluate

    X, y = _classification()
    frame = pd.DataFrame({"reduced_formula": [f"X{i % 80}" for i in range(len(y))]})
    task = TaskData("t", "classification", "label", list("abcdef"), X={"train": X}, y={"train": y},
                    frames={"train": frame})
    model = build_model("random_forest", TINY["random_forest"], seed=0)
    one, two = (cross_validate(model, task, 3, None, 0, n_jobs=n) for n in (1, 2))
    assert one == two and one["folds"] == 3 and 0 < one["accuracy_mean"] < 1
    # the final fit runs as one more job of the same processes: the same folds and the same fitted model
    task.X["test"], task.y["test"], task.frames["test"] = X[:50], y[:50], frame[:50]
    runs = [fit_and_evaluate(build_model("random_forest", TINY["random_forest"], seed=0), "random_forest",
                             {"cv_folds": 3, "cv_jobs": n}, task, 0, cross_validation=True) for n in (1, 2)]
    assert runs[0][0]["cv"] == runs[1][0]["cv"] == one
    np.testing.assert_array_equal(runs[0][2].predict_proba(X), runs[1][2].predict_proba(X))
    # without cross-validation, fit_jobs threads build the trees: the same forest, predicted on one thread
    plain = [fit_and_evaluate(build_model("random_forest", {**TINY["random_forest"], "n_jobs": None}, seed=0),
                              "random_forest", {"fit_jobs": n}, task, 0)[2] for n in (1, 2)]
    assert plain[1].named_steps["model"].n_jobs is None
    np.testing.assert_array_equal(plain[0].predict_proba(X), plain[1].predict_proba(X))
    np.testing.assert_array_equal(plain[0].predict_proba(X), runs[0][2].predict_proba(X))


def test_capabilities_are_declared_in_the_registry():
    for name, spec in REGISTRY.items():
        assert spec.task_kinds and set(spec.task_kinds) <= {"classification", "regression"}, name
    assert not model_spec("random_forest").uses_validation_rows and model_spec("random_forest").cross_validates
    assert model_spec("lightgbm").uses_validation_rows and not model_spec("lightgbm").torch
    assert uses_torch("two_stage", {"base": "mlp_classifier"}) and not uses_torch("two_stage", {"base": "lightgbm"})
    assert writes_loss_history("two_stage", {"base": "lightgbm"}) and not writes_loss_history("two_stage", {"base": "random_forest"})
    assert packages("two_stage", {"base": "lightgbm"}) == ("lightgbm",) and "torch" in packages("tabnet", {})
    assert set(models_for("regression")) == {"lightgbm_regressor", "mlp_regressor", "wide_deep", "tabnet",
                                             "composition_attention"}
    assert model_spec("composition_attention").input_groups == ("element_tokens",)
    # predict_jobs applies where the model, or the base learner its config names, predicts rows outside the GIL
    assert prediction_threads("svm", {"predict_jobs": 2}) == 2 and prediction_threads("knn", {"predict_jobs": 2}) == 1
    assert prediction_threads("two_stage", {"base": "random_forest", "predict_jobs": 2}) == 2
    assert prediction_threads("two_stage", {"base": "lightgbm", "predict_jobs": 2}) == 1
    assert all(not spec.input_groups for name, spec in REGISTRY.items() if name != "composition_attention")
    assert task_inputs("two_stage") == {"input_groups": (), "optional_groups": ("element_tokens",)}


def test_metrics_and_baselines():
    classes = np.array(["a", "b", "c"])
    scores = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    assert top_k(np.array(["b", "c", "c"]), scores, classes, 2) == pytest.approx(2 / 3)
    m = classification_metrics(["a", "b", "b", "c"], ["a", "b", "c", "c"])
    assert m["accuracy"] == 0.75 and m["per_class"]["b"]["recall"] == 0.5
    r = regression_metrics([100.0, 200.0], [110.0, 190.0])
    assert r["mae"] == 10 and r["rmse"] == 10 and r["mape"] == pytest.approx(7.5)
    base = classifier_baselines(["x"] * 8 + ["y"] * 2, ["x", "y"], seed=0)
    assert base["most_frequent"]["accuracy"] == 0.5 and "top3_accuracy" in base["stratified"]
    assert analytic_volume_baseline([10.0, 20.0], [10.0, 20.0])["analytic_volume"]["mae"] == 0
    elemental = elemental_volume_baseline([10.0, 20.0], [12.0, 24.0], [30.0], [36.0])["elemental_volume"]
    assert elemental["scale"] == pytest.approx(1.2) and elemental["mae"] == pytest.approx(0)


def test_boosting_with_an_offset_feature_learns_the_correction_and_extrapolates_with_it():
    X, volume = _volumes()
    y = 0.8 * volume  # the target is the estimate (column 3) times a constant correction
    params = {**TINY["lightgbm_regressor"], "n_estimators": 50}
    offset = build_model("lightgbm_regressor", {**params, "offset_feature": "v"}, 0, ["a", "b", "c", "v"]).fit(X, y)
    plain = build_model("lightgbm_regressor", params, 0).fit(X, y)
    far = np.array([[20.0, 20.0, 20.0, 8000.0]])  # far beyond the largest training volume (1000)
    assert offset.predict(far)[0] == pytest.approx(6400.0, rel=0.02)
    assert plain.predict(far)[0] < 1000.0  # trees alone stay inside the range of the training targets
    assert np.allclose(offset.predict(X), y, rtol=0.02)


def test_bad_model_configs_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown model 'xgb'"):
        build_model("xgb", {}, 0)
    with pytest.raises(ValueError, match="wide_feature"):
        build_model("wide_deep", {"wide_feature": "geom_volume_analytic"}, 0, ["geom_a"])
    with pytest.raises(ValueError, match="'magpie_mean_GSvolume_pa' .models.lightgbm_regressor.offset_feature"):
        build_model("lightgbm_regressor", {"offset_feature": "magpie_mean_GSvolume_pa"}, 0, ["geom_a"])
    with pytest.raises(ValueError, match="element_tokens feature group"):
        build_model("composition_attention", {}, 0, ["magpie_mean_GSvolume_pa"])
    with pytest.raises(ValueError, match="optimizer 'nadamx'"):
        X, y = _classification()
        build_model("mlp_classifier", {**FAST, "optimizer": "nadamx"}, 0).fit(X, y)


@pytest.mark.parametrize("metric", ["accuracy", "loss"])
def test_mlp_classifier_recipe_stops_on_the_metric_it_is_told(metric):
    X, y = _classification(n=400)
    cfg = {"hidden": [32, 16], "batch_norm": True, "lr_schedule": "plateau", "label_smoothing": 0.1,
           "class_weight": "balanced", "early_stopping_metric": metric, "max_epochs": 12, "patience": 3}
    model = build_model("mlp_classifier", cfg, 0).fit(X[:300], y[:300], eval_set=[(X[300:], y[300:])])
    watched = [h.get("val_metric", h["val_loss"]) for h in model.history_]
    assert ("val_metric" in model.history_[0]) == (metric == "accuracy")
    # the loss recorded beside the metric, from the same pass over the validation rows, is the loss of the kept model
    best = model.history_[model.best_epoch_]["val_loss"]
    loss = model._loss()(model._raw_output(X[300:]), torch.tensor(model.encoder_.transform(y[300:])))
    assert best == pytest.approx(float(loss), rel=1e-5)
    assert model.best_epoch_ == int(np.argmin(watched))
    if metric == "accuracy":  # the kept weights are those of the best validation accuracy
        kept = (model.predict(X[300:]) == y[300:]).mean()
        assert kept == pytest.approx(1 - min(watched), abs=1e-6)


def test_mlp_regressor_stops_on_validation_mae_in_target_units():
    X, y = _volumes()
    cfg = {"hidden": [16], "batch_norm": True, "lr_schedule": "cosine", "early_stopping_metric": "mae",
           "max_epochs": 6, "patience": 6}
    model = build_model("mlp_regressor", cfg, 0).fit(X[:200], y[:200], eval_set=[(X[200:], y[200:])])
    best = model.history_[model.best_epoch_]["val_metric"]
    assert best == pytest.approx(np.abs(model.predict(X[200:]) - y[200:]).mean(), rel=1e-4)


def test_polymorph_accuracy_counts_any_label_of_the_formula_in_the_rows():
    from xtalml.evaluation.metrics import polymorph_accuracy

    formulas = ["SiO2", "SiO2", "NaCl", "TiO2"]
    truth, predicted = ["154", "152", "225", "136"], ["152", "152", "221", "141"]
    assert polymorph_accuracy(truth, predicted, formulas) == 0.5  # the first row is right for another SiO2 polymorph


def test_row_caps_subsample_train_and_early_stopping_rows_and_say_so():
    from xtalml.tasks import TaskData
    from xtalml.training import fit_and_evaluate

    X, y = _volumes(n=300)
    parts = {"train": slice(0, 200), "val": slice(200, 260), "test": slice(260, 300)}
    frames = {p: pd.DataFrame({"reduced_formula": [f"X{i}" for i in range(s.start, s.stop)]}) for p, s in parts.items()}
    task = TaskData("t", "regression", "volume", ["a", "b", "c", "v"], X={p: X[s] for p, s in parts.items()},
                    y={p: y[s] for p, s in parts.items()}, frames=frames)
    seen = {}
    model = build_model("lightgbm_regressor", TINY["lightgbm_regressor"], seed=0)
    fit = model.fit
    model.fit = lambda X, y, *, eval_set: seen.update(train=len(X), val=len(eval_set[0][0])) or fit(X, y, eval_set=eval_set)
    result, predicted, _ = fit_and_evaluate(model, "lightgbm_regressor", {"max_train_rows": 150, "max_val_rows": 25}, task, 0)
    assert seen == {"train": 150, "val": 25} and predicted.shape == (40,)
    assert result["data"] == {"model_trained_on_rows": 150, "model_early_stopped_on_val_rows": 25}
    result, _, _ = fit_and_evaluate(build_model("lightgbm_regressor", TINY["lightgbm_regressor"], seed=0),
                                 "lightgbm_regressor", {"max_val_rows": 1000}, task, 0)
    assert result["data"] == {}


def test_composition_attention_reads_each_formula_element_by_element():
    import torch

    X, y, names = _volume_inputs("composition_attention", n=300)
    y = X[:, names.index("v")] * (1.0 + 0.5 * X[:, names.index("element_fraction_0")])  # depends on the composition
    model = build_model("composition_attention", {**TINY["composition_attention"], "max_epochs": 10, "patience": 10}, 0,
                        names)
    batches = model._batches(torch.tensor(X, dtype=torch.float32), torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b.tolist()) == list(range(len(X)))  # every row once per epoch
    model.fit(X[:250], y[:250], eval_set=[(X[250:], y[250:])])
    v = X[:, names.index("v")]
    constant = v[250:] * np.median(y[:250] / v[:250])  # the estimate times the best single correction
    assert np.abs(model.predict(X[250:]) - y[250:]).mean() < 0.5 * np.abs(constant - y[250:]).mean()
    too_many = X[:2].copy()
    too_many[0, :32] = np.nan  # a formula with more elements than the token columns hold
    predicted = model.predict(too_many)
    assert np.isnan(predicted[0]) and np.isfinite(predicted[1]) and predicted[1] > 0


def test_element_tokens_hold_atomic_numbers_and_fractions_sorted_by_z():
    tokens = element_tokens(["Fe2O3", "Xx2O", "".join(f"{el}1" for el in ["H", "Li", "Be", "B", "C", "N", "O", "F",
                             "Na", "Mg", "Al", "Si", "P", "S", "Cl", "K", "Ca"])])
    assert tokens.loc[0, ["element_z_0", "element_z_1", "element_z_2"]].tolist() == [8, 26, 0]
    assert tokens.loc[0, ["element_fraction_0", "element_fraction_1"]].tolist() == pytest.approx([0.6, 0.4])
    assert tokens.loc[1].isna().all() and tokens.loc[2].isna().all()  # a bad formula; 17 elements do not fit in 16


def _task_with_validation_rows(X, y, kind="classification"):
    from xtalml.tasks import TaskData

    parts = {"train": slice(0, 160), "val": slice(160, 200), "test": slice(200, len(y))}
    frames = {p: pd.DataFrame({"reduced_formula": [f"X{i}" for i in range(s.start, s.stop)]}) for p, s in parts.items()}
    return TaskData("t", kind, "label", [f"x{i}" for i in range(X.shape[1])], X={p: X[s] for p, s in parts.items()},
                    y={p: y[s] for p, s in parts.items()}, frames=frames)


def test_refit_scores_validation_on_the_train_fit_then_fits_train_and_validation_rows():
    from xtalml.training import fit_and_evaluate

    X, y = _classification()
    y[160:200] = np.where(np.arange(40) < 5, "227", y[160:200])  # a class only the validation rows have
    task = _task_with_validation_rows(X, y)
    merged = task.with_validation_in_train()
    assert len(merged.y["train"]) == 200 and len(merged.y["val"]) == 0 and len(merged.frames["train"]) == 200
    assert len(task.y["train"]) == 160  # the task itself is unchanged
    cfg = {**TINY["random_forest"], "refit_with_val_rows": True}
    plain, _, plain_model = fit_and_evaluate(build_model("random_forest", cfg, 0), "random_forest", {}, task, 0)
    refit, predicted, model = fit_and_evaluate(build_model("random_forest", cfg, 0), "random_forest", cfg, task, 0)
    assert refit["validation"] == plain["validation"]  # the champion's criterion: the fit on the train rows
    assert refit["data"] == {"refitted_on_train_and_val_rows": 200} and "data" in plain and not plain["data"]
    assert "227" in model.classes_ and "227" not in plain_model.classes_ and len(predicted) == 40


def test_refit_is_refused_for_a_model_that_early_stops_on_the_validation_rows():
    from xtalml.models.registry import early_stops, trained_on_validation_rows
    from xtalml.training import fit_and_evaluate

    assert early_stops("lightgbm", {}) and early_stops("two_stage", {"base": "mlp_classifier"})
    assert not early_stops("random_forest", {}) and not early_stops("two_stage", {"base": "random_forest"})
    assert trained_on_validation_rows("lightgbm", {}) and not trained_on_validation_rows("random_forest", {})
    assert trained_on_validation_rows("random_forest", {"refit_with_val_rows": True})
    # two_stage sees the validation rows only through an early-stopping base or a refit
    assert trained_on_validation_rows("two_stage", {"base": "lightgbm"})
    assert not trained_on_validation_rows("two_stage", {"base": "random_forest"})
    assert trained_on_validation_rows("two_stage", {"base": "random_forest", "refit_with_val_rows": True})
    X, y = _classification()
    cfg = {**TINY["lightgbm"], "refit_with_val_rows": True}
    with pytest.raises(ValueError, match="models.lightgbm.refit_with_val_rows: lightgbm early-stops"):
        fit_and_evaluate(build_model("lightgbm", cfg, 0), "lightgbm", cfg, _task_with_validation_rows(X, y), 0)


def test_wide_offset_starts_from_the_wide_input():
    import numpy as np

    from xtalml.models.wide_deep import WideDeepRegressor

    rng = np.random.default_rng(0)
    X = rng.uniform(1, 3, size=(200, 3))
    analytic = X[:, 0] * X[:, 1] * X[:, 2]
    volume = analytic * np.exp(rng.normal(0, 0.01, len(X)))  # measured volumes scatter about the formula's
    X = np.column_stack([X, analytic])
    fits = {offset: WideDeepRegressor(wide_index=3, wide_offset=offset, widths=(16,), fusion=(8,), max_epochs=3,
                                      patience=3, batch_size=32, seed=0).fit(X, volume) for offset in (False, True)}
    errors = {offset: float(np.abs(model.predict(X) - volume).mean()) for offset, model in fits.items()}
    assert errors[True] < 0.05 * errors[False]


def test_knn_answers_the_same_on_any_number_of_threads():
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    formulas = rng.normal(size=(500, 40)).round(1)
    X, y = np.repeat(formulas, 5, axis=0), rng.integers(0, 6, 2500)  # five polymorphs per formula: exact ties
    queries = formulas[rng.integers(0, 500, 300)] + rng.normal(scale=0.3, size=(300, 40))
    model = build_model("knn", {"n_neighbors": 8, "weights": "distance"}, 0).fit(X, y)
    answers = []
    for threads in (1, 2, 4):  # a plain KNeighborsClassifier changed 10-17 of these 300 answers beyond one thread
        with threadpool_limits(threads):
            answers.append(model.predict(queries))
    assert all((a == answers[0]).all() for a in answers)
