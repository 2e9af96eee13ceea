"""What the MLflow experiments list says of each experiment: its description (the Description column)."""

from __future__ import annotations

from typing import Any, Mapping

from xtalml.tracking import experiment_id, tracking_uri

DESCRIPTION_TAG = "mlflow.note.content"  # what the MLflow UI shows as an experiment's description


def describe_experiment(name: str, text: str, uri: str | None = None) -> None:
    """Set an experiment's description (the experiments list's Description column), creating the experiment if needed."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(uri))
    client = mlflow.MlflowClient()
    exp_id = experiment_id(client, name)
    if client.get_experiment(exp_id).tags.get(DESCRIPTION_TAG) != text:
        client.set_experiment_tag(exp_id, DESCRIPTION_TAG, text)


def task_description(task: str, cfg: Mapping[str, Any], rows: Mapping[str, int], baselines: str) -> str:
    """One task's experiment description: what it predicts from what, its rows per part, its baselines."""
    counts = ", ".join(f"{rows.get(p, 0):,} {p}" for p in ("train", "val", "test"))
    return (f"{cfg['kind'].capitalize()} of {cfg['target']} from the {', '.join(cfg['features'])} features of "
            f"{' + '.join(cfg['sources'])} ({counts} rows, one split by reduced formula for every table). One run per "
            f"model, each scored on the same test rows beside the baselines ({baselines}); the champion, best on the "
            f"validation rows, is registered as xtalml-{task}@champion.")
