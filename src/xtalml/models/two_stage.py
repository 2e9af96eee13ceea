"""CRYSPNet-style composition model: Bravais lattice first, then space group from features plus lattice probabilities."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from xtalml.cif.symmetry import space_group_info
from xtalml.models.mlp import MLPClassifier


def lattice_of(label: str) -> str:
    """Bravais lattice of a space-group label ('14' → 'mP'); merged labels such as 'other' stay as they are."""
    return space_group_info(int(label))[2] if str(label).isdigit() else str(label)


class TwoStageClassifier(ClassifierMixin, BaseEstimator):
    """Stage 1 predicts the Bravais lattice; stage 2 the space group, optionally only among the lattice's groups."""

    def __init__(self, hidden: Sequence[int] = (128, 64), dropout: float = 0.2, lr: float = 1e-3, batch_size: int = 128,
                 max_epochs: int = 200, patience: int = 10, min_delta: float = 1e-4, restrict_to_lattice: bool = True,
                 seed: int = 42, device: str = "auto"):
        self.hidden, self.dropout, self.lr, self.batch_size = hidden, dropout, lr, batch_size
        self.max_epochs, self.patience, self.min_delta = max_epochs, patience, min_delta
        self.restrict_to_lattice, self.seed, self.device = restrict_to_lattice, seed, device

    def _stage(self) -> MLPClassifier:
        return MLPClassifier(hidden=self.hidden, dropout=self.dropout, lr=self.lr, batch_size=self.batch_size,
                             max_epochs=self.max_epochs, patience=self.patience, min_delta=self.min_delta,
                             batch_norm=True, seed=self.seed, device=self.device)

    def fit(self, X, y, X_val=None, y_val=None):
        y = np.asarray(y).astype(str)
        lattices = np.array([lattice_of(v) for v in y])
        val_lattices = None if y_val is None else np.array([lattice_of(v) for v in np.asarray(y_val).astype(str)])
        self.lattice_model_ = self._stage().fit(X, lattices, X_val, val_lattices)
        self.sg_model_ = self._stage().fit(self._augment(X), y, None if X_val is None else self._augment(X_val),
                                           None if y_val is None else np.asarray(y_val).astype(str))
        self.classes_ = self.sg_model_.classes_
        class_lattice = np.array([lattice_of(c) for c in self.classes_])
        # allowed[l, c]: space group c is consistent with lattice l (a merged class is always allowed)
        self.allowed_ = np.array([(class_lattice == lat) | ~np.char.isnumeric(self.classes_.astype(str))
                                  for lat in self.lattice_model_.classes_])
        self.history_ = [{"epoch": h["epoch"], "train_loss": h["train_loss"], "val_loss": h["val_loss"]}
                         for h in self.sg_model_.history_]
        self.lattice_history_ = self.lattice_model_.history_
        return self

    def _augment(self, X) -> np.ndarray:
        return np.column_stack([np.asarray(X, float), self.lattice_model_.predict_proba(X)])

    def predict_lattice_proba(self, X) -> np.ndarray:
        return self.lattice_model_.predict_proba(X)

    def predict_proba(self, X) -> np.ndarray:
        proba = self.sg_model_.predict_proba(self._augment(X))
        if self.restrict_to_lattice:
            mask = self.allowed_[self.predict_lattice_proba(X).argmax(axis=1)]
            masked = proba * mask
            total = masked.sum(axis=1, keepdims=True)
            proba = np.where(total > 0, masked / np.where(total > 0, total, 1), proba)
        return proba

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
