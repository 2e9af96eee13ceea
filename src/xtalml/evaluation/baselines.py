"""Baselines on the same split: most frequent and stratified random classes; analytic and elemental volumes."""

from __future__ import annotations

import numpy as np
from sklearn.dummy import DummyClassifier

from xtalml.evaluation.metrics import classification_metrics, regression_metrics, scores_of


def classifier_baselines(y_train, y_test, seed: int) -> dict:
    """Metrics of DummyClassifier('most_frequent') and DummyClassifier('stratified') fitted on train."""
    out = {}
    dummy_x_train, dummy_x_test = np.zeros((len(y_train), 1)), np.zeros((len(y_test), 1))
    for strategy in ("most_frequent", "stratified"):
        model = DummyClassifier(strategy=strategy, random_state=seed).fit(dummy_x_train, np.asarray(y_train).astype(str))
        out[strategy] = classification_metrics(y_test, model.predict(dummy_x_test), scores_of(model, dummy_x_test),
                                               model.classes_, per_class=False)
    return out


def analytic_volume_baseline(analytic_volume_test, y_test) -> dict:
    """The cell-volume formula from a, b, c, α, β, γ: exact up to rounding of the published cell."""
    return {"analytic_volume": regression_metrics(y_test, analytic_volume_test)}


def elemental_volume_baseline(mean_elemental_volume_train, y_train, mean_elemental_volume_test, y_test) -> dict:
    """Fraction-weighted elemental volume per atom (Magpie GSvolume_pa) times a scale fitted on train."""
    v_train = np.asarray(mean_elemental_volume_train, float)
    scale = float(np.dot(v_train, np.asarray(y_train, float)) / np.dot(v_train, v_train))  # least squares, no intercept
    metrics = regression_metrics(y_test, scale * np.asarray(mean_elemental_volume_test, float))
    return {"elemental_volume": {**metrics, "scale": scale}}
