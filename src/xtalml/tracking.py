"""MLflow: one experiment per task, one run per model, params, per-epoch and final metrics, tags, artifacts."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

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
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:16]


EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")  # the UI opens such experiments on the runs table
SQLITE_BUSY_TIMEOUT_S = 60  # parallel queue workers share one SQLite store: wait for its write lock instead of failing


def project_root(start: Path | None = None) -> Path:
    """The project folder: the working directory, or, inside a `dvc exp run --queue` copy
    (<project>/.dvc/tmp/exps/...), the project that queued it, so sweeps land in the project's store."""
    here = (start or Path.cwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - 3):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return here


def tracking_uri(explicit: str | None = None) -> str:
    """explicit, else $MLFLOW_TRACKING_URI, else the project's SQLite store (with a busy timeout)."""
    if explicit or os.environ.get("MLFLOW_TRACKING_URI"):
        return explicit or os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{project_root() / 'mlflow.db'}?timeout={SQLITE_BUSY_TIMEOUT_S}"


def experiment_id(client, name: str, artifact_root: Path | None = None) -> str:
    """Id of the experiment, created (artifacts under <project>/mlruns/<name>) and marked for model training."""
    found = client.get_experiment_by_name(name)
    if found is None:
        root = (artifact_root or project_root() / "mlruns").resolve()
        from mlflow.exceptions import MlflowException

        try:
            return client.create_experiment(name, artifact_location=(root / name).as_uri(), tags=dict([EXPERIMENT_KIND]))
        except MlflowException:  # another worker created it meanwhile
            found = client.get_experiment_by_name(name)
    if found.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
        client.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)
    return found.experiment_id


def dvc_experiment_tags() -> dict[str, str]:
    """Inside a DVC experiment: its name, baseline commit and the params it changed (dvc.overrides)."""
    name, baseline = os.environ.get("DVC_EXP_NAME"), os.environ.get("DVC_EXP_BASELINE_REV")
    if not name and not baseline:
        return {}
    tags = {"dvc.exp_name": name or "", "dvc.baseline_rev": baseline or ""}
    if baseline and Path("params.yaml").exists():
        import yaml

        try:
            before = yaml.safe_load(subprocess.run(["git", "show", f"{baseline}:params.yaml"], capture_output=True,
                                                   text=True, check=True).stdout) or {}
            after = yaml.safe_load(Path("params.yaml").read_text()) or {}
        except (OSError, subprocess.CalledProcessError, yaml.YAMLError):
            return tags
        old, new = flatten(before), flatten(after)
        changed = [f"{k}={new.get(k)}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        tags["dvc.overrides"] = "; ".join(changed)[:5000]
    return tags


@contextmanager
def training_run(experiment: str, run_name: str, uri: str | None = None) -> Iterator[Any]:
    """An active MLflow run in the task's experiment, opened before training so its duration is the training time."""
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(uri))
    exp_id = experiment_id(mlflow.MlflowClient(), experiment)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run:
        tags = dvc_experiment_tags()
        if tags:
            mlflow.set_tags(tags)
        yield run


def log_results(params: Mapping[str, Any], metrics: Mapping[str, float], history: Iterable[Mapping[str, float]],
                tags: Mapping[str, str], artifacts: Iterable[Path]) -> None:
    """Params, per-epoch and final metrics, tags and files of the active run."""
    import mlflow

    items = [(k, str(v)[:500]) for k, v in params.items()]
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


def log_dataset(frame, path: Path, context: str, name: str, targets: str | None = None) -> None:
    """A table the run read (train, validation or test rows), named, with the DVC (md5) hash of its file as digest."""
    import warnings

    import mlflow

    with warnings.catch_warnings():  # MLflow 3.17 registers its local-file source class twice and warns that a path matches both
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        dataset = mlflow.data.from_pandas(frame, source=str(path), name=name, digest=file_md5(path)[:10], targets=targets)
    # MLflow infers the schema from every row (7 s for 50,000 rows x 150 columns); the first rows give the same one
    dataset.__dict__["schema"] = mlflow.data.from_pandas(frame.head(1000), targets=targets).schema
    mlflow.log_input(dataset, context=context)


def log_model(model, example, requirements: Sequence[str]) -> str:
    """The fitted estimator as an MLflow model (scikit-learn flavour: every model here is a scikit-learn estimator,
    the torch ones included) with its signature and an input example; returns its models:/ URI."""
    import warnings

    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(example, model.predict(example.to_numpy(float)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)  # the pickle-format notice, once per run
        info = mlflow.sklearn.log_model(model, name="model", signature=signature, input_example=example,
                                        serialization_format="cloudpickle", pip_requirements=list(requirements))
    return info.model_uri


def pinned(distributions: Iterable[str]) -> list[str]:
    """'name==version' of each installed distribution, once each, in order: a logged model's pip requirements, listed
    so MLflow does not infer them by importing the model in a subprocess (17 s for the predictor)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in dict.fromkeys(distributions)]


def file_md5(path: Path) -> str:
    """md5 of a file's bytes: the hash DVC records for it in dvc.lock."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()
