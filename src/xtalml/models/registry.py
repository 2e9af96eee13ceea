"""Build any model of the project from its Hydra config section."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

CLASSICAL = ("logistic_regression", "random_forest", "decision_tree", "adaboost", "svm", "knn")
TORCH = ("mlp_classifier", "mlp_regressor", "wide_deep", "tabnet", "two_stage")
# keys of a model section that configure the run, not the estimator
RUN_KEYS = ("kind", "cv_folds", "cv_max_rows", "max_train_rows", "wide_feature")


def estimator_params(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator's own hyperparameters from a model config section."""
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k not in RUN_KEYS}


def build_model(name: str, cfg: Mapping[str, Any], seed: int, feature_names: Sequence[str] = ()):
    """An unfitted estimator with fit / predict (/ predict_proba); classical ones scale inside a Pipeline."""
    params = estimator_params(cfg)
    if name in CLASSICAL:
        if name == "logistic_regression":
            est = LogisticRegression(random_state=seed, **params)
        elif name == "random_forest":
            est = RandomForestClassifier(random_state=seed, **params)
        elif name == "decision_tree":
            est = DecisionTreeClassifier(random_state=seed, **params)
        elif name == "adaboost":
            depth = params.pop("base_max_depth", 1)
            est = AdaBoostClassifier(DecisionTreeClassifier(max_depth=depth, random_state=seed), random_state=seed, **params)
        elif name == "svm":
            est = SVC(random_state=seed, **params)
        else:
            est = KNeighborsClassifier(**params)
        return Pipeline([("scale", StandardScaler()), ("model", est)])  # the scaler is fitted on train only
    if name == "mlp_classifier":
        from xtalml.models.mlp import MLPClassifier
        return MLPClassifier(seed=seed, **params)
    if name == "mlp_regressor":
        from xtalml.models.mlp import MLPRegressor
        return MLPRegressor(seed=seed, **params)
    if name == "wide_deep":
        from xtalml.models.wide_deep import WideDeepRegressor
        wide = cfg.get("wide_feature", "geom_volume_analytic")
        if wide not in feature_names:
            raise ValueError(f"wide_deep needs the feature {wide!r} (models.wide_deep.wide_feature) among the task's features")
        return WideDeepRegressor(wide_index=list(feature_names).index(wide), seed=seed, **params)
    if name == "tabnet":
        from xtalml.models.tabnet import TabNetVolumeRegressor
        return TabNetVolumeRegressor(seed=seed, **params)
    if name == "two_stage":
        from xtalml.models.two_stage import TwoStageClassifier
        return TwoStageClassifier(seed=seed, **params)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(CLASSICAL + TORCH)}")
