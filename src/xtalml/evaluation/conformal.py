"""Split-conformal prediction sets: calibrate on held-out rows, then a set per input that covers the truth at a chosen rate."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np


def _true_columns(classes: Sequence, y_true: Sequence) -> np.ndarray:
    """Column of each row's true class among the model's classes; −1 where the model does not know it."""
    index = {str(c): i for i, c in enumerate(classes)}
    return np.array([index.get(str(y), -1) for y in y_true])


def nonconformity(proba: np.ndarray, classes: Sequence, y_true: Sequence) -> np.ndarray:
    """1 − probability the model gave the true class (1 where the true class is not one of the model's)."""
    cols = _true_columns(classes, y_true)
    p_true = np.where(cols >= 0, proba[np.arange(len(cols)), np.maximum(cols, 0)], 0.0)
    return 1.0 - p_true


def conformal_threshold(calibration_scores: Sequence[float], coverage: float) -> float:
    """The ⌈(n+1)·coverage⌉-th smallest calibration score; 1 (every class) when n is too small for the coverage."""
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must lie strictly between 0 and 1, got {coverage}")
    scores = np.sort(np.asarray(calibration_scores, float))
    if len(scores) == 0:
        raise ValueError("no calibration scores: the conformal stage found no calibration rows")
    rank = math.ceil((len(scores) + 1) * coverage)
    return float(scores[rank - 1]) if rank <= len(scores) else 1.0


def prediction_sets(proba: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask (rows × classes): classes whose score 1 − p is within the threshold, plus each row's top class."""
    mask = (1.0 - proba) <= threshold + 1e-12
    mask[np.arange(len(proba)), proba.argmax(axis=1)] = True  # never an empty set; only adds coverage
    return mask


def set_coverage(mask: np.ndarray, classes: Sequence, y_true: Sequence) -> dict[str, float]:
    """How often the set holds the true class, and the set sizes."""
    cols = _true_columns(classes, y_true)
    hit = np.where(cols >= 0, mask[np.arange(len(cols)), np.maximum(cols, 0)], False)
    sizes = mask.sum(axis=1)
    return {"coverage": float(hit.mean()), "mean_set_size": float(sizes.mean()), "median_set_size": float(np.median(sizes)),
            "singleton_share": float((sizes == 1).mean()), "max_set_size": int(sizes.max())}


def top_k_curve(proba: np.ndarray, classes: Sequence, y_true: Sequence, k_max: int) -> list[float]:
    """Top-k accuracy for k = 1 … k_max."""
    cols = _true_columns(classes, y_true)
    order = np.argsort(-proba, axis=1, kind="stable")
    rank = np.full(len(cols), np.inf)
    known = cols >= 0
    rank[known] = np.argmax(order[known] == cols[known, None], axis=1) + 1
    return [float((rank <= k).mean()) for k in range(1, k_max + 1)]


def conformal_evaluation(calibration_scores: np.ndarray, proba_test: np.ndarray, classes: Sequence, y_test: Sequence,
                         coverages: Sequence[float]) -> dict[str, Any]:
    """Per target coverage: threshold, coverage reached on the test rows and set sizes."""
    out = {}
    for coverage in coverages:
        threshold = conformal_threshold(calibration_scores, coverage)
        out[f"{coverage:g}"] = {"target": float(coverage), "threshold": threshold,
                                **set_coverage(prediction_sets(proba_test, threshold), classes, y_test)}
    return out
