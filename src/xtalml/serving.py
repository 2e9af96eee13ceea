"""MLflow Model Registry: each task's champion (chosen by xtalml.champions) and the xtalml-predictor pyfunc."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import joblib
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd

from xtalml.models.registry import task_inputs
from xtalml.predict import (SERVING_DIR, TASK_COLUMNS, answers_table, load_predictor, predict_cifs, predict_formulas,
                            serving_models)
from xtalml.tasks import DataDirs, load_task
from xtalml.tracking import EXPERIMENT_KIND, experiment_id, file_digest, log_model, pinned, tracking_uri

CHAMPION_ALIAS = "champion"
PREDICTOR_NAME = "xtalml-predictor"
PREDICTOR_EXPERIMENT = "xtalml-predictor"
# columns of the predictor's answer table, fixed so the served signature does not depend on the input
ANSWER_COLUMNS = ["input", "formula", "error", *[f"{k}_{i}" for i in (1, 2, 3) for k in ("bravais", "p_bravais")],
                  *[f"{k}_{i}" for i in (1, 2, 3, 4, 5) for k in ("sg", "p_sg")], "volume_per_atom", "cell_volume",
                  *[f"model_{column}" for column in TASK_COLUMNS.values()]]   # the model that gave each answer


def registered_name(task: str) -> str:
    """Name of a task's registered model."""
    return f"xtalml-{task}"


def validation_example(task_name: str, task_cfg: Mapping[str, Any], model: str, feature_names: Sequence[str],
                       data: DataDirs = DataDirs()) -> pd.DataFrame:
    """The first validation rows of a task, in the columns a model reads: a logged model's input example."""
    task = load_task(task_name, task_cfg, data, **task_inputs(model))
    return task.frames["val"][list(feature_names)].iloc[:5].reset_index(drop=True)


def _client(uri: str | None):
    mlflow.set_tracking_uri(tracking_uri(uri))
    return mlflow.MlflowClient()


