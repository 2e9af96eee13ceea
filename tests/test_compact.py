"""Compact champions: the same predictions as the fitted scikit-learn and torch models, memory-mapped on load."""

import json

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from conftest import CHOICE
from xtalml.models.compact import CompactForest, compact_lattice, load_compact, save_compact, to_compact
from xtalml.models.registry import model_spec
from xtalml.serving import write_serving_models

FOREST = model_spec("random_forest").compact  # the form its registry entry names


def _data(n=400, features=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    labels = np.array(["225", "221", "14", "62", "194"])
    y = labels[(X[:, 0] > 0).astype(int) + 2 * (X[:, 1] > 0.5) + (X[:, 2] > 1.2)]
    return X, y


def test_forest_classifier_and_pipeline_give_sklearns_probabilities(tmp_path):
    X, y = _data()
    Xq = _data(seed=1)[0] * 1.5  # queries beyond the training range too
    for model in (RandomForestClassifier(n_estimators=15, random_state=0).fit(X, y),
                  make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=15, random_state=0)).fit(X, y)):
        compact = to_compact(FOREST, model)
        assert isinstance(compact, CompactForest) and list(compact.classes_) == list(model.classes_)
        np.testing.assert_allclose(compact.predict_proba(Xq), model.predict_proba(Xq), rtol=0, atol=1e-12)
        save_compact({"model": compact}, tmp_path / "forest.joblib")
        loaded = load_compact(tmp_path / "forest.joblib")["model"]
        assert not loaded.threshold.flags.writeable  # memory-mapped, read-only
        assert (loaded.predict(Xq) == model.predict(Xq)).all()


def test_missing_values_follow_the_side_sklearn_learned():
    X, y = _data()
    X[::7, 0] = np.nan
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    Xq = _data(seed=2)[0]
    Xq[::3, 0] = np.nan
    np.testing.assert_allclose(to_compact(FOREST, model).predict_proba(Xq), model.predict_proba(Xq), atol=1e-12)


def test_forest_regressors_single_and_multi_output():
    X, _ = _data()
    Xq = _data(seed=3)[0]
    single = RandomForestRegressor(n_estimators=12, min_samples_leaf=2, random_state=0).fit(X, X @ [1, 2, 0, 0, 1, 0])
    multi = RandomForestRegressor(n_estimators=12, random_state=0).fit(X, np.column_stack([X[:, 0] ** 2, X[:, 1]]))
    for model in (single, multi):
        np.testing.assert_allclose(to_compact(FOREST, model).predict(Xq), model.predict(Xq), rtol=1e-12)


def test_models_without_a_compact_form_are_served_as_they_are():
    X, y = _data()
    assert to_compact(FOREST, LogisticRegression(max_iter=200).fit(X, y)) is None  # the form cannot hold it
    assert model_spec("logistic_regression").compact is None and model_spec("lightgbm").compact is None
    with pytest.raises(TypeError, match="only a StandardScaler"):
        CompactForest.from_sklearn(make_pipeline(MinMaxScaler(), RandomForestClassifier(n_estimators=2)).fit(X, y))


def test_two_stage_with_neighbours_matches_the_fitted_model():
    from xtalml.models.two_stage import TwoStageClassifier

    rng = np.random.default_rng(0)
    n = 300
    z = np.column_stack([rng.choice([8, 11, 17, 26], n), rng.choice([12, 20, 38], n), np.zeros(n)])
    fraction = np.column_stack([np.full(n, 0.5), np.full(n, 0.5), np.zeros(n)])
    fraction[::4] = [0.4, 0.6, 0.0]
    X = np.column_stack([rng.normal(size=(n, 4)), z, fraction])
    y = np.array(["225", "221", "62", "14", "194", "166"])[(X[:, 0] > 0) + 2 * (X[:, 1] > 0) + (X[:, 2] > 1)]
    model = TwoStageClassifier(RandomForestClassifier(n_estimators=8), neighbours={"weight": 0.3, "k": 5, "tau": 1.0},
                               feature_index=(0, 1, 2, 3), token_index=tuple(range(4, 10))).fit(X, y)
    compact = to_compact(model_spec("two_stage").compact, model)
    assert isinstance(model.neighbours_.groups_, dict)  # the fitted model is left as it was
    np.testing.assert_allclose(compact.predict_proba(X[:80]), model.predict_proba(X[:80]), atol=1e-12)
    assert (compact.predict(X[80:]) == model.predict(X[80:])).all()


