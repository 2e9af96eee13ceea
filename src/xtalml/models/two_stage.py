"""CRYSPNet-style composition model: a Bravais-lattice classifier, then one space-group classifier per lattice."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from xtalml.models.conventions import fit_inputs, predict_inputs, takes_eval_set, validation_rows, with_tags
from xtalml.models.lattices import ConstantExpert, blend_neighbours, lattice_of, two_stage_proba


def reseeded(estimator, seed: int):
    """An unfitted clone of an estimator with every random_state or seed in it (nested ones too) set to seed."""
    copy = clone(estimator)
    keys = [k for k in copy.get_params(deep=True) if k.rsplit("__", 1)[-1] in ("random_state", "seed")]
    return copy.set_params(**{k: seed for k in keys})


def _fit_rows(model, X, rows, target, X_val, val_rows, val_target):
    """Fit on the masked rows, early-stopping on the masked validation rows where there are any."""
    if X_val is not None and val_rows is not None and val_rows.any():
        return model.fit(X[rows], target[rows], eval_set=[(X_val[val_rows], val_target[val_rows])])
    return model.fit(X[rows], target[rows])


class TwoStageClassifier(ClassifierMixin, BaseEstimator):
    """P(sg) = Σ_b P(b) · P(sg | b): stage 1 predicts the lattice b, stage 2 has one space-group expert per lattice.

    Each expert sees only its lattice's rows and the composition features (never stage 1's outputs), so stage 2 needs
    no out-of-fold stage-1 predictions. combine='hard' keeps only the most likely lattice (CRYSPNet's inference);
    'soft' sums over lattices, so top-k can go beyond stage 1's accuracy. Stage 1 and every expert are clones of
    `estimator` (a random forest by default), each with its random_state/seed set to seed + member; seeds > 1
    averages that many independently seeded members. An estimator whose fit takes eval_set early-stops on the
    validation rows of its lattice. n_jobs > 1 fits stage 1 and the experts in that many processes, each on one
    thread (a learner that sets its own thread count, as LightGBM's n_jobs, keeps it), so a classical learner gives the
    same model for any n_jobs.

    neighbours {weight, k, tau} blends in PrototypeNeighbours: P = (1 - weight) P_two_stage + weight P_neighbours on
    rows whose stoichiometry pattern the training rows have. The stages read the columns feature_index, the
    neighbours the element tokens at token_index (atomic numbers, then fractions); the registry sets both.
    """

    def __init__(self, estimator=None, *, combine: str = "soft", seeds: int = 1, seed: int = 42, n_jobs: int = 1,
                 neighbours: Mapping[str, Any] | None = None, feature_index: tuple[int, ...] | None = None,
                 token_index: tuple[int, ...] | None = None):
        self.estimator, self.combine, self.seeds, self.seed, self.n_jobs = estimator, combine, seeds, seed, n_jobs
        self.neighbours, self.feature_index, self.token_index = neighbours, feature_index, token_index

    def __sklearn_tags__(self):
        return with_tags(super().__sklearn_tags__(), allow_nan=True)  # element tokens are NaN where a formula does not fit

    def _stage_columns(self, X: np.ndarray) -> np.ndarray:
        return X if self.feature_index is None else X[:, list(self.feature_index)]

    def _tokens(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        half = len(self.token_index) // 2
        return X[:, list(self.token_index[:half])], X[:, list(self.token_index[half:])]

    def _base(self):
        if self.estimator is not None:
            return self.estimator
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier()

    def _fit_one(self, X, y, X_val, y_val, seed: int):
        from joblib import Parallel, delayed, parallel_config

        base = reseeded(self._base(), seed)
        if not takes_eval_set(base):
            X_val = y_val = None
        lattices = np.array([lattice_of(v) for v in y])
        val_lattices = None if y_val is None else np.array([lattice_of(v) for v in y_val])
        # (lattice, or None for stage 1; its training rows; its validation rows; target; validation target)
        jobs = [(None, np.ones(len(y), bool), None if y_val is None else np.ones(len(y_val), bool), lattices, val_lattices)]
        constant = {}
        for lattice in np.unique(lattices):
            rows = lattices == lattice
            if len(np.unique(y[rows])) == 1:
                constant[lattice] = ConstantExpert(y[rows][0])
            else:
                jobs.append((lattice, rows, None if y_val is None else val_lattices == lattice, y, y_val))
        jobs[1:] = sorted(jobs[1:], key=lambda job: -job[1].sum())  # largest first: the workers finish together
        with parallel_config(backend="loky", inner_max_num_threads=1):
            fitted = Parallel(n_jobs=self.n_jobs)(
                delayed(_fit_rows)(clone(base), X, rows, target, X_val, val_rows, val_target)
                for _, rows, val_rows, target, val_target in jobs)
        experts = constant | {job[0]: model for job, model in zip(jobs[1:], fitted[1:])}
        return fitted[0], {lattice: experts[lattice] for lattice in sorted(experts)}

    def fit(self, X, y, *, eval_set=None):
        if self.combine not in ("soft", "hard"):
            raise ValueError(f"two_stage combine={self.combine!r}: choose soft or hard")
        X, y = fit_inputs(self, X, y, allow_nan=True, classifier=True)  # tokens are NaN where a formula does not fit
        X_val, y_val = validation_rows(eval_set)
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
            X_val, y_val = self._stage_columns(predict_inputs(self, X_val, allow_nan=True)), np.asarray(y_val)
        self.classes_ = np.unique(y)
        self.members_ = [self._fit_one(X, y, X_val, y_val, self.seed + i) for i in range(int(self.seeds))]
        self.lattice_classes_ = self.members_[0][0].classes_
        history = getattr(self.members_[0][0], "history_", None)
        if history:
            self.history_ = history  # stage 1's loss curve
        return self

    def predict_lattice_proba(self, X) -> np.ndarray:
        """Stage 1's lattice probabilities (columns: lattice_classes_), averaged over the seeds."""
        X = self._stage_columns(predict_inputs(self, X, allow_nan=True))
        return np.mean([stage1.predict_proba(X) for stage1, _ in self.members_], axis=0)

    def predict_proba(self, X) -> np.ndarray:
        X = predict_inputs(self, X, allow_nan=True)
        out = two_stage_proba(self.members_, self.classes_, self.combine, self._stage_columns(X))
        if self.neighbours_ is not None:
            out = blend_neighbours(out, self.neighbours_, float(self.neighbours["weight"]), *self._tokens(X))
        return out

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)  # checks the model is fitted before classes_ is read
        return self.classes_[proba.argmax(axis=1)]
