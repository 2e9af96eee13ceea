"""Report figures (PNG): confusion, parity and residuals, accuracy per group, top-k, importances, learning curves."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path: Path, dpi: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def confusion_figure(true: Sequence[str], predicted: Sequence[str], top: int, title: str, path: Path, dpi: int) -> Path:
    """Row-normalised confusion matrix over the most frequent true classes; every other class is 'rest'."""
    true, predicted = pd.Series(true, dtype=str), pd.Series(predicted, dtype=str)
    keep = list(true.value_counts().index[:top])
    t = true.where(true.isin(keep), "rest")
    p = predicted.where(predicted.isin(keep), "rest")
    labels = keep + (["rest"] if (t == "rest").any() or (p == "rest").any() else [])
    matrix = pd.crosstab(t, p).reindex(index=labels, columns=labels, fill_value=0).to_numpy(float)
    matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.45 * len(labels) + 2.5, 0.45 * len(labels) + 2))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    return _save(fig, path, dpi)


def parity_figure(true: Sequence[float], predicted: Sequence[float], unit: str, title: str, path: Path, dpi: int) -> Path:
    """Predicted against true (log axes) and residuals against true."""
    true, predicted = np.asarray(true, float), np.asarray(predicted, float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    left.scatter(true, predicted, s=4, alpha=0.4)
    low, high = min(true.min(), predicted.min()), max(true.max(), predicted.max())
    left.plot([low, high], [low, high], color="k", lw=0.8)
    left.set(xscale="log", yscale="log", xlabel=f"true {unit}", ylabel=f"predicted {unit}", title=title)
    right.scatter(true, predicted - true, s=4, alpha=0.4)
    right.axhline(0, color="k", lw=0.8)
    right.set(xscale="log", xlabel=f"true {unit}", ylabel=f"predicted − true {unit}", title="residuals")
    left.title.set_fontsize(9)
    return _save(fig, path, dpi)


def grouped_accuracy_figure(accuracy: pd.DataFrame, title: str, path: Path, dpi: int) -> Path:
    """Bars of accuracy per group (index) for each column (model or baseline), with the test rows per group."""
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(accuracy) + 3), 4))
    width = 0.8 / max(1, accuracy.shape[1] - 1)
    columns = [c for c in accuracy.columns if c != "rows"]
    for i, column in enumerate(columns):
        ax.bar(np.arange(len(accuracy)) + i * width, accuracy[column], width, label=column)
    ax.set_xticks(np.arange(len(accuracy)) + width * (len(columns) - 1) / 2,
                  [f"{g}\n(n={n})" for g, n in zip(accuracy.index, accuracy["rows"])], fontsize=8)
    ax.set(ylim=(0, 1), ylabel="accuracy on test rows", title=title)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    return _save(fig, path, dpi)


def top_k_figure(curves: Mapping[str, Mapping[int, float]], path: Path, dpi: int) -> Path:
    """Top-k accuracy against k, one line per (task, model)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in curves.items():
        ks = sorted(points)
        ax.plot(ks, [points[k] for k in ks], marker="o", ms=3, label=label)
    ax.set(xlabel="k", ylabel="top-k accuracy (test)", ylim=(0, 1), title="Top-k accuracy")
    ax.legend(fontsize=7)
    return _save(fig, path, dpi)


def importance_figure(importance: pd.DataFrame, top: int, title: str, path: Path, dpi: int) -> Path:
    """Horizontal bars of the largest feature importances, as shares of the model's total (LightGBM's are split gains)."""
    total = importance["importance"].sum()
    rows = importance.sort_values("importance", ascending=False).head(top)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(rows) + 1.2))
    ax.barh(rows["feature"], rows["importance"] / (total if total > 0 else 1.0))
    ax.set(xlabel="share of the model's total feature importance", title=title)
    ax.title.set_fontsize(9)
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path, dpi)


def learning_curves_figure(histories: Mapping[str, pd.DataFrame], title: str, path: Path, dpi: int) -> Path:
    """Train and validation loss per epoch, one panel per model (losses differ in kind between models)."""
    n = len(histories)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.4), squeeze=False)
    for ax, (model, history) in zip(axes[0], histories.items()):
        for column in [c for c in history.columns if c != "epoch"]:
            ax.plot(history["epoch"], history[column], label=column)
        ax.set(yscale="log", xlabel="epoch", title=model)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path, dpi)


def class_distribution_figure(counts: Mapping[str, pd.Series], title: str, path: Path, dpi: int) -> Path:
    """Rows per class (for example per crystal system), one bar group per table."""
    frame = pd.DataFrame(counts).fillna(0)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    (frame / frame.sum()).plot.bar(ax=ax)
    ax.set(ylabel="share of rows", title=title)
    ax.title.set_fontsize(9)
    return _save(fig, path, dpi)


def match_curve_figure(curves: Mapping[str, Sequence[float]], path: Path, dpi: int) -> Path:
    """CSP benchmark: share of formulas whose true structure is among the first k candidates, one line per arm."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm, rates in curves.items():
        ax.plot(range(1, len(rates) + 1), rates, marker="o", ms=3, label=arm)
    ax.set(xlabel="candidates per formula", ylabel="match rate (CSPBench tolerances)", ylim=(0, 1),
           title="Structure found among the first k candidates")
    ax.legend(fontsize=8)
    return _save(fig, path, dpi)