def test_attention_forward_in_numpy_matches_torch():
    from xtalml.models.composition_attention import CompositionAttentionRegressor

    rng = np.random.default_rng(0)
    n, width = 200, 4
    z = np.where(rng.random((n, width)) < 0.7, rng.integers(1, 90, (n, width)), 0)
    z[:, 0] = rng.integers(1, 90, n)
    z = -np.sort(-z, axis=1)  # present elements first, as element_tokens writes them
    fraction = np.where(z > 0, rng.random((n, width)) + 0.1, 0.0)
    fraction /= fraction.sum(axis=1, keepdims=True)
    estimate = rng.uniform(8, 30, n)
    X = np.column_stack([z, fraction, estimate])
    X[5, 1] = np.nan  # a row the model cannot read: NaN from both
    y = estimate * rng.uniform(0.8, 1.2, n)
    model = CompositionAttentionRegressor(z_index=tuple(range(width)), fraction_index=tuple(range(width, 2 * width)),
                                          offset_index=2 * width, d_model=16, heads=2, layers=2, ff=32, max_epochs=2,
                                          batch_size=64).fit(X, y)
    np.testing.assert_allclose(to_compact(model_spec("composition_attention").compact, model).predict(X), model.predict(X),
                               rtol=2e-5)


def test_compact_lattice_gives_the_same_cells():
    from xtalml.structures.lattice import LatticeParameterRegressor

    X, _ = _data(200)
    lattices = np.array(["tP", "hP", "mP", "cF"] * 50)
    free = [{"c/a": 1 + abs(x[0]), "b/a": 1 + abs(x[1]), "beta": 95 + abs(x[2])} for x in X]
    free = [{k: v for k, v in f.items() if k in {"tP": ["c/a"], "hP": ["c/a"], "mP": ["b/a", "c/a", "beta"],
                                                 "cF": []}[lat]} for f, lat in zip(free, lattices)]
    model = LatticeParameterRegressor(n_estimators=5).fit(X, lattices, free)
    compact, fitted = compact_lattice(model).predict(X, lattices), model.predict(X, lattices)
    assert [sorted(c) for c in compact] == [sorted(f) for f in fitted]
    assert all(c[k] == pytest.approx(f[k], rel=1e-12) for c, f in zip(compact, fitted) for k in f)


def test_serving_models_load_compact_and_answer_like_the_pickles(models_dir, tmp_path):
    from xtalml.predict import load_predictor, predict_formulas

    manifest = write_serving_models({task: (model, models_dir / task / f"{model}.pkl") for task, model in CHOICE.items()},
                                    models_dir / "predictor")
    assert manifest["sg_from_composition"] == {"model": "random_forest", "form": "compact"}
    assert manifest["volume_per_atom_from_composition"]["form"] == "pickle"  # a ridge: kept as it is
    assert json.loads((models_dir / "predictor" / "manifest.json").read_text()) == manifest
    formulas = ["NaCl", "Fe2O3", "SrTiO3", "Qq"]
    served = load_predictor(models_dir, CHOICE, serving=True)
    assert type(served.bundles["sg_from_composition"]["model"]).__name__ == "CompactForest"
    pickled = load_predictor(models_dir, CHOICE)
    assert predict_formulas(served, formulas) == predict_formulas(pickled, formulas)
    # a model other than the one served comes from its pickle
    (models_dir / "sg_from_composition" / "forest_copy.pkl").write_bytes(
        (models_dir / "sg_from_composition" / "random_forest.pkl").read_bytes())
    other = load_predictor(models_dir, {**CHOICE, "sg_from_composition": "forest_copy"}, serving=True)
    assert type(other.bundles["sg_from_composition"]["model"]).__name__ == "RandomForestClassifier"
