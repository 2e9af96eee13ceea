"""Split-conformal prediction sets: calibrate on held-out rows, then a set per input that covers the truth at a chosen rate."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from xtalml.tasks import DataDirs



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
    """Per target coverage: coverage reached on the test rows and set sizes, with one threshold for all rows."""
    scores = np.asarray(calibration_scores, float)
    return mondrian_evaluation(scores, np.zeros(len(scores), dtype=int), proba_test, np.zeros(len(proba_test), dtype=int),
                               classes, y_test, coverages)


def calibration_model(model_name: str, model_cfg: Mapping[str, Any], task, seed: int):
    """A copy of a model fitted on `task`'s train rows alone, and the mask of the validation rows left to calibrate it.

    A model that early-stops watches half of the validation groups (chemical systems or formulas, whole) and is
    calibrated on the other half, so no calibration row ever steered its fit."""
    from xtalml.models.registry import build_model, early_stops

    model = build_model(model_name, model_cfg, seed, task.feature_names)
    groups = task.frames["val"]["group"].astype(str).to_numpy()
    if not early_stops(model_name, model_cfg):
        return model.fit(task.X["train"], task.y["train"]), np.ones(len(groups), dtype=bool)
    names = np.unique(groups)
    watched = np.isin(groups, np.random.default_rng(seed).permutation(names)[: len(names) // 2])
    model.fit(task.X["train"], task.y["train"], eval_set=[(task.X["val"][watched], task.y["val"][watched])])
    return model, ~watched


def mondrian_key(formulas: Sequence[str], by: str | None) -> np.ndarray:
    """The calibration group of each formula: its number of elements (1, 2, 3, 4, 5 for five or more), or one group."""
    if not by:
        return np.zeros(len(formulas), dtype=int)
    if by != "n_elements":
        raise ValueError(f"conformal.mondrian={by!r}: choose n_elements or null")
    from xtalml.splitting import group_labels

    systems = group_labels(pd.DataFrame({"formula": list(formulas), "reduced_formula": list(formulas)}), "chemical_system")
    return np.minimum(systems.str.count("-").to_numpy() + 1, 5)


def mondrian_thresholds(scores: np.ndarray, keys: np.ndarray, coverage: float) -> dict[int, float]:
    """One split-conformal threshold per calibration group (Mondrian conformal prediction); key -1 is all rows."""
    out = {-1: conformal_threshold(scores, coverage)}
    for key in np.unique(keys):
        out[int(key)] = conformal_threshold(scores[keys == key], coverage)
    return out


def mondrian_sets(proba: np.ndarray, keys: np.ndarray, thresholds: Mapping[int, float]) -> np.ndarray:
    """Prediction sets with each row's group threshold (the pooled one for a group the calibration lacked)."""
    mask = np.zeros(proba.shape, dtype=bool)
    for key in np.unique(keys):
        rows = keys == key
        mask[rows] = prediction_sets(proba[rows], thresholds.get(int(key), thresholds[-1]))
    return mask


def mondrian_evaluation(scores: np.ndarray, keys: np.ndarray, proba: np.ndarray, test_keys: np.ndarray,
                        classes: Sequence, y_test: Sequence, coverages: Sequence[float]) -> dict[str, Any]:
    """Per target coverage: coverage reached on these test rows and set sizes, with per-group thresholds."""
    out = {}
    for coverage in coverages:
        thresholds = mondrian_thresholds(scores, keys, coverage)
        out[f"{coverage:g}"] = {"target": float(coverage),
                                **set_coverage(mondrian_sets(proba, test_keys, thresholds), classes, y_test)}
    return out


def conformal_model_name(params: Mapping[str, Any], task_name: str, task_metrics: Path) -> str:
    """conformal.model, or with `champion` the task's model best on the validation rows (xtalml.champions, as the
    register stage chooses it)."""
    name = params["conformal"]["model"]
    if name != "champion":
        return name
    from xtalml.champions import choose_champion

    return choose_champion(params, task_name, task_metrics)["champion"]


