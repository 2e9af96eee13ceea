"""Cell-geometry features from the six cell parameters alone."""

from __future__ import annotations

import numpy as np
import pandas as pd

GEOMETRY_FEATURES = (
    "geom_a", "geom_b", "geom_c", "geom_alpha", "geom_beta", "geom_gamma",
    "geom_cos_alpha", "geom_cos_beta", "geom_cos_gamma", "geom_abc", "geom_anisotropy_ac",
    "geom_b_over_a", "geom_c_over_a", "geom_shape_factor", "geom_volume_analytic", "geom_inverse_volume")


def analytic_volume(a, b, c, alpha, beta, gamma) -> np.ndarray:
    """Cell volume V = abc·sqrt(1 − cos²α − cos²β − cos²γ + 2cosα cosβ cosγ), angles in degrees."""
    ca, cb, cg = (np.cos(np.radians(np.asarray(x, dtype=float))) for x in (alpha, beta, gamma))
    inner = 1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg
    return np.asarray(a, float) * np.asarray(b, float) * np.asarray(c, float) * np.sqrt(np.where(inner > 0, inner, np.nan))


def geometry_features(cells: pd.DataFrame) -> pd.DataFrame:
    """Geometry features for rows with columns a, b, c, alpha, beta, gamma (NaN where the cell is missing)."""
    a, b, c = (cells[k].to_numpy(float) for k in ("a", "b", "c"))
    angles = [cells[k].to_numpy(float) for k in ("alpha", "beta", "gamma")]
    volume = analytic_volume(a, b, c, *angles)
    cosines = [np.cos(np.radians(x)) for x in angles]
    abc = a * b * c
    values = [a, b, c, *angles, *cosines, abc, np.abs(a - c) / (a + c), b / a, c / a, abc / volume, volume, 1 / volume]
    return pd.DataFrame(dict(zip(GEOMETRY_FEATURES, values)), index=cells.index)
