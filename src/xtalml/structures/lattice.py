"""Lattice parameters from composition, per Bravais lattice (CRYSPNet's third model), in scale-free form.

A cell is described by the ratios and angles its lattice leaves free (cubic none; tetragonal, hexagonal and
rhombohedral c/a, the last in hexagonal axes; orthorhombic b/a, c/a; monoclinic b/a, c/a, beta; triclinic all five)
and its size by the volume: the volume-per-atom model's answer times the atoms in the cell.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

FREE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "cP": (), "cI": (), "cF": (),
    "tP": ("c/a",), "tI": ("c/a",), "hP": ("c/a",), "hR": ("c/a",),
    "oP": ("b/a", "c/a"), "oC": ("b/a", "c/a"), "oI": ("b/a", "c/a"), "oF": ("b/a", "c/a"),
    "mP": ("b/a", "c/a", "beta"), "mC": ("b/a", "c/a", "beta"),
    "aP": ("b/a", "c/a", "alpha", "beta", "gamma"),
}
RIGHT = 90.0
_TOL = 1e-3


def _close(x: float, y: float, rel: float = _TOL) -> bool:
    return abs(x - y) <= rel * max(abs(x), abs(y), 1.0)


def scale_free(lattice: str, a: float, b: float, c: float, alpha: float, beta: float, gamma: float) -> dict[str, float]:
    """The free ratios and angles of a cell in its lattice's standard orientation (unique axis c for tetragonal and
    hexagonal cells, b for monoclinic ones; rhombohedral cells in hexagonal axes; triclinic cells Niggli-reduced)."""
    if lattice not in FREE_PARAMETERS:
        raise ValueError(f"unknown Bravais lattice {lattice!r}; expected one of {', '.join(FREE_PARAMETERS)}")
    if lattice[0] == "c":
        return {}
    if lattice in ("tP", "tI", "hP", "hR"):
        if lattice == "hR" and _close(a, b) and _close(b, c) and not _close(alpha, RIGHT):  # rhombohedral axes
            cos_a = math.cos(math.radians(alpha))
            a_h, c_h = 2 * a * math.sin(math.radians(alpha) / 2), a * math.sqrt(3 * (1 + 2 * cos_a))
            return {"c/a": c_h / a_h}
        lengths = (a, b, c)
        pairs = [(0, 1, 2), (0, 2, 1), (1, 2, 0)]  # the two equal axes and the unique one
        i, j, k = min(pairs, key=lambda p: abs(lengths[p[0]] - lengths[p[1]]))
        return {"c/a": lengths[k] / ((lengths[i] + lengths[j]) / 2)}
    if lattice[0] == "o":
        return {"b/a": b / a, "c/a": c / a}
    if lattice[0] == "m":
        angles = (alpha, beta, gamma)
        unique = int(np.argmax([abs(x - RIGHT) for x in angles]))  # the axis whose angle is not 90°
        lengths = [a, b, c]
        others = [lengths[i] for i in range(3) if i != unique]
        monoclinic = angles[unique] if angles[unique] >= RIGHT else 180.0 - angles[unique]
        return {"b/a": lengths[unique] / others[0], "c/a": others[1] / others[0], "beta": monoclinic}
    from pymatgen.core import Lattice

    reduced = Lattice.from_parameters(a, b, c, alpha, beta, gamma).get_niggli_reduced_lattice()
    ra, rb, rc = reduced.abc
    al, be, ga = reduced.angles
    return {"b/a": rb / ra, "c/a": rc / ra, "alpha": al, "beta": be, "gamma": ga}


def cell_parameters(lattice: str, free: Mapping[str, float], volume: float) -> dict[str, float]:
    """a, b, c, alpha, beta, gamma of the conventional cell with these free parameters and this volume (Å³); an
    rhombohedral cell is given in hexagonal axes, with its rhombohedral a_r and alpha_r beside."""
    ratio_b, ratio_c = float(free.get("b/a", 1.0)), float(free.get("c/a", 1.0))
    alpha, beta, gamma = (float(free.get(k, RIGHT)) for k in ("alpha", "beta", "gamma"))
    if lattice in ("tP", "tI", "cP", "cI", "cF"):
        ratio_b = 1.0
    if lattice in ("hP", "hR"):
        ratio_b, gamma = 1.0, 120.0
    ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha, beta, gamma))
    shape = math.sqrt(max(1 - ca ** 2 - cb ** 2 - cg ** 2 + 2 * ca * cb * cg, 1e-12))
    a = (volume / (ratio_b * ratio_c * shape)) ** (1 / 3)
    cell = {"a": a, "b": a * ratio_b, "c": a * ratio_c, "alpha": alpha, "beta": beta, "gamma": gamma}
    if lattice == "hR":
        a_r = math.sqrt(3 * a ** 2 + cell["c"] ** 2) / 3
        cell["a_rhombohedral"] = a_r
        cell["alpha_rhombohedral"] = math.degrees(2 * math.asin(min(1.0, a / (2 * a_r))))
    return cell


def _targets(lattice: str, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
    """Regression targets: log ratios (symmetric errors for ratios) and angles in degrees."""
    names = FREE_PARAMETERS[lattice]
    return np.array([[math.log(r[n]) if "/" in n else r[n] for n in names] for r in rows], dtype=float).reshape(len(rows), len(names))


def _from_targets(lattice: str, values: np.ndarray) -> list[dict[str, float]]:
    names = FREE_PARAMETERS[lattice]
    return [{n: float(math.exp(v) if "/" in n else v) for n, v in zip(names, row)} for row in np.atleast_2d(values)]


class LatticeParameterRegressor:
    """One multi-output forest per Bravais lattice: composition features -> free ratios and angles (fit/predict)."""

    def __init__(self, n_estimators: int = 200, min_samples_leaf: int = 2, max_features: float = 0.33,
                 min_rows: int = 10, seed: int = 0, n_jobs: int = 1):
        self.n_estimators, self.min_samples_leaf, self.max_features = n_estimators, min_samples_leaf, max_features
        self.min_rows, self.seed, self.n_jobs = min_rows, seed, n_jobs

    def fit(self, X: np.ndarray, lattices: Sequence[str], free: Sequence[Mapping[str, float]]) -> "LatticeParameterRegressor":
        """Fit each lattice with at least min_rows rows; the others fall back to the lattice's median (baseline)."""
        from sklearn.ensemble import RandomForestRegressor

        lattices = np.asarray(lattices).astype(str)
        self.median_ = MedianLatticeParameters().fit(X, lattices, free)
        self.forests_: dict[str, Any] = {}
        for lattice, names in FREE_PARAMETERS.items():
            rows = np.flatnonzero(lattices == lattice)
            if not names or len(rows) < self.min_rows:
                continue
            forest = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                           max_features=self.max_features, random_state=self.seed, n_jobs=self.n_jobs)
            y = _targets(lattice, [free[i] for i in rows])
            self.forests_[lattice] = forest.fit(X[rows], y[:, 0] if y.shape[1] == 1 else y)
        return self

    def predict(self, X: np.ndarray, lattices: Sequence[str]) -> list[dict[str, float]]:
        """The free parameters of each row's cell in its given lattice."""
        lattices = np.asarray(lattices).astype(str)
        out = self.median_.predict(X, lattices)
        for lattice, forest in self.forests_.items():
            rows = np.flatnonzero(lattices == lattice)
            if len(rows):
                for i, values in zip(rows, _from_targets(lattice, forest.predict(X[rows]).reshape(len(rows), -1))):
                    out[i] = values
        return out


class MedianLatticeParameters:
    """Baseline: every formula gets its lattice's median ratios and angles over the train rows."""

    def fit(self, X: np.ndarray, lattices: Sequence[str], free: Sequence[Mapping[str, float]]) -> "MedianLatticeParameters":
        lattices = np.asarray(lattices).astype(str)
        self.medians_: dict[str, dict[str, float]] = {}
        for lattice, names in FREE_PARAMETERS.items():
            rows = np.flatnonzero(lattices == lattice)
            values = _targets(lattice, [free[i] for i in rows]) if len(rows) else np.zeros((0, len(names)))
            typical = {"b/a": 0.0, "c/a": 0.0, "alpha": RIGHT, "beta": 100.0, "gamma": RIGHT}  # log 1, or an angle
            medians = np.median(values, axis=0) if len(rows) else np.array([typical[n] for n in names])
            self.medians_[lattice] = _from_targets(lattice, medians.reshape(1, -1))[0] if names else {}
        return self

    def predict(self, X: np.ndarray, lattices: Sequence[str]) -> list[dict[str, float]]:
        return [dict(self.medians_.get(str(lat), {})) for lat in lattices]
