"""Every model of the project, declared once: how to build it from its Hydra config section and what it can do.

Training, conformal calibration, the report and predict ask a model's ModelSpec; none of them tests a name.
Adding a model means one conf/model/<name>.yaml and one entry in REGISTRY.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

# keys of a model section that configure the run, not the estimator
RUN_KEYS = ("cv_folds", "cv_max_rows", "cv_jobs", "fit_jobs", "predict_jobs", "max_train_rows", "max_val_rows",
            "refit_with_val_rows")


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and can do."""

    build: Callable[[dict[str, Any], int, Sequence[str]], Any]  # (estimator params, seed, feature names) → estimator
    task_kinds: tuple[str, ...]  # classification and/or regression
    uses_validation_rows: bool = False  # fit(X, y, eval_set=[(X_val, y_val)]) early-stops on them: they cannot calibrate it
    cross_validates: bool = False  # grouped k-fold over the training rows before the final fit (cv_folds)
    threaded_predict: bool = False  # predicts row by row outside the GIL, so blocks of rows can go to threads (predict_jobs)
    labels_from_proba: bool = False  # predict(X) is classes_[argmax(predict_proba(X))]: evaluation asks for the probabilities once
    torch: bool = False  # imports torch (the stage then fixes torch's thread count)
    packages: tuple[str, ...] = ()  # pinned distributions its logged MLflow model needs beyond scikit-learn
    loss_history: bool = False  # writes a loss per epoch (plots/<task>/<model>/loss.csv)
    feature_importance: bool = False  # has feature_importances_ (plots/<task>/<model>/feature_importance.csv)
    base_learner_key: str | None = None  # its config names another registered model it is built from
    input_groups: tuple[str, ...] = ()  # feature groups it reads beyond the task's own (the featurize schema's keys)
    optional_input_groups: tuple[str, ...] = ()  # groups it reads where present: rows lacking them stay in the task
    compact: str | None = None  # the form predict serves it in: a callable of models/compact.py, fitted model → form


def _sklearn(make: Callable[[dict[str, Any], int], Any]) -> Callable:
    """A scikit-learn estimator behind a StandardScaler fitted on the training rows only."""
    def build(params: dict[str, Any], seed: int, feature_names: Sequence[str]):
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline([("scale", StandardScaler()), ("model", make(params, seed))])
    return build


def _logistic_regression(params, seed):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(random_state=seed, **params)


def _random_forest(params, seed):
    from sklearn.ensemble import RandomForestClassifier
    return RandomForestClassifier(random_state=seed, **params)


def _decision_tree(params, seed):
    from sklearn.tree import DecisionTreeClassifier
    return DecisionTreeClassifier(random_state=seed, **params)


def _adaboost(params, seed):
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.tree import DecisionTreeClassifier
    params = dict(params)
    depth = params.pop("base_max_depth", 1)
    return AdaBoostClassifier(DecisionTreeClassifier(max_depth=depth, random_state=seed), random_state=seed, **params)


def _svm(params, seed):
    from sklearn.svm import SVC
    return SVC(random_state=seed, **params)


def _knn(params, seed):
    from xtalml.models.knn import ThreadStableKNeighborsClassifier
    return ThreadStableKNeighborsClassifier(**params)


def _lightgbm_classifier(params, seed, feature_names):
    from xtalml.models.boosting import LightGBMClassifier
    return LightGBMClassifier(seed=seed, **params)


def _feature_index(model: str, key: str, name: str, feature_names: Sequence[str]) -> int:
    """Column of the feature a model's config names (models.<model>.<key>), or an error saying it is absent."""
    if name not in feature_names:
        raise ValueError(f"{model} needs the feature {name!r} (models.{model}.{key}) among the task's features")
    return list(feature_names).index(name)


def _lightgbm_regressor(params, seed, feature_names):
    from xtalml.models.boosting import LightGBMRegressor
    params = dict(params)
    offset = params.pop("offset_feature", None)
    index = None if offset is None else _feature_index("lightgbm_regressor", "offset_feature", offset, feature_names)
    return LightGBMRegressor(offset_index=index, seed=seed, **params)


def _mlp_classifier(params, seed, feature_names):
    from xtalml.models.mlp import MLPClassifier
    return MLPClassifier(seed=seed, **params)


