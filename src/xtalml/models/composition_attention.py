"""Composition attention regressor (CrabNet / Roost style): self-attention over a formula's elements, then pooling.

Each element of a formula is a token: a learned embedding of its atomic number, its Magpie properties and its
fraction. Transformer layers let every element see the others; the fraction-weighted mean of the tokens goes
through an MLP that predicts log(target / estimate), the correction to a physical estimate such as the
fraction-weighted elemental volume.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.preprocessing import FunctionTransformer
from torch import nn

from xtalml.models.conventions import fit_inputs, predict_inputs, validation_rows, with_tags
from xtalml.models.torch_base import TorchEstimator


class CompositionAttentionNet(nn.Module):
    """Tokens (atomic number, element properties, fraction) → transformer encoder → weighted mean → MLP → one output."""

    def __init__(self, element_table: np.ndarray, width: int, d_model: int, heads: int, layers: int, ff: int,
                 dropout: float):
        super().__init__()
        self.width = width
        table = np.asarray(element_table, dtype=np.float32)
        scale = table[1:].std(axis=0) + 1e-9
        table = (table - table[1:].mean(axis=0)) / scale
        table[0] = 0.0  # padding
        self.register_buffer("properties", torch.tensor(table))
        self.embedding = nn.Embedding(len(table), d_model, padding_idx=0)
        self.project = nn.Linear(d_model + table.shape[1] + 2, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout=dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.SiLU(), nn.Linear(2 * d_model, d_model), nn.SiLU(),
                                  nn.Linear(d_model, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x[:, :self.width].long()
        fraction = x[:, self.width:2 * self.width]
        used = int((z > 0).sum(dim=1).max().clamp_min(1))  # tokens are sorted by presence: trim the common padding
        z, fraction = z[:, :used], fraction[:, :used]
        pad = z == 0
        log_fraction = torch.log(fraction.clamp_min(1e-6)) * ~pad
        tokens = torch.cat([self.embedding(z), self.properties[z], fraction[..., None], log_fraction[..., None]], dim=-1)
        hidden = self.encoder(self.project(tokens), src_key_padding_mask=pad)
        pooled = (hidden * fraction[..., None]).sum(dim=1) / fraction.sum(dim=1, keepdim=True).clamp_min(1e-9)
        return self.head(pooled).squeeze(1)


class CompositionAttentionRegressor(RegressorMixin, TorchEstimator):
    """Predicts a positive target from a formula's element tokens (columns element_z_i, element_fraction_i of X).

    offset_index names the column of X that estimates the target; the network learns log(target / estimate) with an
    L1 loss and early-stops on the validation MAE in target units. Rows without tokens (formulas with more elements
    than the token columns hold) are predicted as NaN.
    """

    def __init__(self, z_index: Sequence[int] = (), fraction_index: Sequence[int] = (), offset_index: int | None = None,
                 d_model: int = 64, heads: int = 4, layers: int = 2, ff: int = 128, dropout: float = 0.0,
                 lr: float = 2e-3, weight_decay: float = 1e-4, optimizer: str = "adamw", lr_schedule: str = "onecycle",
                 batch_size: int = 512, max_epochs: int = 24, patience: int = 4, min_delta: float = 1e-4,
                 seed: int = 42, device: str = "auto"):
        self.z_index, self.fraction_index, self.offset_index = z_index, fraction_index, offset_index
        self.d_model, self.heads, self.layers, self.ff, self.dropout = d_model, heads, layers, ff, dropout
        self.lr, self.weight_decay, self.optimizer, self.lr_schedule = lr, weight_decay, optimizer, lr_schedule
        self.batch_size, self.max_epochs, self.patience, self.min_delta = batch_size, max_epochs, patience, min_delta
        self.seed, self.device = seed, device

    def _input_scaler(self):
        return FunctionTransformer()  # atomic numbers and fractions enter as they are

    def _build(self, n_features: int) -> nn.Module:
        from xtalml.features.composition import elemental_tables

        return CompositionAttentionNet(elemental_tables()[0], len(self.z_index), self.d_model, self.heads, self.layers,
                                       self.ff, self.dropout)

    def _loss(self):
        return nn.L1Loss()

    def _batches(self, x: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """Shuffled rows grouped by element count, so a batch pads to its own longest formula; batches in random order."""
        order = torch.randperm(len(x), generator=generator)
        counts = (x[order, :len(self.z_index)] > 0).sum(dim=1)
        order = order[torch.sort(counts, stable=True).indices]
        batches = list(order.split(self.batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def _watches_val_metric(self) -> bool:
        return True

    def _val_metric(self, outputs, x, t):
        estimate = x[:, -1].double().numpy()
        return float(np.abs(estimate * (np.exp(outputs.double().numpy()) - np.exp(t.double().numpy()))).mean())

    def __sklearn_tags__(self):
        # it learns log(target / estimate); a formula its tokens cannot hold is NaN there and gets no answer
        return with_tags(super().__sklearn_tags__(), allow_nan=True, positive_only=True)

    def _inputs(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(compact inputs: atomic numbers, fractions, estimate; rows whose tokens and estimate are all present)."""
        X = np.asarray(X, dtype=float)
        if self.offset_index is None:
            estimate = np.ones(len(X))
        else:
            estimate = X[:, self.offset_index]
        z, fraction = X[:, list(self.z_index)], X[:, list(self.fraction_index)]
        ok = ~np.isnan(z).any(axis=1) & ~np.isnan(fraction).any(axis=1) & (estimate > 0)
        compact = np.column_stack([np.nan_to_num(z), np.nan_to_num(fraction), np.where(ok, estimate, 1.0)])
        return compact, ok

    def fit(self, X, y, *, eval_set=None):
        if len(self.z_index) == 0 or len(self.z_index) != len(self.fraction_index):
            raise ValueError("composition_attention needs the element_tokens feature group (element_z_i, element_fraction_i)")
        X, y = fit_inputs(self, X, y, allow_nan=True)  # a formula the tokens cannot hold is NaN there: left out
        X_val, y_val = validation_rows(eval_set)
        if X_val is not None:
            X_val = predict_inputs(self, X_val, allow_nan=True)
        x, ok = self._inputs(X)
        target = np.log(np.asarray(y, float) / x[:, -1])
        val = None
        if X_val is not None:
            xv, ok_val = self._inputs(X_val)
            val = (xv[ok_val], np.log(np.asarray(y_val, float) / xv[:, -1])[ok_val])
        self._fit_tensors(x[ok], target[ok], None if val is None else val[0], None if val is None else val[1], torch.float32)
        return self

    def predict(self, X) -> np.ndarray:
        x, ok = self._inputs(predict_inputs(self, X, allow_nan=True))
        out = np.full(len(x), np.nan)
        if ok.any():
            out[ok] = x[ok, -1] * np.exp(self._raw_output(x[ok]).double().numpy())
        return out
