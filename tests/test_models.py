"""Every model follows the scikit-learn interface, is seeded, and its metrics and baselines compute what they say."""

import numpy as np
import pytest

from xtalml.evaluation.baselines import analytic_volume_baseline, classifier_baselines, elemental_volume_baseline
from xtalml.evaluation.metrics import classification_metrics, regression_metrics, scores_of, top_k
from xtalml.models.registry import CLASSICAL, build_model
from xtalml.models.two_stage import lattice_of

FAST = {"max_epochs": 3, "patience": 2}


def _classification(n=240, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(["14", "62", "225", "2"])[rng.integers(0, 4, n)]
    X = rng.normal(size=(n, 6)) + np.array([int(v) for v in labels])[:, None] / 50
    return X, labels


def _volumes(n=240, seed=0):
    rng = np.random.default_rng(seed)
    cells = rng.uniform(3, 10, size=(n, 3))
    volume = cells.prod(axis=1)
    return np.column_stack([cells, volume]), volume


@pytest.mark.parametrize("name", [*CLASSICAL, "mlp_classifier", "two_stage"])
def test_classifiers_fit_predict_and_rank(name):
    X, y = _classification()
    cfg = {"n_estimators": 5} if name in ("random_forest", "adaboost") else dict(FAST) if name in ("mlp_classifier", "two_stage") else {}
    model = build_model(name, cfg, seed=0)
    model.fit(X[:200], y[:200], X[200:], y[200:]) if name in ("mlp_classifier", "two_stage") else model.fit(X[:200], y[:200])
    predicted = model.predict(X[200:])
    assert predicted.shape == (40,) and set(predicted.astype(str)) <= set(y)
    scores = scores_of(model, X[200:])
    assert scores.shape == (40, 4)
    if hasattr(model, "predict_proba") and name != "svm":
        assert np.allclose(model.predict_proba(X[200:]).sum(axis=1), 1)


@pytest.mark.parametrize("name", ["mlp_regressor", "wide_deep", "tabnet"])
def test_regressors_predict_volumes_in_cubic_angstrom(name):
    X, y = _volumes()
    cfg = {"max_epochs": 2, "patience": 2, **({"batch_size": 64, "virtual_batch_size": 32} if name == "tabnet" else {})}
    model = build_model(name, {**cfg, "wide_feature": "v"}, seed=0, feature_names=["a", "b", "c", "v"])
    model.fit(X[:200], y[:200], X[200:], y[200:])
    predicted = model.predict(X[200:])
    assert predicted.shape == (40,) and np.isfinite(predicted).all()  # two epochs: shapes and units, not accuracy
    assert len(model.history_) >= 1 and {"train_loss", "val_loss"} <= model.history_[0].keys()
    if name == "tabnet":
        assert model.feature_importances_.shape == (4,)


@pytest.mark.parametrize("name", ["mlp_classifier", "wide_deep"])
def test_torch_models_are_repeatable(name):
    if name == "wide_deep":
        X, y = _volumes()
        fit = lambda: build_model(name, {**FAST, "wide_feature": "v"}, 3, ["a", "b", "c", "v"]).fit(X, y).predict(X)  # noqa: E731
    else:
        X, y = _classification()
        fit = lambda: build_model(name, FAST, 3).fit(X, y).predict_proba(X)  # noqa: E731
    np.testing.assert_allclose(fit(), fit(), rtol=0, atol=1e-6)


def test_two_stage_restricts_space_groups_to_the_predicted_lattice():
    X, y = _classification()
    model = build_model("two_stage", {**FAST, "restrict_to_lattice": True}, seed=0).fit(X, y)
    lattice = model.lattice_model_.classes_[model.predict_lattice_proba(X).argmax(axis=1)]
    predicted = model.predict(X)
    assert all(lattice_of(sg) == lat for sg, lat in zip(predicted, lattice))
    assert lattice_of("14") == "mP" and lattice_of("other") == "other"


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


def test_bad_model_configs_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown model 'xgb'"):
        build_model("xgb", {}, 0)
    with pytest.raises(ValueError, match="wide_feature"):
        build_model("wide_deep", {"wide_feature": "geom_volume_analytic"}, 0, ["geom_a"])
    with pytest.raises(ValueError, match="optimizer 'nadamx'"):
        X, y = _classification()
        build_model("mlp_classifier", {**FAST, "optimizer": "nadamx"}, 0).fit(X, y)
