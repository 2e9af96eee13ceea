"""CRYSPNet-style composition model: a Bravais-lattice classifier, then one space-group classifier per lattice."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from xtalml.cif.symmetry import space_group_info


def lattice_of(label: str) -> str:
    """Bravais lattice of a space-group label ('14' → 'mP'); merged labels such as 'other' stay as they are."""
    return space_group_info(int(label))[2] if str(label).isdigit() else str(label)


def lattice_proba(proba: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
    """Bravais-lattice probabilities from space-group probabilities: the sum over each lattice's groups."""
    lattices = np.array([lattice_of(c) for c in np.asarray(classes).astype(str)])
    names = np.unique(lattices)
    return names, np.column_stack([proba[:, lattices == name].sum(axis=1) for name in names])


class _Constant:
    """The expert of a lattice with one space group in the training rows."""

    def __init__(self, label: str):
        self.classes_ = np.array([label])

    def predict_proba(self, X) -> np.ndarray:
        return np.ones((len(X), 1))


def _fit_rows(model, X, rows, target, X_val, val_rows, val_target):
    """Fit on the masked rows, early-stopping on the masked validation rows where there are any."""
    if X_val is not None and val_rows is not None and val_rows.any():
        return model.fit(X[rows], target[rows], X_val[val_rows], val_target[val_rows])
    return model.fit(X[rows], target[rows])


