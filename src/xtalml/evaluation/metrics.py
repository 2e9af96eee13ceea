"""Classification and regression metrics, computed on held-out rows, in real units (Å³ for volumes)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm


def scores_of(model, X, call: Callable | None = None) -> np.ndarray | None:
    """Class scores for ranking: probabilities where the model has them, else decision values. call(method) runs a
    prediction method on X (by default method(X))."""
    call = call or (lambda method: method(X))
    if hasattr(model, "predict_proba"):
        try:
            return np.asarray(call(model.predict_proba))
        except AttributeError:  # e.g. SVC without probability=True
            pass
    if hasattr(model, "decision_function"):
        scores = np.asarray(call(model.decision_function))
        return scores if scores.ndim == 2 else None
    return None


def top_k(y_true: np.ndarray, scores: np.ndarray, classes: Sequence, k: int) -> float:
    """Share of rows whose true class is among the k best-scored classes (unknown classes count as misses)."""
    classes = np.asarray(classes)
    if k >= len(classes):
        return float(np.isin(y_true, classes).mean())
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((classes[best] == np.asarray(y_true)[:, None]).any(axis=1).mean())


def classification_metrics(y_true, y_pred, scores: np.ndarray | None = None, classes: Sequence | None = None,
                           per_class: bool = True) -> dict:
    """Accuracy, top-3/5/10, balanced accuracy, weighted and macro precision/recall/F1, per-class report."""
    y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    out = {"accuracy": float(skm.accuracy_score(y_true, y_pred)),
           "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)), "n": int(len(y_true))}
    for average in ("weighted", "macro"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        out |= {f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)}
    if scores is not None and classes is not None:
        for k in (3, 5, 10):
            out[f"top{k}_accuracy"] = top_k(y_true, scores, np.asarray(classes).astype(str), k)
    if per_class:
        out["per_class"] = {c: {k: float(v) for k, v in row.items()} for c, row in skm.classification_report(
            y_true, y_pred, output_dict=True, zero_division=0).items() if isinstance(row, dict) and c not in (
            "macro avg", "weighted avg")}
    return out


def polymorph_accuracy(y_true, y_pred, formulas) -> float:
    """Share of rows whose predicted label is one the same formula has anywhere in these rows (polymorph-aware)."""
    frame = pd.DataFrame({"formula": np.asarray(formulas), "true": np.asarray(y_true).astype(str)})
    known = frame.groupby("formula")["true"].agg(set)
    labels = known.loc[frame["formula"]].to_numpy()
    return float(np.mean([p in s for p, s in zip(np.asarray(y_pred).astype(str), labels)]))


def regression_metrics(y_true, y_pred) -> dict:
    """MAE, RMSE, R² and MAPE (%) in the target's own units."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    return {"mae": float(skm.mean_absolute_error(y_true, y_pred)),
            "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
            "r2": float(skm.r2_score(y_true, y_pred)),
            "mape": float(np.mean(np.abs((y_pred - y_true) / y_true)) * 100), "n": int(len(y_true))}


HEADLINE = {"classification": ("accuracy", "top5_accuracy", "f1_macro"), "regression": ("mae", "r2")}


def headline_metrics(result: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """What a sweep compares, from a full evaluation: test and validation headline figures and the first of them per
    source. The rest (baselines, the same for every model of a task and collected once in reports/baselines.json by the
    report stage; per-class tables, CV folds, row counts, timings) stays in the evaluation file."""
    keys = HEADLINE[kind]

    def pick(metrics: Mapping[str, Any], names: Sequence[str] = keys) -> dict[str, float]:
        return {k: metrics[k] for k in names if k in metrics}

    out: dict[str, Any] = {"test": pick(result["test"])}
    if result.get("validation"):
        out["validation"] = pick(result["validation"])
    if result.get("test_by_source"):
        out["test_by_source"] = {s: pick(m, keys[:1]) for s, m in result["test_by_source"].items()}
    return out