def _current(client, name: str):
    """The version the champion alias points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def _training_run(client, task: str, model: str):
    """The newest finished run of this model on this task, or None."""
    experiment = client.get_experiment_by_name(task)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id], f"tags.model = '{model}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def register_champion(task: str, model: str, model_path: Path,
                      example: pd.DataFrame | Callable[[Sequence[str]], pd.DataFrame], score: float, metric: str,
                      requirements: Sequence[str], uri: str | None = None) -> dict[str, Any]:
    """Register the model its training run logged (or, for a run without one, log it now, with `example` or the rows
    example(feature names) gives as its input example, and `requirements`, the pinned packages it needs) as
    xtalml-<task> and point the alias 'champion' at it. A model file already registered as the champion is not
    registered again; the earlier versions stay."""
    client = _client(uri)
    name, digest = registered_name(task), file_digest(model_path)
    current = _current(client, name)
    if current is not None and current.tags.get("model_digest") == digest:
        return {"name": name, "version": int(current.version), "model": model, "new_version": False,
                "model_uri": current.source}
    run = _training_run(client, task, model)
    model_uri = run.data.tags.get("model_uri") if run is not None else None
    if not model_uri:
        with mlflow.start_run(run_id=run.info.run_id if run else None,
                              experiment_id=None if run else experiment_id(client, task)):
            bundle = joblib.load(model_path)
            rows = example(bundle["feature_names"]) if callable(example) else example
            model_uri = log_model(bundle["model"], rows, list(requirements))
    version = str(mlflow.register_model(model_uri, name).version)
    for key, value in {"model": model, "model_digest": digest, f"validation_{metric}": f"{score:.6f}"}.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    return {"name": name, "version": int(version), "model": model, "new_version": True, "model_uri": model_uri}


def model_requirements(model_uri: str) -> list[str]:
    """The pip requirements a logged model lists (MLflow itself left out: it adds its own)."""
    lines = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "mlflow=="))]


def mark_model_training(experiments: Sequence[str], uri: str | None = None) -> None:
    """Tag these experiments as model-training ones (older stores), so the MLflow UI opens them on the runs table."""
    client = _client(uri)
    for name in experiments:
        found = client.get_experiment_by_name(name)
        if found is not None and found.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
            client.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)


class XtalmlPredictor(mlflow.pyfunc.PythonModel):
    """What `xtalml predict` answers, as an MLflow pyfunc: a table with a formula column (and optionally CIF text)."""

    def load_context(self, context) -> None:
        folder = Path(context.artifacts["bundle"])
        choice = serving_models(folder / "models")
        self.predictor = load_predictor(folder / "models", choice, serving=True)
        self.predictor.params_path = folder / "params.yaml"

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return answer_rows(self.predictor, model_input)


def answer_rows(predictor, frame: pd.DataFrame) -> pd.DataFrame:
    """One answer row per input row, in order; a row that cannot be answered carries its reason in 'error'."""
    n = len(frame)
    formulas = [str(v) if isinstance(v, str) else "" for v in (frame["formula"] if "formula" in frame else [""] * n)]
    cifs = [v if isinstance(v, str) and v.strip() else None for v in (frame["cif"] if "cif" in frame else [None] * n)]
    rows: list[dict[str, Any]] = [{"input": f"row {i}", "formula": formulas[i]} for i in range(n)]
    asked = [i for i in range(n) if cifs[i] is None]
    for i in asked:
        if not formulas[i].strip():
            rows[i]["error"] = "no formula and no CIF text in this row"
    todo = [i for i in asked if formulas[i].strip()]
    answers, errors = predict_formulas(predictor, [formulas[i] for i in todo])
    by_formula = {a["formula"]: a for a in answers}
    answered = [i for i in todo if formulas[i] not in errors]
    for i in todo:
        if formulas[i] in errors:
            rows[i]["error"] = errors[formulas[i]]
    flat = answers_table([by_formula[formulas[i]] for i in answered]).to_dict("records") if answered else []
    for i, values in zip(answered, flat):  # one table for all rows: a DataFrame per row cost ~3 s per 10,000
        rows[i] |= {k: v for k, v in values.items() if not (isinstance(v, float) and np.isnan(v))}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for i in [i for i in range(n) if cifs[i] is not None]:
            paths[i] = Path(tmp) / f"row{i}.cif"
            paths[i].write_text(cifs[i], encoding="utf-8")
        if paths:
            cif_answers, cif_errors = predict_cifs(predictor, list(paths.values()))
            by_path = {a["input"]: a for a in cif_answers}
            for i, path in paths.items():
                if str(path) in by_path:
                    rows[i] |= _flat(by_path[str(path)]) | {"input": f"row {i}"}
                else:
                    reason = next((r for k, r in cif_errors.items() if k.startswith(str(path))), "no structure found")
                    rows[i]["error"] = reason.replace(str(path), f"row {i}")
    return pd.DataFrame(rows).reindex(columns=ANSWER_COLUMNS)


def _flat(answer: dict) -> dict[str, Any]:
    return answers_table([answer]).iloc[0].to_dict()


def write_serving_models(models: Mapping[str, tuple[str, Path]], out_dir: Path) -> dict[str, dict[str, str]]:
    """Write each task's chosen model ({task: (model name, its .pkl)}) to out_dir/<task>.joblib in the form predict
    loads fastest (its registry entry's compact form, else the fitted model as it is), the element tables beside them;
    returns and writes the manifest."""
    from xtalml.features.composition import save_elemental_tables
    from xtalml.models.compact import ELEMENT_TABLES, save_compact, to_compact
    from xtalml.models.registry import REGISTRY

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.joblib"):
        old.unlink()
    manifest = {}
    for task, (model, path) in models.items():
        bundle = joblib.load(path)
        form = REGISTRY[model].compact if model in REGISTRY else None  # a model from elsewhere: served as it is
        compact = None if form is None else to_compact(form, bundle["model"])
        save_compact({**bundle, "model": bundle["model"] if compact is None else compact, "name": model},
                     out_dir / f"{task}.joblib")
        manifest[task] = {"model": model, "form": "pickle" if compact is None else "compact"}
    save_elemental_tables(out_dir / ELEMENT_TABLES)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def register_predictor(models: Mapping[str, tuple[str, Path]], served: Path, conformal_dir: Path, params_path: Path,
                       uri: str | None = None, requirements: Sequence[str] = ()) -> dict[str, Any]:
    """Write the chosen models ({task: (model name, its .pkl)}) to `served` (models/predictor) in the form predict
    loads fastest, log XtalmlPredictor with those, the conformal calibrations of conformal_dir and params.yaml as its
    artifacts, register it as xtalml-predictor and point 'champion' at it (skipped when those files are unchanged);
    `requirements`: pinned packages the chosen models need (their logged models' lists)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    client = _client(uri)
    forms = write_serving_models(models, served)
    choice = {task: model for task, (model, _) in models.items()}
    files = {f"models/{SERVING_DIR}/{p.name}": p for p in sorted(Path(served).iterdir())}  # models, manifest, tables
    files |= {f"models/conformal/{p.name}": p for p in sorted(Path(conformal_dir).glob("*.json"))}
    files["params.yaml"] = Path(params_path)
    digest = ",".join(f"{k}={file_digest(p)}" for k, p in sorted(files.items()))
    current = _current(client, PREDICTOR_NAME)
    if current is not None and current.tags.get("files_digest", "") == digest[:5000]:
        return {"name": PREDICTOR_NAME, "version": int(current.version), "new_version": False, "served": forms}
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", "formula", required=False), ColSpec("string", "cif", required=False)]),
        outputs=Schema([ColSpec("string" if c in ("input", "formula", "error") or c.startswith(("bravais_", "sg_", "model_"))
                                else "double", c, required=False) for c in ANSWER_COLUMNS]))
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        for rel, path in files.items():
            (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, bundle / rel)
        with mlflow.start_run(experiment_id=experiment_id(client, PREDICTOR_EXPERIMENT), run_name="predictor"):
            mlflow.set_tags({f"model.{task}": model for task, model in choice.items()})
            info = mlflow.pyfunc.log_model(name="predictor", python_model=XtalmlPredictor(), artifacts={"bundle": str(bundle)},
                                           signature=signature, input_example=pd.DataFrame({"formula": ["Fe2O3", "SiO2"]}),
                                           registered_model_name=PREDICTOR_NAME, pip_requirements=list(dict.fromkeys([
                                               *pinned(["cloudpickle", "scikit-learn", "numpy", "pandas", "scipy",
                                                        "xtalml"]), *requirements])))
    version = str(info.registered_model_version)
    client.set_model_version_tag(PREDICTOR_NAME, version, "files_digest", digest[:5000])
    client.set_registered_model_alias(PREDICTOR_NAME, CHAMPION_ALIAS, version)
    return {"name": PREDICTOR_NAME, "version": int(version), "new_version": True, "models": dict(choice),
            "served": forms}
