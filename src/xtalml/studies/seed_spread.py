"""A model's headline figures over seeds (its train stage's seed and the seed_spread stage's), next to its task's other
models: whether its spread over seeds is small next to the gap to the nearest model, so the ranking holds."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

from xtalml.evaluation.metrics import HEADLINE, headline_metrics
from xtalml.models.registry import build_model, task_inputs
from xtalml.tasks import DataDirs, load_task, model_config
from xtalml.tracking import flatten
from xtalml.training import fit_and_evaluate


def spread_table(per_seed: Mapping[int, Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """Per test or validation figure: each seed's value, their mean, spread (max - min) and standard deviation."""
    seeds = sorted(per_seed)
    keys = [k for k in per_seed[seeds[0]] if k.startswith(("test.", "validation.")) and all(k in per_seed[s] for s in seeds)]
    table = {}
    for key in keys:
        values = [float(per_seed[s][key]) for s in seeds]
        table[key] = {"per_seed": {str(s): v for s, v in zip(seeds, values)}, "mean": statistics.fmean(values),
                      "spread": max(values) - min(values),
                      "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    return table


def retrain_over_seeds(task_name: str, task_cfg: Mapping[str, Any], model_name: str, model_cfg: Mapping[str, Any],
                       seeds: Sequence[int], data: DataDirs = DataDirs()) -> dict[int, dict[str, float]]:
    """Flat headline figures of the model fitted at each seed on the train stage's rows (nothing written, no run)."""
    task = load_task(task_name, task_cfg, data, **task_inputs(model_name))
    model_cfg = model_config(task_cfg, model_name, {model_name: model_cfg})
    found = {}
    for seed in seeds:
        model = build_model(model_name, model_cfg, seed, task.feature_names)
        scored, _, _ = fit_and_evaluate(model, model_name, model_cfg, task, seed)
        found[int(seed)] = flatten(headline_metrics(scored, task.kind))
    return found


def other_models(model_name: str, key: str, task_metrics: Path) -> dict[str, float]:
    """The test figure `key` of each of the task's other models, from its train stage's metrics file."""
    return {path.stem: value for path in sorted(task_metrics.glob("*.json")) if path.stem != model_name
            and (value := flatten(json.loads(path.read_text())).get(key)) is not None}


def seed_spread(per_seed: Mapping[int, Mapping[str, float]], train_seed: int, kind: str, model_name: str,
                task_metrics: Path) -> dict:
    """The table of spread_table, the train seed, the nearest other model (to the mean over seeds) and the gap, and
    whether the ranking holds whatever the seed: no other model's test figure lies within this model's range."""
    table = spread_table(per_seed)
    key = f"test.{HEADLINE[kind][0]}"
    if key not in table:
        raise ValueError(f"{model_name}: no {key} among the figures of seeds {sorted(per_seed)}")
    row, others = table[key], other_models(model_name, key, task_metrics)
    result: dict[str, Any] = {"seeds": sorted(per_seed), "train_seed": train_seed, "metrics": table,
                              "nearest_model": {"metric": key}}
    if others:
        name = min(others, key=lambda n: abs(others[n] - row["mean"]))
        low, high = min(row["per_seed"].values()), max(row["per_seed"].values())
        result["nearest_model"] |= {"model": name, "test": others[name], "gap": abs(others[name] - row["mean"])}
        result["models_within_range"] = sorted(n for n, v in others.items() if low <= v <= high)
        result["ranking_holds_over_seeds"] = not result["models_within_range"]
    return result


def headline_spread(result: Mapping[str, Any]) -> dict[str, Any]:
    """What `dvc metrics` shows: each test figure's mean and spread, the gap to the nearest model, the verdict."""
    out: dict[str, Any] = {key: {"mean": row["mean"], "spread": row["spread"]}
                           for key, row in result["metrics"].items() if key.startswith("test.")}
    if "gap" in result["nearest_model"]:
        out["gap_to_nearest_model"] = result["nearest_model"]["gap"]
        out["ranking_holds_over_seeds"] = result["ranking_holds_over_seeds"]
    return out
