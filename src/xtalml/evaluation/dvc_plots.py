"""dvc.yaml's top-level plots: how `dvc plots show` draws each training run's plot files and the CSP benchmark's curve.

dvc.yaml holds the output of dvc_plot_definitions(params); tests/test_config.py checks it is up to date. After adding
a model or a task, print the new section with `python -m xtalml.evaluation.dvc_plots` and paste it into dvc.yaml.
"""

from __future__ import annotations

from typing import Any

from xtalml.config import load_params, training_runs
from xtalml.models.registry import model_spec, writes_loss_history
from xtalml.tasks import UNITS


def dvc_plot_definitions(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Confusion matrices, predicted-vs-true, loss curves and importances of every training run; the CSP match curve."""
    runs = training_runs(params)
    plots: list[dict[str, Any]] = []
    for run in runs:
        task, model = run["task"], run["model"]
        folder = f"plots/{task}/{model}"
        if params["tasks"][task]["kind"] == "classification":
            plots.append({f"{folder}/confusion.csv": {
                "title": f"{task} {model}: confusion on test", "template": "confusion",
                "x": "predicted", "y": "actual"}})
        if writes_loss_history(model, params["models"][model]):
            plots.append({f"{folder}/loss.csv": {
                "title": f"{task} {model}: loss per epoch", "x": "epoch", "y": ["train_loss", "val_loss"]}})
        if model_spec(model).feature_importance:
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
            "x_label": "candidates per formula", "y_label": "true structure found (CSPBench tolerances)"}})
    return plots


if __name__ == "__main__":
    import yaml

    print(yaml.safe_dump({"plots": dvc_plot_definitions(load_params())}, sort_keys=False, allow_unicode=True, width=120))
