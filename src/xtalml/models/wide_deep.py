"""Wide-and-deep volume regressor: a deep residual squeeze-and-excitation MLP whose embedding meets the analytic volume."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sklearn.base import RegressorMixin
from torch import nn

from xtalml.models.conventions import fit_inputs, predict_inputs, validation_rows, with_tags
from xtalml.models.torch_base import TorchEstimator


class SEBlock(nn.Module):
    """Linear → BatchNorm → ReLU → Dropout, reweighted by squeeze-and-excitation, residual when widths match."""

    def __init__(self, n_in: int, n_out: int, dropout: float, reduction: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU(), nn.Dropout(dropout))
        squeeze = max(4, n_out // reduction)
        self.excite = nn.Sequential(nn.Linear(n_out, squeeze), nn.ReLU(), nn.Linear(squeeze, n_out), nn.Sigmoid())
        self.residual = n_in == n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        out = out * self.excite(out)
        return out + x if self.residual else out


class WideDeepNet(nn.Module):
    """Deep branch over all features; its embedding and the wide input (log analytic volume) go through fusion layers."""

    def __init__(self, n_features: int, widths: Sequence[int], dropout: float, fusion: Sequence[int]):
        super().__init__()
        blocks, n_in = [], n_features
        for width in widths:
            blocks.append(SEBlock(n_in, width, dropout))
            n_in = width
        self.deep = nn.Sequential(*blocks)
        layers, n_in = [], widths[-1] + 1
        for width in fusion:
            layers += [nn.Linear(n_in, width), nn.ReLU()]
            n_in = width
        layers.append(nn.Linear(n_in, 1))
        self.fusion = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = x[:, -1:]  # the last column is the wide input
        return self.fusion(torch.cat([self.deep(x), wide], dim=1)).squeeze(1)


class WideDeepRegressor(RegressorMixin, TorchEstimator):
    """Predicts cell volume (Å³) through log(volume); `wide_index` is the analytic-volume column of X. With
    `wide_offset` the network learns log(volume / wide input), so a network that outputs nothing predicts the wide
    input itself (as LightGBM's offset_feature does)."""

    def __init__(self, wide_index: int = -1, wide_offset: bool = False,
                 widths: Sequence[int] = (512, 512, 256, 256, 128, 128, 64, 64, 32, 16), fusion: Sequence[int] = (64,),
                 dropout: float = 0.2, lr: float = 3e-4, weight_decay: float = 1e-4, optimizer: str = "rmsprop",
                 batch_size: int = 128, max_epochs: int = 300, patience: int = 25, min_delta: float = 1e-6,
                 seed: int = 42, device: str = "auto"):
        self.wide_index, self.wide_offset, self.widths, self.fusion = wide_index, wide_offset, widths, fusion
        self.dropout, self.lr = dropout, lr
        self.weight_decay, self.optimizer, self.batch_size, self.max_epochs = weight_decay, optimizer, batch_size, max_epochs
        self.patience, self.min_delta, self.seed, self.device = patience, min_delta, seed, device

    def _build(self, n_features: int) -> nn.Module:
        return WideDeepNet(n_features, self.widths, self.dropout, self.fusion)

    def _loss(self):
        return nn.MSELoss()

    def _scheduler(self, optimizer):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.max_epochs)

    def __sklearn_tags__(self):
        return with_tags(super().__sklearn_tags__(), positive_only=True)  # it learns log(volume)

    def _with_wide(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        return np.column_stack([X, self._log_wide(X)])

    def _log_wide(self, X) -> np.ndarray:
        return np.log(np.clip(np.asarray(X, dtype=float)[:, self.wide_index], 1e-6, None))

    def _offset(self, X) -> np.ndarray:
        """What the network's output is added to, in log(volume)."""
        return self._log_wide(X) if self.wide_offset else np.zeros(len(X))

    def fit(self, X, y, *, eval_set=None):
        X, y = fit_inputs(self, X, y)
        X_val, y_val = validation_rows(eval_set)
        if X_val is not None:
            X_val = predict_inputs(self, X_val)
        target = np.log(np.asarray(y, float)) - self._offset(X)
        self.y_mean_, self.y_std_ = float(target.mean()), float(target.std() or 1.0)
        encode = lambda v, rows: (np.log(np.asarray(v, float)) - self._offset(rows) - self.y_mean_) / self.y_std_  # noqa: E731
        self._fit_tensors(self._with_wide(X), encode(y, X), None if X_val is None else self._with_wide(X_val),
                          None if y_val is None else encode(y_val, X_val), torch.float32)
        return self

    def predict(self, X) -> np.ndarray:
        X = predict_inputs(self, X)
        return np.exp(self._raw_output(self._with_wide(X)).numpy() * self.y_std_ + self.y_mean_ + self._offset(X))