def _mlp_regressor(params, seed, feature_names):
    from xtalml.models.mlp import MLPRegressor
    return MLPRegressor(seed=seed, **params)


def _wide_deep(params, seed, feature_names):
    from xtalml.models.wide_deep import WideDeepRegressor
    params = dict(params)
    wide = _feature_index("wide_deep", "wide_feature", params.pop("wide_feature", "geom_volume_analytic"), feature_names)
    return WideDeepRegressor(wide_index=wide, seed=seed, **params)


def _tabnet(params, seed, feature_names):
    from xtalml.models.tabnet import TabNetVolumeRegressor
    return TabNetVolumeRegressor(seed=seed, **params)


def _composition_attention(params, seed, feature_names):
    from xtalml.features.composition import element_token_names
    from xtalml.models.composition_attention import CompositionAttentionRegressor
    params = dict(params)
    offset = params.pop("offset_feature", None)
    index = None if offset is None else _feature_index("composition_attention", "offset_feature", offset, feature_names)
    names = element_token_names()
    if not set(names) <= set(feature_names):
        raise ValueError("composition_attention reads the element_tokens feature group (element_z_i, element_fraction_i); "
                         "the feature table lacks it: re-run the featurize stages")
    columns = [list(feature_names).index(name) for name in names]
    half = len(columns) // 2
    return CompositionAttentionRegressor(z_index=tuple(columns[:half]), fraction_index=tuple(columns[half:]),
                                         offset_index=index, seed=seed, **params)


def _two_stage(params, seed, feature_names):
    from xtalml.features.composition import element_token_names
    from xtalml.models.two_stage import TwoStageClassifier
    params = dict(params)
    base = params.pop("base")
    learner = build_model(base, {**(params.pop("base_params", None) or {}), **(params.pop("base_overrides", None) or {})},
                          seed)
    names, tokens = list(feature_names), element_token_names()
    if not set(tokens) <= set(names):  # no element tokens: the stages read every column and there are no neighbours
        return TwoStageClassifier(learner, seed=seed, **params)
    return TwoStageClassifier(learner, seed=seed, feature_index=tuple(i for i, n in enumerate(names) if n not in tokens),
                              token_index=tuple(names.index(n) for n in tokens), **params)


CLASSIFY, REGRESS = ("classification",), ("regression",)
_SKLEARN = dict(task_kinds=CLASSIFY, cross_validates=True)
_TORCH = dict(uses_validation_rows=True, torch=True, packages=("torch",), loss_history=True)
REGISTRY: dict[str, ModelSpec] = {
    "logistic_regression": ModelSpec(_sklearn(_logistic_regression), **_SKLEARN),
    "random_forest": ModelSpec(_sklearn(_random_forest), **_SKLEARN, labels_from_proba=True, threaded_predict=True,
                               compact="CompactForest.from_sklearn"),
    "decision_tree": ModelSpec(_sklearn(_decision_tree), **_SKLEARN),
    "adaboost": ModelSpec(_sklearn(_adaboost), **_SKLEARN),
    "svm": ModelSpec(_sklearn(_svm), **_SKLEARN, threaded_predict=True),
    "knn": ModelSpec(_sklearn(_knn), **_SKLEARN),
    "lightgbm": ModelSpec(_lightgbm_classifier, CLASSIFY, uses_validation_rows=True, packages=("lightgbm",),
                          loss_history=True, feature_importance=True, labels_from_proba=True),
    "lightgbm_regressor": ModelSpec(_lightgbm_regressor, REGRESS, uses_validation_rows=True, packages=("lightgbm",),
                                    loss_history=True, feature_importance=True),
    "mlp_classifier": ModelSpec(_mlp_classifier, CLASSIFY, **_TORCH, labels_from_proba=True),
    "mlp_regressor": ModelSpec(_mlp_regressor, REGRESS, **_TORCH),
    "wide_deep": ModelSpec(_wide_deep, REGRESS, **_TORCH),
    "tabnet": ModelSpec(_tabnet, REGRESS, **{**_TORCH, "packages": ("torch", "pytorch-tabnet")}, feature_importance=True),
    "composition_attention": ModelSpec(_composition_attention, REGRESS, **_TORCH, input_groups=("element_tokens",),
                                       compact="CompactCompositionAttention"),
    # its loss curve, packages and threaded predictions are its base learner's; it combines its stages row by row
    "two_stage": ModelSpec(_two_stage, CLASSIFY, uses_validation_rows=True, base_learner_key="base", labels_from_proba=True,
                           optional_input_groups=("element_tokens",),  # its prototype neighbours read the formula
                           compact="CompactTwoStage"),
}


