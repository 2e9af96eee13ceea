"""TabNet volume regressor (pytorch-tabnet) behind the scikit-learn interface: inputs standardised on train,
target log(1 + volume) standardised."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin

from xtalml.models.conventions import fit_inputs, predict_inputs, validation_rows, with_tags
from xtalml.models.torch_base import pick_device, seed_everything


class TabNetVolumeRegressor(RegressorMixin, BaseEstimator):
    """pytorch-tabnet's TabNetRegressor with StepLR, early stopping on validation RMSE and feature importances."""

    def __init__(self, n_d: int = 64, n_a: int = 64, n_steps: int = 5, gamma: float = 1.5, lambda_sparse: float = 1e-4,
                 lr: float = 1e-3, step_size: int = 50, step_gamma: float = 0.9, batch_size: int = 1024,
                 virtual_batch_size: int = 128, max_epochs: int = 200, patience: int = 30, seed: int = 42,
                 device: str = "auto"):
        self.n_d, self.n_a, self.n_steps, self.gamma, self.lambda_sparse = n_d, n_a, n_steps, gamma, lambda_sparse
        self.lr, self.step_size, self.step_gamma, self.batch_size = lr, step_size, step_gamma, batch_size
        self.virtual_batch_size, self.max_epochs, self.patience = virtual_batch_size, max_epochs, patience
        self.seed, self.device = seed, device

    def __sklearn_tags__(self):
        return with_tags(super().__sklearn_tags__(), positive_only=True)  # it learns log1p(volume)

    def fit(self, X, y, *, eval_set=None):
        from pytorch_tabnet.tab_model import TabNetRegressor

        X, y = fit_inputs(self, X, y, min_samples=2)  # without eval_set a tenth of the rows early-stops it
        X_val, y_val = validation_rows(eval_set)
        if X_val is not None:
            X_val = predict_inputs(self, X_val)
        seed_everything(self.seed)
        self.x_mean_ = np.nanmean(X, axis=0)
        self.x_std_ = np.nanstd(X, axis=0)
        self.x_std_[~(self.x_std_ > 0)] = 1.0  # constant columns stay 0 after centring
        X = self._scale(X)
        raw = np.log1p(np.asarray(y, dtype=float))
        self.y_mean_, self.y_std_ = float(raw.mean()), float(raw.std() or 1.0)
        target = self._encode(y)
        if X_val is None:
            order = np.random.default_rng(self.seed).permutation(len(X))
            cut = max(1, len(X) // 10)
            X_val, val_target = X[order[:cut]], target[order[:cut]]
            X, target = X[order[cut:]], target[order[cut:]]
        else:
            X_val = self._scale(X_val)
            val_target = self._encode(y_val)
        self.model_ = TabNetRegressor(
            n_d=self.n_d, n_a=self.n_a, n_steps=self.n_steps, gamma=self.gamma, lambda_sparse=self.lambda_sparse,
            optimizer_fn=torch.optim.Adam, optimizer_params={"lr": self.lr},
            scheduler_fn=torch.optim.lr_scheduler.StepLR,
            scheduler_params={"step_size": self.step_size, "gamma": self.step_gamma},
            seed=self.seed, device_name=pick_device(self.device).type, verbose=0)
        self.model_.fit(X, target, eval_set=[(X_val, val_target)], eval_name=["val"], eval_metric=["mse"],
                        max_epochs=self.max_epochs, patience=self.patience, batch_size=self.batch_size,
                        virtual_batch_size=self.virtual_batch_size, drop_last=False)
        hist = self.model_.history.history
        self.history_ = [{"epoch": i, "train_loss": float(t), "val_loss": float(v)}
                         for i, (t, v) in enumerate(zip(hist["loss"], hist["val_mse"]))]
        self.feature_importances_ = np.asarray(self.model_.feature_importances_)
        return self

    def _scale(self, X) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float64) - self.x_mean_) / self.x_std_).astype(np.float32)

    def _encode(self, y) -> np.ndarray:
        return ((np.log1p(np.asarray(y, dtype=float)) - self.y_mean_) / self.y_std_).astype(np.float32).reshape(-1, 1)

    def predict(self, X) -> np.ndarray:
        X = self._scale(predict_inputs(self, X))  # checked before model_ is read
        z = self.model_.predict(X).ravel().astype(float)
        return np.expm1(z * self.y_std_ + self.y_mean_)
