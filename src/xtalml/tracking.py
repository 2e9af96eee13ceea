"""MLflow: one experiment per task, one run per model, params, per-epoch and final metrics, tags, artifacts."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} → {'a.b': 1}; lists become strings."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def numeric_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flattened numeric entries of a metrics dict (per-class tables left out)."""
    return {k: float(v) for k, v in flatten({k: v for k, v in metrics.items() if k != "per_class"}, prefix).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def git_commit() -> str:
    """The commit the code ran from ('unknown' outside git)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def file_digest(path: Path) -> str:
    """Short sha256 of a data file, recorded as a tag so a run names the data it saw."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def log_run(experiment: str, run_name: str, params: Mapping[str, Any], metrics: Mapping[str, float],
            history: Iterable[Mapping[str, float]], tags: Mapping[str, str], artifacts: Iterable[Path],
            tracking_uri: str | None = None, artifact_root: Path | None = None) -> str:
    """Record one run and return its id."""
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        root = (artifact_root or Path("mlruns")).resolve()
        experiment_id = mlflow.create_experiment(experiment, artifact_location=(root / experiment).as_uri())
    else:
        experiment_id = found.experiment_id
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        flat = {k: str(v)[:500] for k, v in params.items()}
        items = list(flat.items())
        for start in range(0, len(items), 100):
            mlflow.log_params(dict(items[start:start + 100]))
        for row in history:
            mlflow.log_metrics({k: float(v) for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
        mlflow.log_metrics(dict(metrics))
        mlflow.set_tags(dict(tags))
        for path in artifacts:
            if Path(path).is_dir():
                mlflow.log_artifacts(str(path), artifact_path=Path(path).name)
            elif Path(path).exists():
                mlflow.log_artifact(str(path))
        return run.info.run_id
