"""Space groups of the nearest training formulas that share a formula's stoichiometry pattern (a prototype guess)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

_CHUNK = 1 << 22  # floats in one distance temporary (32 MB)
# element properties compared between formulas of one pattern, and the spread that counts as one unit of distance
SITE_PROPERTIES = {"Electronegativity": 0.5, "CovalentRadius": 30.0, "MendeleevNumber": 15.0, "Row": 1.5, "Column": 4.0}


def _site_table() -> np.ndarray:
    """[Z, property] of SITE_PROPERTIES from the Magpie table, each divided by its spread."""
    from xtalml.features.composition import MAGPIE_PROPERTIES, elemental_tables

    table = elemental_tables()[0]
    return np.column_stack([table[:, MAGPIE_PROPERTIES.index(p)] / s for p, s in SITE_PROPERTIES.items()])


def stoichiometry_patterns(z: np.ndarray, fraction: np.ndarray) -> tuple[list, list]:
    """Per formula (element-token rows): its pattern, the atomic fractions ordered by electronegativity (then Z), and
    the scaled properties of its elements in that order; pattern None where the tokens are missing."""
    table = _site_table()
    electroneg = table[:, 0]
    patterns, vectors = [], []
    for zs, fs in zip(z, fraction):
        if np.isnan(zs).any() or not (zs > 0).any():
            patterns.append(None)
            vectors.append(None)
            continue
        present = zs > 0
        zs, fs = zs[present].astype(int), fs[present]
        order = np.lexsort((zs, electroneg[zs]))
        patterns.append(tuple(np.round(fs[order], 4)))
        vectors.append(table[zs[order]].ravel())
    return patterns, vectors


class PrototypeNeighbours:
    """P(sg) from the k training formulas nearest a formula among those with its stoichiometry pattern.

    A formula such as SrRuO3 has the pattern (0.2, 0.2, 0.6) (fractions ordered by electronegativity); its neighbours
    are the training formulas of that pattern whose elements, site by site, are most alike (electronegativity, radius,
    Mendeleev number, row, column), weighted by exp(-distance / tau). Formulas whose pattern no training row has are
    not covered.
    """

    def __init__(self, k: int = 20, tau: float = 1.0):
        self.k, self.tau = k, tau

    def fit(self, z: np.ndarray, fraction: np.ndarray, y) -> "PrototypeNeighbours":
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)  # the two-stage model's classes_, in order
        rows = defaultdict(list)
        patterns, vectors = stoichiometry_patterns(z, fraction)
        for i, pattern in enumerate(patterns):
            if pattern is not None:
                rows[pattern].append(i)
        self.groups_ = {p: (np.array([vectors[i] for i in idx]), codes[idx]) for p, idx in rows.items()}
        return self

    def predict_proba(self, z: np.ndarray, fraction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities over classes_, whether each row's pattern has training rows)."""
        out = np.zeros((len(z), len(self.classes_)))
        rows = defaultdict(list)
        patterns, vectors = stoichiometry_patterns(z, fraction)
        for i, pattern in enumerate(patterns):
            if pattern in self.groups_:
                rows[pattern].append(i)
        for pattern, idx in rows.items():
            train, codes = self.groups_[pattern]
            k = min(self.k, len(train))
            query = np.array([vectors[i] for i in idx])
            chunk = max(1, _CHUNK // (len(train) * train.shape[1]))  # bounds the query × train × property temporary
            for start in range(0, len(idx), chunk):
                q = query[start:start + chunk]
                distance = np.sqrt(((q[:, None, :] - train[None, :, :]) ** 2).sum(axis=2))
                nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
                d = np.take_along_axis(distance, nearest, axis=1)
                weight = np.exp(-(d - d[:, :1]) / self.tau)  # shifted by the nearest: the same shares, no underflow
                block = np.zeros((len(q), len(self.classes_)))
                np.add.at(block, (np.repeat(np.arange(len(q)), k), codes[nearest].ravel()), weight.ravel())
                out[idx[start:start + chunk]] = block / block.sum(axis=1, keepdims=True)
        covered = np.zeros(len(z), dtype=bool)
        covered[[i for idx in rows.values() for i in idx]] = True
        return out, covered
