"""Grouped, stratified k-fold cross-validation over a task's training rows.

Its own light module: the worker processes that fit folds import it, and not MLflow with xtalml.training.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import clone

from xtalml.splitting import grouped_kfold

if TYPE_CHECKING:
    from xtalml.tasks import TaskData


def subsample_rows(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted positions of a seeded subsample of n rows, at most `limit` (all rows when limit is None)."""
    rows = np.arange(n)
    if limit and n > limit:
        rows = np.sort(np.random.default_rng(seed).choice(n, int(limit), replace=False))
    return rows


def _fold_accuracy(model, X: np.ndarray, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray) -> float:
    fitted = clone(model).fit(X[train_idx], y[train_idx])
    return float((fitted.predict(X[val_idx]).astype(str) == y[val_idx].astype(str)).mean())


def _timed_fit(model, X: np.ndarray, y: np.ndarray) -> tuple[Any, float]:
    started = time.perf_counter()
    fitted = clone(model).fit(X, y)
    return fitted, time.perf_counter() - started


def cross_validate_and_fit(model, task: TaskData, folds: int, max_rows: int | None, seed: int,
                           fit_rows: np.ndarray | None = None, n_jobs: int = 1) -> tuple[dict[str, Any], Any, float]:
    """Accuracy per fold of a grouped, stratified k-fold over the training rows (optionally a subsample) and, with
    fit_rows, the model fitted on those training rows. The final fit and the folds are jobs of one pool of n_jobs
    processes of one thread each, so they run side by side and give what one process gives.

    Returns (cv summary, fitted model or None, its fit seconds).
    """
    from joblib import Parallel, delayed, parallel_config

    rows = subsample_rows(len(task.y["train"]), max_rows, seed)
    X, y = task.X["train"][rows], task.y["train"][rows]
    groups = task.frames["train"]["reduced_formula"].to_numpy()[rows]
    jobs = [delayed(_fold_accuracy)(model, X, y, train_idx, val_idx)
            for train_idx, val_idx in grouped_kfold(y, groups, folds, seed)]
    if fit_rows is not None:  # the longest job first
        jobs.insert(0, delayed(_timed_fit)(model, task.X["train"][fit_rows], task.y["train"][fit_rows]))
    with parallel_config(backend="loky", inner_max_num_threads=1):
        done = Parallel(n_jobs=n_jobs)(jobs)
    fitted, seconds = done.pop(0) if fit_rows is not None else (None, 0.0)
    summary = {"folds": folds, "rows": int(len(rows)), "accuracy_mean": float(np.mean(done)),
               "accuracy_std": float(np.std(done)), "accuracy_per_fold": done}
    return summary, fitted, seconds


def cross_validate(model, task: TaskData, folds: int, max_rows: int | None, seed: int, n_jobs: int = 1) -> dict[str, Any]:
    """Accuracy per fold of a grouped, stratified k-fold over the training rows (optionally a subsample)."""
    return cross_validate_and_fit(model, task, folds, max_rows, seed, None, n_jobs)[0]
