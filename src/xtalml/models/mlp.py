"""Small MLPs: inputs → hidden layers → classes (or one output), the earlier thesis work's architecture."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from torch import nn

from xtalml.models.conventions import fit_inputs, predict_inputs, validation_rows, with_tags
from xtalml.models.torch_base import TorchEstimator


def mlp(n_in: int, hidden: Sequence[int], n_out: int, dropout: float, batch_norm: bool = False) -> nn.Sequential:
    """Linear → (BatchNorm) → ReLU → (Dropout) blocks, then a linear head."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width)] + ([nn.BatchNorm1d(width)] if batch_norm else []) + [nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class MLPClassifier(ClassifierMixin, TorchEstimator):
    """MLP classifier with cross-entropy (label smoothing, class weights optional), early stopping on validation rows.

    early_stopping_metric: 'accuracy' stops on validation accuracy (what users read), 'loss' on validation loss.
    """

    def __init__(self, hidden: Sequence[int] = (64, 32), dropout: float = 0.3, lr: float = 1e-3, batch_size: int = 64,
                 max_epochs: int = 200, patience: int = 15, min_delta: float = 1e-4, optimizer: str = "adam",
                 weight_decay: float = 0.0, batch_norm: bool = False, lr_schedule: str = "none",
                 early_stopping_metric: str = "loss", label_smoothing: float = 0.0, class_weight: str | None = None,
                 seed: int = 42, device: str = "auto"):
        self.hidden, self.dropout, self.lr, self.batch_size = hidden, dropout, lr, batch_size
        self.max_epochs, self.patience, self.min_delta, self.optimizer = max_epochs, patience, min_delta, optimizer
        self.weight_decay, self.batch_norm, self.lr_schedule = weight_decay, batch_norm, lr_schedule
        self.early_stopping_metric, self.label_smoothing, self.class_weight = early_stopping_metric, label_smoothing, class_weight
        self.seed, self.device = seed, device

    def _build(self, n_features: int) -> nn.Module:
        return mlp(n_features, self.hidden, len(self.classes_), self.dropout, self.batch_norm)

    def _loss(self):
        weight = None if self.class_weights_ is None else torch.tensor(self.class_weights_, dtype=torch.float32).to(self.device_)
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=self.label_smoothing)

    def _watches_val_metric(self) -> bool:
        return self.early_stopping_metric == "accuracy"

    def _val_metric(self, outputs, x, t):
        return 1.0 - float((outputs.argmax(dim=1) == t).double().mean())

    def fit(self, X, y, *, eval_set=None):
        X, y = fit_inputs(self, X, y, classifier=True)
        X_val, y_val = validation_rows(eval_set)
        if self.early_stopping_metric not in ("loss", "accuracy"):
            raise ValueError(f"early_stopping_metric={self.early_stopping_metric!r}: choose loss or accuracy")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight={self.class_weight!r}: choose null or balanced")
        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        counts = np.bincount(self.encoder_.transform(y), minlength=len(self.classes_))
        self.class_weights_ = len(y) / (len(counts) * np.maximum(counts, 1)) if self.class_weight == "balanced" else None
        y_val_enc = None
        if X_val is not None:
            known = np.isin(y_val, self.classes_)  # validation classes unseen in training cannot be scored
            X_val, y_val_enc = predict_inputs(self, X_val)[known], self.encoder_.transform(np.asarray(y_val)[known])
        self._fit_tensors(X, self.encoder_.transform(y), X_val, y_val_enc, torch.long)
        return self

    def predict_proba(self, X) -> np.ndarray:
        return torch.softmax(self._raw_output(predict_inputs(self, X)), dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)  # checks the model is fitted before classes_ is read
        return self.classes_[proba.argmax(axis=1)]


class MLPRegressor(RegressorMixin, TorchEstimator):
    """MLP regressor on a transformed target (log by default), MSE loss, early stopping; predicts in target units."""

    def __init__(self, hidden: Sequence[int] = (64, 32), dropout: float = 0.0, lr: float = 1e-3, batch_size: int = 64,
                 max_epochs: int = 300, patience: int = 15, min_delta: float = 1e-4, optimizer: str = "adam",
                 weight_decay: float = 0.0, batch_norm: bool = False, lr_schedule: str = "none",
                 early_stopping_metric: str = "loss", target_transform: str = "log", seed: int = 42, device: str = "auto"):
        self.hidden, self.dropout, self.lr, self.batch_size = hidden, dropout, lr, batch_size
        self.max_epochs, self.patience, self.min_delta, self.optimizer = max_epochs, patience, min_delta, optimizer
        self.weight_decay, self.batch_norm, self.lr_schedule = weight_decay, batch_norm, lr_schedule
        self.early_stopping_metric, self.target_transform, self.seed, self.device = early_stopping_metric, target_transform, seed, device

    def __sklearn_tags__(self):
        return with_tags(super().__sklearn_tags__(), positive_only=self.target_transform != "none")

    def _build(self, n_features: int) -> nn.Module:
        return mlp(n_features, self.hidden, 1, self.dropout, self.batch_norm)

    def _watches_val_metric(self) -> bool:
        return self.early_stopping_metric == "mae"  # else the loss on the scaled target

    def _val_metric(self, outputs, x, t):
        """Mean absolute error in target units (Å³ or Å³/atom)."""
        return float(np.abs(self._decode(outputs.numpy()) - self._decode(t.numpy())).mean())

    def _loss(self):
        return nn.MSELoss()

    def _forward(self, module, x):
        return module(x).squeeze(1)

    def _encode(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        z = {"log": np.log, "log1p": np.log1p, "none": lambda v: v}[self.target_transform](y)
        return (z - self.y_mean_) / self.y_std_

    def _decode(self, z) -> np.ndarray:
        z = np.asarray(z, dtype=float) * self.y_std_ + self.y_mean_
        return {"log": np.exp, "log1p": np.expm1, "none": lambda v: v}[self.target_transform](z)

    def fit(self, X, y, *, eval_set=None):
        X, y = fit_inputs(self, X, y)
        X_val, y_val = validation_rows(eval_set)
        if X_val is not None:
            X_val = predict_inputs(self, X_val)
        if self.early_stopping_metric not in ("loss", "mae"):
            raise ValueError(f"early_stopping_metric={self.early_stopping_metric!r}: choose loss or mae")
        if self.target_transform not in ("log", "log1p", "none"):
            raise ValueError(f"target_transform={self.target_transform!r}: choose log, log1p or none")
        raw = {"log": np.log, "log1p": np.log1p, "none": lambda v: v}[self.target_transform](np.asarray(y, float))
        self.y_mean_, self.y_std_ = float(raw.mean()), float(raw.std() or 1.0)
        self._fit_tensors(X, self._encode(y), X_val, None if y_val is None else self._encode(y_val), torch.float32)
        return self

    def predict(self, X) -> np.ndarray:
        return self._decode(self._raw_output(predict_inputs(self, X)).numpy())
