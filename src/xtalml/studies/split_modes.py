"""Each composition task's headline model under a second split mode (by chemical system), beside the main one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from xtalml.models.registry import build_model, task_inputs
from xtalml.splitting import read_split_columns, shared_split
from xtalml.tasks import DataDirs, load_task, model_config
from xtalml.training import fit_and_evaluate


def split_mode_comparison(params: Mapping[str, Any], out_dir: Path, features_dir: Path) -> dict[str, Any]:
    """Split every source of features_dir by split_modes.group (same seed and sizes as `split`) into out_dir, refit each
    configured model, score it."""
    cfg = params["split_modes"]
    split_cfg = {**params["split"], "group": cfg["group"],
                 "keep_published_split": cfg.get("keep_published_split", params["split"].get("keep_published_split", True))}
    sources = {key: read_split_columns(Path(features_dir) / key / "features.parquet", split_cfg.get("stratify"))
               for key in params["sources"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    for key, assignment in shared_split(sources, split_cfg).items():
        assignment.to_parquet(out_dir / f"{key}.parquet", index=False)
    seed = int(params["train"]["seed"])
    results: dict[str, Any] = {"group": cfg["group"], "tasks": {}}
    for task_name, model_name in cfg["models"].items():
        task_cfg = params["tasks"][task_name]
        model_cfg = model_config(task_cfg, model_name, params["models"])
        task = load_task(task_name, task_cfg, DataDirs(Path(features_dir), out_dir), **task_inputs(model_name))
        scored, _, _ = fit_and_evaluate(build_model(model_name, model_cfg, seed, task.feature_names), model_name,
                                     model_cfg, task, seed)
        results["tasks"][task_name] = {"model": model_name, **{k: v for k, v in scored.items() if k != "cv"},
                                       "data": task.info | scored["data"]}
    return results
