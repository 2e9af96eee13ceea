"""scikit-learn's conventions for the project's own estimators: inputs checked as scikit-learn checks them, and
early-stopping rows given as fit(X, y, *, eval_set=[(X_val, y_val)]) (LightGBM's keyword)."""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import numpy as np


def with_tags(tags, *, allow_nan: bool | None = None, positive_only: bool | None = None):
    """scikit-learn tags with what an estimator accepts: missing values in X, only positive targets (a log target)."""
    if allow_nan is not None:
        tags.input_tags.allow_nan = allow_nan
    if positive_only is not None:
        tags.target_tags.positive_only = positive_only
    return tags


def fit_inputs(estimator: Any, X, y, *, allow_nan: bool = False, classifier: bool = False,
               min_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """X (float64) and y checked for shape, length, finite values and at least min_samples rows; sets n_features_in_.
    A classifier's labels stay as given (space-group numbers as text) and must be classes, not a continuous target."""
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import validate_data

    X, y = validate_data(estimator, X, y, reset=True, dtype=np.float64, y_numeric=not classifier,
                         ensure_all_finite="allow-nan" if allow_nan else True, ensure_min_samples=min_samples)
    if classifier:
        check_classification_targets(y)
    return X, y


def predict_inputs(estimator: Any, X, *, allow_nan: bool = False) -> np.ndarray:
    """X (float64) for a fitted estimator: NotFittedError before fit, an error naming the problem for rows of the
    wrong width or with infinite (or, unless allowed, missing) values."""
    from sklearn.utils.validation import check_is_fitted, validate_data

    check_is_fitted(estimator)
    return validate_data(estimator, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan" if allow_nan else True)


def validation_rows(eval_set: Sequence[tuple[Any, Any]] | None) -> tuple[Any, Any]:
    """(X_val, y_val) of the first pair of eval_set, or (None, None) without one."""
    if eval_set is None or len(eval_set) == 0:
        return None, None
    first = eval_set[0]
    if not (isinstance(first, (tuple, list)) and len(first) == 2):
        raise ValueError("eval_set is a list of (X, y) pairs, e.g. eval_set=[(X_val, y_val)]")
    return first[0], first[1]


def takes_eval_set(estimator: Any) -> bool:
    """Whether an estimator's fit accepts early-stopping rows (eval_set=)."""
    return "eval_set" in inspect.signature(estimator.fit).parameters
