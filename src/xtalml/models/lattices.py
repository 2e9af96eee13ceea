"""Space groups by Bravais lattice: the two-stage model's arithmetic in numpy alone, shared by the fitted model and its
compact form (which must load without scikit-learn)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from xtalml.cif.symmetry import space_group_info


def lattice_of(label: str) -> str:
    """Bravais lattice of a space-group label ('14' → 'mP'); any other label ('other', a merged class) is its own."""
    text = str(label)
    return space_group_info(int(text))[2] if text.isdigit() and 1 <= int(text) <= 230 else text


def lattice_proba(proba: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
    """Bravais-lattice probabilities from space-group probabilities: the sum over each lattice's groups."""
    lattices = np.array([lattice_of(c) for c in np.asarray(classes).astype(str)])
    names = np.unique(lattices)
    return names, np.column_stack([proba[:, lattices == name].sum(axis=1) for name in names])


class ConstantExpert:
    """The expert of a lattice with one space group in the training rows."""

    def __init__(self, label: str):
        self.classes_ = np.array([label])

    def predict_proba(self, X) -> np.ndarray:
        return np.ones((len(X), 1))


def two_stage_proba(members: Sequence[tuple[Any, Mapping[str, Any]]], classes: np.ndarray, combine: str,
                    X: np.ndarray) -> np.ndarray:
    """P(sg) = Σ_b P(b) · P(sg | b), averaged over the members (stage 1, {lattice: expert}); combine='hard' keeps only
    each row's most likely lattice. An expert sees only the rows its lattice carries weight on."""
    column = {c: i for i, c in enumerate(np.asarray(classes).astype(str))}
    out = np.zeros((len(X), len(classes)))
    for stage1, experts in members:
        p_lattice = stage1.predict_proba(X)
        if combine == "hard":
            p_lattice = np.eye(p_lattice.shape[1])[p_lattice.argmax(axis=1)]
        for j, lattice in enumerate(np.asarray(stage1.classes_).astype(str)):
            rows = np.flatnonzero(p_lattice[:, j])
            if not rows.size:
                continue
            expert = experts[lattice]
            cols = [column[c] for c in np.asarray(expert.classes_).astype(str)]
            out[np.ix_(rows, cols)] += p_lattice[rows, j:j + 1] * expert.predict_proba(X[rows])
    return out / len(members)


def blend_neighbours(proba: np.ndarray, neighbours, weight: float, z: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """(1 - weight) P + weight P_neighbours on the rows whose stoichiometry pattern the neighbours know (in place)."""
    near, covered = neighbours.predict_proba(z, fraction)
    proba[covered] = (1 - weight) * proba[covered] + weight * near[covered]  # both have columns classes_
    return proba
