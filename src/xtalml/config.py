"""Configuration: params.yaml sections for `dvc repro`, Hydra composition of conf/ for tests and sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The whole params.yaml that DVC composed from conf/ (or that a user edited)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run from the repository root, or compose it with `dvc exp run`")
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def section(params: dict[str, Any], name: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """One stage's section, with a clear error for a missing section or key."""
    if name not in params:
        raise KeyError(f"params.yaml has no '{name}' section; recompose it from conf/ (dvc exp run)")
    values = params[name]
    missing = [key for key in required if key not in values]
    if missing:
        raise KeyError(f"params.yaml section '{name}' lacks {', '.join(missing)}")
    return values


def settings_from(cls: type, cfg: Mapping[str, Any], name: str) -> Any:
    """A settings dataclass from a params.yaml section (`name` for the error), refusing keys it does not know."""
    unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
    if unknown:
        raise ValueError(f"{name}: unknown settings {unknown}; known: {sorted(cls.__dataclass_fields__)}")
    return cls(**cfg)


TRAIN_GROUP_KEYS = ("task", "model")


def training_runs(params: dict[str, Any]) -> list[dict[str, str]]:
    """Every (task, model) the train stages fit: train.matrix.<group> is one DVC matrix, each of its tasks × each of its
    models (stage train_<group>@<task>-<model>); a model trains on the tasks of its own group only."""
    groups = section(params, "train", ["matrix"])["matrix"]
    out: list[dict[str, str]] = []
    for group, axes in groups.items():
        if not isinstance(axes, dict) or set(axes) != set(TRAIN_GROUP_KEYS) or not all(
                isinstance(axes[k], list) and axes[k] for k in TRAIN_GROUP_KEYS):
            raise ValueError(f"train.matrix.{group} is {axes!r}; write it as {{task: [<task>, ...], model: [<model>, ...]}}")
        unknown = [t for t in axes["task"] if t not in params.get("tasks", {})]
        if unknown:
            raise ValueError(f"train.matrix.{group}.task names {unknown}, not in the tasks section")
        out += [{"task": str(task), "model": str(model), "group": str(group)}
                for task in axes["task"] for model in axes["model"]]
    pairs = [(r["task"], r["model"]) for r in out]
    twice = sorted({f"{t}-{m}" for t, m in pairs if pairs.count((t, m)) > 1})
    if twice:
        raise ValueError(f"train.matrix: {', '.join(twice)} in more than one group")
    return out


def task_models(params: dict[str, Any], task: str) -> list[str]:
    """The models trained on one task, sorted."""
    return sorted({run["model"] for run in training_runs(params) if run["task"] == task})


def compose(overrides: Sequence[str] = (), config_dir: Path | None = None) -> dict[str, Any]:
    """Compose conf/config.yaml with Hydra overrides, as `dvc exp run -S` does, into a plain dict."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(config_dir or REPO_ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def source_section(params: dict[str, Any], key: str) -> dict[str, Any]:
    """One entry of the `sources` section, with a clear error for an unknown key."""
    sources = section(params, "sources")
    if key not in sources:
        raise KeyError(f"source {key!r} is not in params.yaml; sources: {', '.join(sources)}")
    return sources[key]


def source_config(name: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The composed config of one data source (conf/data/<name>.yaml) as the primary source."""
    return compose([f"data@sources.primary={name}", *overrides])["sources"]["primary"]
