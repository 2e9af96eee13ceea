"""Configuration: params.yaml sections for `dvc repro`, Hydra composition of conf/ for tests and sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

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


def training_runs(params: dict[str, Any]) -> list[dict[str, str]]:
    """train.runs as {task, model} pairs; each entry is `<task>--<model>: [task, model]`."""
    runs = section(params, "train", ["runs"])["runs"]
    out = []
    for key, pair in runs.items():
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and key == f"{pair[0]}--{pair[1]}"):
            raise ValueError(f"train.runs.{key} is {pair!r}; write it as {key}: [<task>, <model>], the key <task>--<model>")
        out.append({"task": pair[0], "model": pair[1]})
    return out


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


def dvc_plot_definitions(params: dict[str, Any]) -> list[dict[str, Any]]:
    """dvc.yaml's top-level plots for every training run: confusion, predicted-vs-true, loss curves, importances."""
    from xtalml.evaluation.report import UNITS
    from xtalml.models.registry import model_spec, writes_loss_history

    runs = training_runs(params)
    plots: list[dict[str, Any]] = []
    for run in runs:
        task, model = run["task"], run["model"]
        folder = f"plots/{task}/{model}"
        if params["tasks"][task]["kind"] == "classification":
            plots.append({f"{folder}/confusion.csv": {
                "title": f"{task} {model}: confusion on test", "template": "confusion",
                "x": "predicted", "y": "actual"}})
        spec = model_spec(model)
        if writes_loss_history(model, params["models"][model]):
            plots.append({f"{folder}/loss.csv": {
                "title": f"{task} {model}: loss per epoch", "x": "epoch", "y": ["train_loss", "val_loss"]}})
        if spec.feature_importance:
            plots.append({f"{folder}/feature_importance.csv": {
                "title": f"{task} {model}: feature importance", "template": "bar_horizontal_sorted",
                "x": "importance", "y": "feature"}})
    for task, spec in params["tasks"].items():
        files = [f"plots/{task}/{r['model']}/parity.csv" for r in runs if r["task"] == task]
        if spec["kind"] == "regression" and files:
            unit = UNITS.get(spec["target"], "")
            plots.append({f"{task} predicted vs true": {
                "template": "scatter", "x": "true", "y": {path: "predicted" for path in files},
                "x_label": f"true {spec['target']} ({unit})", "y_label": f"predicted {spec['target']} ({unit})"}})
    if "generate" in params:
        plots.append({"CSP benchmark: match rate against candidates per formula": {
            "x": "candidates", "y": {"plots/generate/match_curve.csv": list(params["generate"]["arms"])},
            "x_label": "candidates per formula", "y_label": "true structure found (CDVAE tolerances)"}})
    return plots