class TwoStageClassifier(ClassifierMixin, BaseEstimator):
    """P(sg) = Σ_b P(b) · P(sg | b): stage 1 predicts the lattice b, stage 2 has one space-group expert per lattice.

    Each expert sees only its lattice's rows and the composition features (never stage 1's outputs), so stage 2 needs
    no out-of-fold stage-1 predictions. combine='hard' keeps only the most likely lattice (CRYSPNet's inference);
    'soft' sums over lattices, so top-k can go beyond stage 1's accuracy. Any registered classifier is the base learner
    (base_params, with base_overrides on top); seeds > 1 averages that many independently seeded copies of both stages.
    n_jobs > 1 fits stage 1 and the experts in that many processes, each on one thread (a base that sets its own
    thread count, as LightGBM's n_jobs, keeps it), so a classical base gives the same model for any n_jobs.

    neighbours {weight, k, tau} blends in PrototypeNeighbours: P = (1 - weight) P_two_stage + weight P_neighbours on
    rows whose stoichiometry pattern the training rows have. The stages read the columns feature_index, the
    neighbours the element tokens at token_index (atomic numbers, then fractions); the registry sets both.
    """

    def __init__(self, base: str = "lightgbm", base_params: Mapping[str, Any] | None = None,
                 base_overrides: Mapping[str, Any] | None = None, combine: str = "soft", seeds: int = 1, seed: int = 42,
                 n_jobs: int = 1, neighbours: Mapping[str, Any] | None = None,
                 feature_index: tuple[int, ...] | None = None, token_index: tuple[int, ...] | None = None):
        self.base, self.base_params, self.base_overrides = base, base_params, base_overrides
        self.combine, self.seeds, self.seed, self.n_jobs = combine, seeds, seed, n_jobs
        self.neighbours, self.feature_index, self.token_index = neighbours, feature_index, token_index

    def _stage_columns(self, X: np.ndarray) -> np.ndarray:
        return X if self.feature_index is None else X[:, list(self.feature_index)]

    def _tokens(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        half = len(self.token_index) // 2
        return X[:, list(self.token_index[:half])], X[:, list(self.token_index[half:])]

    def _learner(self, seed: int):
        from xtalml.models.registry import build_model

        return build_model(self.base, {**(self.base_params or {}), **(self.base_overrides or {})}, seed)

    def _fit_one(self, X, y, X_val, y_val, seed: int):
        from joblib import Parallel, delayed, parallel_config

        from xtalml.models.registry import model_spec

        if not (model_spec(self.base).uses_validation_rows and X_val is not None):
            X_val = y_val = None
        lattices = np.array([lattice_of(v) for v in y])
        val_lattices = None if y_val is None else np.array([lattice_of(v) for v in y_val])
        # (lattice, or None for stage 1; its training rows; its validation rows; target; validation target)
        jobs = [(None, np.ones(len(y), bool), None if y_val is None else np.ones(len(y_val), bool), lattices, val_lattices)]
        constant = {}
        for lattice in np.unique(lattices):
            rows = lattices == lattice
            if len(np.unique(y[rows])) == 1:
                constant[lattice] = _Constant(y[rows][0])
            else:
                jobs.append((lattice, rows, None if y_val is None else val_lattices == lattice, y, y_val))
        jobs[1:] = sorted(jobs[1:], key=lambda job: -job[1].sum())  # largest first: the workers finish together
        with parallel_config(backend="loky", inner_max_num_threads=1):
            fitted = Parallel(n_jobs=self.n_jobs)(
                delayed(_fit_rows)(self._learner(seed), X, rows, target, X_val, val_rows, val_target)
                for _, rows, val_rows, target, val_target in jobs)
        experts = constant | {job[0]: model for job, model in zip(jobs[1:], fitted[1:])}
        return fitted[0], {lattice: experts[lattice] for lattice in sorted(experts)}

    def fit(self, X, y, X_val=None, y_val=None):
        if self.combine not in ("soft", "hard"):
            raise ValueError(f"two_stage combine={self.combine!r}: choose soft or hard")
        X, y = np.asarray(X, float), np.asarray(y).astype(str)
        weight = float((self.neighbours or {}).get("weight", 0.0))
        if not 0 <= weight <= 1:
            raise ValueError(f"two_stage neighbours.weight={weight}: choose a share between 0 and 1")
        self.neighbours_ = None
        if weight > 0:
            if self.combine != "soft":
                raise ValueError("two_stage neighbours blend into combine: soft only (hard keeps one lattice's groups)")
            if self.token_index is None:
                raise ValueError("two_stage neighbours need the element_tokens feature group; re-run the featurize stages, "
                                 "or set models.two_stage.neighbours.weight: 0")
            from xtalml.models.neighbours import PrototypeNeighbours

            options = {k: v for k, v in self.neighbours.items() if k != "weight"}
            if set(options) - {"k", "tau"}:
                raise ValueError(f"two_stage neighbours: unknown keys {sorted(set(options) - {'k', 'tau'})}; "
                                 "known: weight, k, tau")
            self.neighbours_ = PrototypeNeighbours(**options).fit(*self._tokens(X), y)
        X = self._stage_columns(X)
        if X_val is not None:
            X_val, y_val = self._stage_columns(np.asarray(X_val, float)), np.asarray(y_val).astype(str)
        self.classes_ = np.unique(y)
        self.members_ = [self._fit_one(X, y, X_val, y_val, self.seed + i) for i in range(int(self.seeds))]
        self.lattice_classes_ = self.members_[0][0].classes_
        history = getattr(self.members_[0][0], "history_", None)
        if history:
            self.history_ = history  # stage 1's loss curve
        return self

    def predict_lattice_proba(self, X) -> np.ndarray:
        """Stage 1's lattice probabilities (columns: lattice_classes_), averaged over the seeds."""
        X = self._stage_columns(np.asarray(X, float))
        return np.mean([stage1.predict_proba(X) for stage1, _ in self.members_], axis=0)

    def predict_proba(self, X) -> np.ndarray:
        X = np.asarray(X, float)
        out = self._stages_proba(self._stage_columns(X))
        if self.neighbours_ is not None:
            weight = float(self.neighbours["weight"])
            near, covered = self.neighbours_.predict_proba(*self._tokens(X))
            out[covered] = (1 - weight) * out[covered] + weight * near[covered]  # both have columns classes_
        return out

    def _stages_proba(self, X: np.ndarray) -> np.ndarray:
        column = {c: i for i, c in enumerate(self.classes_)}
        out = np.zeros((len(X), len(self.classes_)))
        for stage1, experts in self.members_:
            p_lattice = stage1.predict_proba(X)
            if self.combine == "hard":
                p_lattice = np.eye(p_lattice.shape[1])[p_lattice.argmax(axis=1)]
            for j, lattice in enumerate(stage1.classes_):
                weight = p_lattice[:, j:j + 1]
                if not weight.any():
                    continue
                expert = experts[lattice]
                cols = [column[c] for c in np.asarray(expert.classes_).astype(str)]
                out[:, cols] += weight * expert.predict_proba(X)
        return out / len(self.members_)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
