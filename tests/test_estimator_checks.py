"""scikit-learn's own estimator checks on the project's estimators (the scikit-learn pipelines are scikit-learn's).

Checks expected to fail, and why (each is marked xfail with its reason):
- MLPClassifier check_class_weight_classifiers: class_weight takes null or "balanced" only, not a dict of weights.
- TabNetVolumeRegressor check_regressors_train: two epochs (what a unit test affords; 40 pass, in 37 s) do not
  reach the score the check asks.
Not checked: CompositionAttentionRegressor reads element tokens (atomic numbers and fractions at fixed columns), not
arbitrary features; test_models and test_compact fit it on formulas.
"""

import warnings

from sklearn.ensemble import RandomForestClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from xtalml.models.boosting import LightGBMClassifier, LightGBMRegressor
from xtalml.models.mlp import MLPClassifier, MLPRegressor
from xtalml.models.tabnet import TabNetVolumeRegressor
from xtalml.models.two_stage import TwoStageClassifier
from xtalml.models.wide_deep import WideDeepRegressor

ESTIMATORS = [
    LightGBMClassifier(n_estimators=5, min_child_samples=2),
    LightGBMRegressor(n_estimators=50, learning_rate=0.3, min_child_samples=2),
    MLPClassifier(hidden=(16,), max_epochs=30),
    MLPRegressor(hidden=(16,), lr=0.01, max_epochs=60, patience=60),
    WideDeepRegressor(wide_index=0, widths=(16,), fusion=(8,), lr=0.01, batch_size=32, max_epochs=60, patience=60),
    TabNetVolumeRegressor(n_d=4, n_a=4, n_steps=1, batch_size=32, virtual_batch_size=16, max_epochs=2),
    TwoStageClassifier(RandomForestClassifier(n_estimators=3)),  # labels outside 1-230 are lattices of their own
]
EXPECTED = {
    "MLPClassifier": {"check_class_weight_classifiers": "class_weight is null or 'balanced', not a dict"},
    "TabNetVolumeRegressor": {
        "check_regressors_train": "two epochs do not reach the check's score (40 do)"},
}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda estimator: EXPECTED.get(type(estimator).__name__, {}))
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)
