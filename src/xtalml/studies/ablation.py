"""Feature-set ablation: one model per composition task refit on each set of composition feature groups, same rows."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import pandas as pd

from xtalml.features.composition import Parsed, composition_features, formula_arrays
from xtalml.features.embeddings import table_specs
from xtalml.models.registry import build_model
from xtalml.tasks import PARTS, DataDirs, TaskData, load_task, model_config
from xtalml.evaluation.cross_validation import subsample_rows
from xtalml.training import fit_and_evaluate

HEADLINE = ("accuracy", "top3_accuracy", "top5_accuracy", "top10_accuracy", "mae", "r2")


def with_feature_set(task: TaskData, groups: Sequence[str], element_tables: Mapping[str, Any],
                     parsed: Mapping[str, Parsed] | None = None) -> tuple[TaskData, dict]:
    """The task with its composition features recomputed from each row's formula for these groups, and row counts.

    A row whose elements an embedding table lacks has NaN in that table's columns only (the model must accept
    missing values); composition_features would blank the whole row, so each group is computed on its own.
    `parsed`: formula_arrays of each part's formulas, when the caller has them.
    """
    X, missing, names = {}, {}, []
    for part in PARTS:
        formulas = task.frames[part]["reduced_formula"].tolist()
        arrays = parsed[part] if parsed else formula_arrays(formulas)
        frame = pd.concat([composition_features(formulas, [group], element_tables, arrays)[0] for group in groups],
                          axis=1)
        X[part], names = frame.to_numpy(), list(frame.columns)
        missing[part] = int(frame.isna().any(axis=1).sum())
    return dataclasses.replace(task, X=X, feature_names=names), {"rows_with_missing_features": missing}


def subsampled(task: TaskData, limits: Mapping[str, int | None], seed: int) -> TaskData:
    """The task with a seeded subsample of the rows of each part named in limits ({'train': 20000, ...})."""
    keep = {part: subsample_rows(len(task.y[part]), limits.get(part), seed) for part in PARTS}
    return dataclasses.replace(task, X={p: task.X[p][keep[p]] for p in PARTS}, y={p: task.y[p][keep[p]] for p in PARTS},
                               frames={p: task.frames[p].iloc[keep[p]].reset_index(drop=True) for p in PARTS})


def feature_set_ablation(params: Mapping[str, Any], data: DataDirs = DataDirs()) -> dict[str, Any]:
    """Refit ablation.models.<task> on every ablation.feature_sets entry: the same subsampled train and validation
    rows and all test rows for every set, one seed; test metrics per set."""
    cfg, seed = params["ablation"], int(params["train"]["seed"])
    tables = table_specs(params["featurize"].get("element_tables"))
    limits = {"train": cfg.get("max_train_rows"), "val": cfg.get("max_val_rows")}
    results: dict[str, Any] = {"tasks": {}}
    for task_name, model_name in cfg["models"].items():
        task_cfg = params["tasks"][task_name]
        model_cfg = {k: v for k, v in model_config(task_cfg, model_name, params["models"]).items()
                     if k not in ("max_train_rows", "max_val_rows")}  # the ablation's own row limits apply
        full = load_task(task_name, task_cfg, data)
        task = subsampled(full, limits, seed)
        parsed = {part: formula_arrays(task.frames[part]["reduced_formula"].tolist()) for part in PARTS}
        runs = []
        for groups in cfg["feature_sets"]:
            variant, counts = with_feature_set(task, list(groups), tables, parsed)
            scored, _, _ = fit_and_evaluate(build_model(model_name, model_cfg, seed, variant.feature_names), model_name,
                                         model_cfg, variant, seed)
            runs.append({"feature_set": "+".join(groups), "features": len(variant.feature_names),
                         "train_seconds": scored["train_seconds"], "data": scored["data"] | counts,
                         "test": {k: v for k, v in scored["test"].items() if k in HEADLINE},
                         **({"test_by_source": {s: {k: v for k, v in m.items() if k in HEADLINE}
                                                for s, m in scored["test_by_source"].items()}}
                            if "test_by_source" in scored else {})})
        results["tasks"][task_name] = {"model": model_name, "runs": runs, **{
            f"rows_{part}": {"used": int(len(task.y[part])), "in_task": int(len(full.y[part]))} for part in PARTS}}
    return results