def calibrate_sets(params: Mapping[str, Any], task_models: Path, task_metrics: Path, data: DataDirs,
                   split_modes: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Calibration scores for the configured model of conformal.task (its models in task_models, its train stages'
    metrics in task_metrics), and their coverage on the test rows of both splits (data's, and split_modes').

    calibration: chemical_system fits a copy of the model on the chemical-system split's train rows and calibrates on
    its validation rows, whose element sets it never saw: scores of new chemistry, for any model, also one refitted on
    the main split's validation rows. The sets are then tested with the deployed model on the main split's test
    rows, and with the copy on the chemical-system split's test rows (rows neither model saw). calibration:
    validation uses the deployed model's own validation rows (a model trained on the train rows alone).
    """
    import joblib

    from xtalml.models.registry import task_inputs, trained_on_validation_rows
    from xtalml.tasks import DataDirs, load_task, model_config

    cfg = params["conformal"]
    task_name, method, by = cfg["task"], cfg["calibration"], cfg.get("mondrian")
    task_cfg = params["tasks"][task_name]
    model_name = conformal_model_name(params, task_name, task_metrics)
    model_cfg = model_config(task_cfg, model_name, params["models"])
    seed, coverages = int(params["train"]["seed"]), list(cfg["coverages"])
    if method not in ("chemical_system", "validation"):
        raise ValueError(f"conformal.calibration={method!r}: choose chemical_system or validation")
    if method == "validation" and trained_on_validation_rows(model_name, model_cfg):
        raise ValueError(f"conformal.calibration=validation: {model_name} saw the validation rows in training "
                         f"(early stopping or refit_with_val_rows); use calibration: chemical_system")
    if method == "chemical_system" and params["split_modes"]["group"] != "chemical_system":
        raise ValueError("conformal.calibration=chemical_system reads the split_modes assignment: set "
                         "split_modes.group: chemical_system")
    deployed = joblib.load(Path(task_models) / f"{model_name}.pkl")["model"]
    main = load_task(task_name, task_cfg, data, **task_inputs(model_name))
    scored = {"main_split": (deployed, main)}
    if method == "validation":
        model, calibration_task, rows = deployed, main, np.ones(len(main.y["val"]), dtype=bool)
    else:
        calibration_task = load_task(task_name, task_cfg, DataDirs(data.features, Path(split_modes)),
                                     **task_inputs(model_name))
        model, rows = calibration_model(model_name, model_cfg, calibration_task, seed)
        scored["chemical_system_split"] = (model, calibration_task)
    classes = [str(c) for c in model.classes_]
    scores = nonconformity(model.predict_proba(calibration_task.X["val"][rows]), classes, calibration_task.y["val"][rows])
    keys = mondrian_key(calibration_task.frames["val"]["reduced_formula"].to_numpy()[rows], by)
    result: dict[str, Any] = {"task": task_name, "model": model_name, "calibration": method, "mondrian": by,
                              "calibration_rows": int(len(scores)), "test": {}}
    for split, (fitted, task) in scored.items():
        proba = fitted.predict_proba(task.X["test"])
        test_keys = mondrian_key(task.frames["test"]["reduced_formula"].to_numpy(), by)
        fitted_classes = [str(c) for c in fitted.classes_]
        result["test"][split] = {"rows": int(len(task.y["test"])), "sets": {
            k: {m: v[m] for m in ("coverage", "mean_set_size", "median_set_size")} for k, v in mondrian_evaluation(
                scores, keys, proba, test_keys, fitted_classes, task.y["test"], coverages).items()}}
        if split == "main_split":
            result["top_k_accuracy"] = top_k_curve(proba, fitted_classes, task.y["test"], int(cfg["top_k_max"]))
    calibration = {"task": task_name, "model": model_name, "calibration": method, "mondrian": by,
                   "scores": [float(s) for s in scores], "keys": [int(k) for k in keys]}
    return calibration, result