def model_spec(name: str) -> ModelSpec:
    """The registry entry of a model, or an error listing the known ones."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def task_inputs(name: str) -> dict[str, tuple[str, ...]]:
    """load_task's keyword arguments for the feature groups a model reads beyond its task's own."""
    spec = model_spec(name)
    return {"input_groups": spec.input_groups, "optional_groups": spec.optional_input_groups}


def models_for(task_kind: str) -> list[str]:
    """Registered models that can learn a task of this kind."""
    return [name for name, spec in REGISTRY.items() if task_kind in spec.task_kinds]


def estimator_params(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator's own hyperparameters from a model config section."""
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k not in RUN_KEYS}


def base_learner(name: str, cfg: Mapping[str, Any]) -> str | None:
    """The registered model a model's config names as its base learner (two_stage's `base`), if it has one."""
    key = model_spec(name).base_learner_key
    return cfg.get(key) if key else None


def early_stops(name: str, cfg: Mapping[str, Any]) -> bool:
    """Whether fitting watches the validation rows: the model's entry says so, or that of the base learner its config
    names (two_stage on a random forest does not)."""
    spec, base = model_spec(name), base_learner(name, cfg)
    return early_stops(base, {}) if base else spec.uses_validation_rows


def trained_on_validation_rows(name: str, cfg: Mapping[str, Any]) -> bool:
    """Whether the fitted model has seen the validation rows: it may early-stop on them, or its config refits on them."""
    return early_stops(name, cfg) or bool(cfg.get("refit_with_val_rows"))


def uses_torch(name: str, cfg: Mapping[str, Any]) -> bool:
    """Whether the model, or the base learner its config names, runs on torch."""
    spec, base = model_spec(name), base_learner(name, cfg)
    return spec.torch or (base is not None and uses_torch(base, {}))


def predicts_in_threads(name: str, cfg: Mapping[str, Any]) -> bool:
    """Whether blocks of rows may be predicted in threads: the model's entry says so, or that of the base learner its
    config names."""
    spec, base = model_spec(name), base_learner(name, cfg)
    return predicts_in_threads(base, {}) if base else spec.threaded_predict


def writes_loss_history(name: str, cfg: Mapping[str, Any]) -> bool:
    """Whether the model's train stage writes loss.csv: a model built from a base learner has its base's curve, if any."""
    spec, base = model_spec(name), base_learner(name, cfg)
    return writes_loss_history(base, {}) if base else spec.loss_history


def packages(name: str, cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """Distributions the fitted model needs to load, its base learner's included."""
    spec, base = model_spec(name), base_learner(name, cfg)
    return spec.packages + (packages(base, {}) if base else ())


def pip_requirements(name: str, cfg: Mapping[str, Any]) -> list[str]:
    """Pinned distributions the fitted model needs to load: what every model needs, its own and its base learner's."""
    from xtalml.tracking import pinned

    return pinned(["scikit-learn", "numpy", "pandas", "xtalml", *packages(name, cfg)])


def fix_thread_counts(model_names: Sequence[str], models: Mapping[str, Any], torch_threads: int) -> None:
    """BLAS/OpenMP on one thread, torch (where a named model uses it) on `torch_threads`: fixed counts keep float
    sums, and so ties, the same on every machine; logistic regression ran 1.4-1.7x slower with two BLAS threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    if any(uses_torch(name, models[name]) for name in model_names):  # importing torch costs ~2 s the others need not pay
        from xtalml.numerics import configure_torch

        configure_torch(torch_threads)


def build_model(name: str, cfg: Mapping[str, Any], seed: int, feature_names: Sequence[str] = ()):
    """An unfitted estimator with fit / predict (/ predict_proba), built from its config section."""
    return model_spec(name).build(estimator_params(cfg), seed, feature_names)
