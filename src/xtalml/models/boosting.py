"""Gradient-boosted trees (LightGBM), early-stopped on the validation rows, behind the scikit-learn interface."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from xtalml.models.conventions import fit_inputs, predict_inputs, validation_rows, with_tags
from xtalml.progress import progress


class _LightGBM(BaseEstimator):
    """Shared fit: LightGBM's own estimator, stopped when the validation loss has not improved for `patience` rounds."""

    def __init__(self, n_estimators: int = 2000, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_child_samples: int = 20, subsample: float = 0.5, colsample_bytree: float = 0.3,
                 reg_lambda: float = 1.0, max_bin: int = 63, patience: int = 50, n_jobs: int = 1, seed: int = 42):
        self.n_estimators, self.learning_rate, self.num_leaves = n_estimators, learning_rate, num_leaves
        self.min_child_samples, self.subsample, self.colsample_bytree = min_child_samples, subsample, colsample_bytree
        self.reg_lambda, self.max_bin, self.patience, self.n_jobs, self.seed = reg_lambda, max_bin, patience, n_jobs, seed

    def __sklearn_tags__(self):
        return with_tags(super().__sklearn_tags__(), allow_nan=True)  # LightGBM learns where missing values go

    def _estimator(self):
        raise NotImplementedError

    def _lgbm_params(self) -> dict:
        # subsample_freq=1 makes `subsample` take effect; deterministic + force_row_wise give the same trees every run
        return dict(n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                    min_child_samples=self.min_child_samples, subsample=self.subsample, subsample_freq=1,
                    colsample_bytree=self.colsample_bytree, reg_lambda=self.reg_lambda, max_bin=self.max_bin,
                    n_jobs=self.n_jobs, random_state=self.seed, deterministic=True, force_row_wise=True, verbose=-1)

    def _fit(self, X, y, X_val, y_val):
        import lightgbm

        self.model_ = self._estimator()
        evals: dict = {}
        bar = progress(total=self.n_estimators, desc=f"{type(self).__name__} rounds", unit="round")
        callbacks = [lightgbm.record_evaluation(evals), lambda env: bar.update(1)]
        eval_X, eval_y = [X], [y]
        if X_val is not None and len(y_val):
            eval_X, eval_y = [X, X_val], [y, y_val]
            callbacks.append(lightgbm.early_stopping(self.patience, first_metric_only=True, verbose=False))
        self.model_.fit(X, y, eval_X=tuple(eval_X), eval_y=tuple(eval_y), eval_names=["train", "val"][:len(eval_X)],
                        callbacks=callbacks)
        bar.close()
        metric = next(iter(evals["train"]))
        val = evals.get("val", {}).get(metric, [np.nan] * len(evals["train"][metric]))
        self.history_ = [{"epoch": i, "train_loss": float(t), "val_loss": float(v)}
                         for i, (t, v) in enumerate(zip(evals["train"][metric], val))]
        self.best_iteration_ = int(self.model_.best_iteration_ or len(self.history_))
        self.feature_importances_ = self.model_.booster_.feature_importance("gain")
        return self

    def predict(self, X) -> np.ndarray:
        X = predict_inputs(self, X, allow_nan=True)  # checked before model_ is read
        return self.model_.predict(X)


class LightGBMClassifier(ClassifierMixin, _LightGBM):
    """Multiclass LightGBM; validation rows of classes unseen in training are left out of early stopping."""

    def _estimator(self):
        from lightgbm import LGBMClassifier

        return LGBMClassifier(**self._lgbm_params())

    def fit(self, X, y, *, eval_set=None):
        from sklearn.preprocessing import LabelEncoder

        X, y = fit_inputs(self, X, y, allow_nan=True, classifier=True)
        X_val, y_val = validation_rows(eval_set)
        # labels are encoded here: LightGBM 4.7 does not encode string labels given as eval_y
        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        if X_val is not None:
            y_val = np.asarray(y_val)
            known = np.isin(y_val, self.classes_)
            X_val, y_val = predict_inputs(self, X_val, allow_nan=True)[known], self.encoder_.transform(y_val[known])
        self._fit(X, self.encoder_.transform(y), X_val, y_val)
        return self

    def predict_proba(self, X) -> np.ndarray:
        X = predict_inputs(self, X, allow_nan=True)  # checked before model_ is read
        return self.model_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)  # checks the model is fitted before classes_ is read
        return self.classes_[proba.argmax(axis=1)]


class LightGBMRegressor(RegressorMixin, _LightGBM):
    """LightGBM regression on log(target), so errors are relative and predictions stay positive; predicts in target units.

    With `offset_index`, the trees learn log(target / X[:, offset_index]): the correction to a physical estimate
    (analytic cell volume, elemental volume), which piecewise-constant trees cannot reproduce by themselves.
    """

    def __init__(self, offset_index: int | None = None, n_estimators: int = 2000, learning_rate: float = 0.05,
                 num_leaves: int = 31, min_child_samples: int = 20, subsample: float = 0.5, colsample_bytree: float = 0.3,
                 reg_lambda: float = 1.0, max_bin: int = 63, patience: int = 50, n_jobs: int = 1, seed: int = 42):
        super().__init__(n_estimators, learning_rate, num_leaves, min_child_samples, subsample, colsample_bytree,
                         reg_lambda, max_bin, patience, n_jobs, seed)
        self.offset_index = offset_index

    def __sklearn_tags__(self):
        return with_tags(super().__sklearn_tags__(), positive_only=True)  # it learns log(target)

    def _estimator(self):
        from lightgbm import LGBMRegressor

        return LGBMRegressor(**self._lgbm_params())

    def _log_offset(self, X: np.ndarray) -> np.ndarray | float:
        return 0.0 if self.offset_index is None else np.log(np.clip(X[:, self.offset_index], 1e-6, None))

    def fit(self, X, y, *, eval_set=None):
        X, y = fit_inputs(self, X, y, allow_nan=True)
        X_val, y_val = validation_rows(eval_set)
        if X_val is not None:
            X_val = predict_inputs(self, X_val, allow_nan=True)
            y_val = np.log(np.asarray(y_val, float)) - self._log_offset(X_val)
        self._fit(X, np.log(np.asarray(y, float)) - self._log_offset(X), X_val, y_val)
        return self

    def predict(self, X) -> np.ndarray:
        X = predict_inputs(self, X, allow_nan=True)
        return np.exp(super().predict(X) + self._log_offset(X))
