"""Learning tasks: which table, which features, which target; rare classes merged or dropped on train counts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from xtalml.features.table import feature_columns

PRIMARY_TABLE = "primary"  # the `data` source's table (cells and compositions); every other table is a composition source
BASELINE_COLUMNS = ("geom_volume_analytic", "magpie_mean_GSvolume_pa")
PARTS = ("train", "val", "test")


@dataclass
class TaskData:
    """Arrays per part ('train', 'val', 'test') plus what the report needs to know about the rows."""

    name: str
    kind: str
    target: str
    feature_names: list[str]
    X: dict[str, np.ndarray] = field(default_factory=dict)
    y: dict[str, np.ndarray] = field(default_factory=dict)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    inputs: list[Path] = field(default_factory=list)


def table_folder(table: str) -> Path:
    """Folder of a table: the primary source's, or a composition source's (a key of `composition_sources`)."""
    if not str(table).isidentifier():
        raise ValueError(f"task table {table!r}: name '{PRIMARY_TABLE}' or a key of composition_sources")
    return Path("data/processed") if table == PRIMARY_TABLE else Path("data/composition") / table


def task_paths(cfg: Mapping[str, Any], root: Path = Path(".")) -> list[Path]:
    """Feature table, split and schema files a task reads."""
    folder = root / table_folder(cfg["table"])
    return [folder / "features.parquet", folder / "split.parquet", folder / "feature_schema.json"]


def model_config(task_cfg: Mapping[str, Any], model_name: str, models: Mapping[str, Any]) -> dict[str, Any]:
    """A model's settings for one task: models.<name>, with the task's model_overrides.<name> on top."""
    return {**models[model_name], **(task_cfg.get("model_overrides") or {}).get(model_name, {})}


def load_task(name: str, cfg: Mapping[str, Any], root: Path = Path("."), split: Path | None = None) -> TaskData:
    """Rows with a target and complete features, split into parts, rare classes handled as configured.

    split replaces the table's split file (another split mode, for comparison).
    """
    features_path, split_path, schema_path = task_paths(cfg, root)
    split_path = split or split_path
    for path in (features_path, split_path, schema_path):
        if not path.exists():
            raise FileNotFoundError(f"task {name} needs {path}; run `dvc repro` for the stages that write it")
    schema = json.loads(schema_path.read_text())
    names = feature_columns(schema, cfg["features"])
    if not names:
        raise ValueError(f"task {name}: feature groups {list(cfg['features'])} are empty in {schema_path}")
    target = cfg["target"]
    table = pd.read_parquet(features_path)
    keep = ["id", "reduced_formula", *(["source"] if "source" in table and target != "source" else []), target, *names, *[c for c in BASELINE_COLUMNS if c in table and c not in names]]
    table = table[keep].merge(pd.read_parquet(split_path), on="id", how="inner")
    table = table[table["part"].isin(PARTS)]
    info: dict[str, Any] = {"rows_in_table": int(len(table))}
    complete = table[target].notna() & table[names].notna().all(axis=1)
    if cfg["kind"] == "regression":
        complete &= table[target] > 0
    info["rows_without_target_or_features"] = int((~complete).sum())
    table = table[complete]
    if cfg.get("max_rows") and len(table) > cfg["max_rows"]:
        table = table.sample(n=int(cfg["max_rows"]), random_state=int(cfg.get("seed", 0))).sort_index()
        info["subsampled_to"] = int(cfg["max_rows"])
    if cfg["kind"] == "classification":
        labels = table[target].astype("Int64").astype(str) if target == "sg_number" else table[target].astype(str)
        table = table.assign(**{target: labels, "label_unmerged": labels})  # the true class before rare ones merge
        counts = table.loc[table["part"] == "train", target].value_counts()
        rare = set(table[target]) - set(counts[counts >= int(cfg.get("min_class_count", 1))].index)
        touched = table[target].isin(rare)
        info |= {"rare_classes": len(rare), "rare_rows": int(touched.sum()), "rare_policy": cfg.get("rare_classes", "merge")}
        if cfg.get("rare_classes", "merge") == "merge":
            table.loc[touched, target] = "other"
        elif cfg["rare_classes"] == "drop":
            table = table[~touched]
        else:
            raise ValueError(f"task {name}: rare_classes={cfg['rare_classes']!r}, choose merge or drop")
        info["classes"] = int(table.loc[table["part"] == "train", target].nunique())
    data = TaskData(name=name, kind=cfg["kind"], target=target, feature_names=names, info=info,
                    inputs=[features_path, split_path])
    for part in PARTS:
        rows = table[table["part"] == part].reset_index(drop=True)
        data.frames[part] = rows
        data.X[part] = rows[names].to_numpy(dtype=float)
        data.y[part] = rows[target].to_numpy(dtype=float if cfg["kind"] == "regression" else object)
        info[f"rows_{part}"] = int(len(rows))
    if min(len(data.y["train"]), len(data.y["test"])) == 0:
        raise ValueError(f"task {name}: no {'train' if not len(data.y['train']) else 'test'} rows after filtering")
    return data


def stack_composition_tables(index_features: pd.DataFrame, primary_features: pd.DataFrame | None,
                             composition_columns: list[str]) -> pd.DataFrame:
    """A composition source's rows plus (optionally) the primary table's rows, composition features and targets."""
    columns = ["id", "source", "formula", "reduced_formula", "year", "sg_number", "sg_symbol", "crystal_system",
               "bravais_lattice", "volume_per_atom", "published_split", *composition_columns]
    frames = [index_features[[c for c in columns if c in index_features]]]
    if primary_features is not None:
        frames.append(primary_features[[c for c in columns if c in primary_features]])
    return pd.concat(frames, ignore_index=True).drop_duplicates("id").reset_index(drop=True)
