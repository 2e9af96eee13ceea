"""Learning tasks: which table, which features, which target; rare classes merged or dropped on train counts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xtalml.features.table import feature_columns
from xtalml.splitting import exclude_lesser_parts

BASELINE_COLUMNS = ("geom_volume_analytic", "magpie_mean_GSvolume_pa")
PARTS = ("train", "val", "test")
UNITS = {"volume": "Å³", "volume_per_atom": "Å³/atom"}  # of the regression targets


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

    def with_validation_in_train(self) -> "TaskData":
        """The same task with its validation rows appended to the train rows and no validation rows left."""
        X, y, frames = dict(self.X), dict(self.y), dict(self.frames)
        X["train"], X["val"] = np.concatenate([self.X["train"], self.X["val"]]), self.X["val"][:0]
        y["train"], y["val"] = np.concatenate([self.y["train"], self.y["val"]]), self.y["val"][:0]
        frames["train"] = pd.concat([self.frames["train"], self.frames["val"]], ignore_index=True)
        frames["val"] = self.frames["val"].iloc[:0]
        return TaskData(self.name, self.kind, self.target, self.feature_names, X, y, frames, dict(self.info), self.inputs)


FEATURES_DIR = Path("data/features")  # featurize@<source> writes <source>/features.parquet, feature_schema.json
SPLIT_DIR = Path("data/split")        # the split stage writes <source>.parquet (id, part, group)


@dataclass(frozen=True)
class DataDirs:
    """Where a task's rows are: the featurize stages' folder (<source>/features.parquet) and a split's folder."""

    features: Path = FEATURES_DIR
    split: Path = SPLIT_DIR

    @classmethod
    def under(cls, root: Path) -> "DataDirs":
        """The default folders of a checkout at root."""
        return cls(Path(root) / FEATURES_DIR, Path(root) / SPLIT_DIR)

    def schema(self, source: str) -> dict[str, Any]:
        """featurize@<source>'s feature_schema.json."""
        return json.loads((self.features / source / "feature_schema.json").read_text())


def task_sources(cfg: Mapping[str, Any]) -> list[str]:
    """The sources whose rows a task stacks (keys of `sources` in params.yaml), first source first."""
    sources = cfg.get("sources")
    if not sources or isinstance(sources, str) or not all(str(s).isidentifier() for s in sources):
        raise ValueError(f"a task's `sources` lists keys of the `sources` section, e.g. [cod_index, primary]; got {sources!r}")
    return [str(s) for s in sources]


def table_name(sources: Sequence[str]) -> str:
    """Name of the table a task reads: its sources joined, e.g. 'cod_index+primary'."""
    return "+".join(sources)


def task_paths(cfg: Mapping[str, Any], data: DataDirs = DataDirs()) -> list[Path]:
    """Feature, schema and split files of every source a task stacks."""
    return [path for source in task_sources(cfg) for path in (
        data.features / source / "features.parquet", data.features / source / "feature_schema.json",
        data.split / f"{source}.parquet")]


def read_table(sources: Sequence[str], columns: Sequence[str] | None = None, data: DataDirs = DataDirs()) -> pd.DataFrame:
    """The sources' feature rows stacked (a row id counts once, from the first source that has it), with their
    split part; a group held out anywhere in the stack keeps only that part here, its other rows become 'excluded'."""
    import pyarrow.parquet as pq

    frames = []
    for source in sources:
        path = data.features / source / "features.parquet"
        present = pq.read_schema(path).names
        wanted = [c for c in dict.fromkeys(columns) if c in present] if columns is not None else None
        rows = pd.read_parquet(path, columns=wanted)
        frames.append(rows.merge(pd.read_parquet(data.split / f"{source}.parquet"), on="id", how="inner"))
    table = pd.concat(frames, ignore_index=True).drop_duplicates("id").reset_index(drop=True)
    table["part"] = exclude_lesser_parts(table["part"], table["group"])
    return table


def model_config(task_cfg: Mapping[str, Any], model_name: str, models: Mapping[str, Any]) -> dict[str, Any]:
    """A model's settings for one task: models.<name>, with the task's model_overrides.<name> on top."""
    return {**models[model_name], **(task_cfg.get("model_overrides") or {}).get(model_name, {})}


def load_task(name: str, cfg: Mapping[str, Any], data: DataDirs = DataDirs(), input_groups: Sequence[str] = (),
              optional_groups: Sequence[str] = ()) -> TaskData:
    """Rows with a target and complete features, split into parts, rare classes handled as configured.

    data: the feature and split folders (another split's folder compares split modes); input_groups are feature groups a
    model reads beyond the task's own (its registry entry's input_groups), appended after them; optional_groups are
    appended after those, and a row lacking them stays (NaN there).
    """
    paths = task_paths(cfg, data)
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"task {name} needs {path}; run `dvc repro` for the stages that write it")
    sources = task_sources(cfg)
    schemas = {s: data.schema(s) for s in sources}
    names = feature_columns(schemas[sources[0]], [*cfg["features"], *input_groups, *optional_groups])
    required = feature_columns(schemas[sources[0]], [*cfg["features"], *input_groups])
    if not names:
        raise ValueError(f"task {name}: feature groups {list(cfg['features'])} are empty in {data.features / sources[0]}")
    for source, schema in schemas.items():
        missing = set(names) - {c for group in schema["features"].values() for c in group}
        if missing:
            raise ValueError(f"task {name}: source {source} lacks {len(missing)} of its features "
                             f"(e.g. {sorted(missing)[0]}); a stacked source needs the feature groups "
                             f"{[*cfg['features'], *input_groups, *optional_groups]}")
    target = cfg["target"]
    table = read_table(sources, ["id", "reduced_formula", "source", target, *names, *BASELINE_COLUMNS], data)
    excluded = table["part"] == "excluded"
    info: dict[str, Any] = {"table": table_name(sources), "rows_excluded": (  # group held out by another source here
        table.loc[excluded, "source"].value_counts().to_dict() if "source" in table else int(excluded.sum()))}
    table = table[table["part"].isin(PARTS)]
    info["rows_in_table"] = int(len(table))
    complete = table[target].notna() & table[required].notna().all(axis=1)
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
                    inputs=[p for p in paths if p.suffix == ".parquet"])
    for part in PARTS:
        rows = table[table["part"] == part].reset_index(drop=True)
        data.frames[part] = rows
        data.X[part] = rows[names].to_numpy(dtype=float)
        data.y[part] = rows[target].to_numpy(dtype=float if cfg["kind"] == "regression" else object)
        info[f"rows_{part}"] = int(len(rows))
    if min(len(data.y["train"]), len(data.y["test"])) == 0:
        raise ValueError(f"task {name}: no {'train' if not len(data.y['train']) else 'test'} rows after filtering")
    return data
