"""Train one model on one task: cross-validation, fit, test metrics next to baselines, files, MLflow run."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import joblib
import mlflow
import numpy as np
import pandas as pd
from sklearn.base import clone

from xtalml.evaluation.baselines import analytic_volume_baseline, classifier_baselines, elemental_volume_baseline
from xtalml.evaluation.cross_validation import cross_validate_and_fit, subsample_rows
from xtalml.evaluation.metrics import (classification_metrics, headline_metrics, polymorph_accuracy, regression_metrics,
                                       scores_of)
from xtalml.models.registry import (build_model, early_stops, model_spec, pip_requirements, predicts_in_threads,
                                    task_inputs)
from xtalml.tasks import DataDirs, TaskData, load_task, model_config
from xtalml.tracking import (file_digest, file_md5, flatten, git_commit, log_dataset, log_model, log_results,
                             numeric_metrics, training_run)


def baselines_for(task: TaskData, seed: int, rows: np.ndarray | None = None) -> dict[str, Any]:
    """Baselines on the same split as the model (on the test rows selected by the boolean mask `rows`)."""
    rows = np.ones(len(task.y["test"]), dtype=bool) if rows is None else rows
    test, train, y_test = task.frames["test"][rows], task.frames["train"], task.y["test"][rows]
    if task.kind == "classification":
        return classifier_baselines(task.y["train"], y_test, seed)
    if task.target == "volume" and "geom_volume_analytic" in test:
        return analytic_volume_baseline(test["geom_volume_analytic"], y_test)
    if "magpie_mean_GSvolume_pa" in test:
        return elemental_volume_baseline(train["magpie_mean_GSvolume_pa"], task.y["train"],
                                         test["magpie_mean_GSvolume_pa"], y_test)
    return {}


def test_subsets(task: TaskData) -> dict[str, np.ndarray]:
    """Test rows per source where a table mixes sources, and each source's rows whose formula no other source trains on."""
    test, train = task.frames["test"], task.frames["train"]
    if "source" not in test or test["source"].nunique() < 2:
        return {}
    subsets = {}
    for source in sorted(test["source"].unique()):
        rows = (test["source"] == source).to_numpy()
        subsets[source] = rows
        others = set(train.loc[train["source"] != source, "reduced_formula"])
        unseen = rows & ~test["reduced_formula"].isin(others).to_numpy()
        if (unseen != rows).any():  # the split's exclusion rule usually makes these equal
            subsets[f"{source}_formula_not_in_other_sources_train"] = unseen
    return {name: rows for name, rows in subsets.items() if rows.any()}


def validation_score(task: TaskData, predicted: np.ndarray) -> dict[str, Any]:
    """Accuracy (classification) or MAE (regression) on all the task's validation rows."""
    truth = task.y["val"]
    if task.kind == "classification":
        return {"accuracy": float((np.asarray(predicted).astype(str) == truth.astype(str)).mean()), "n": int(len(truth))}
    return {"mae": float(np.mean(np.abs(np.asarray(predicted, float) - truth.astype(float)))), "n": int(len(truth))}


def fit_and_evaluate(model, model_name: str, model_cfg: Mapping[str, Any], task: TaskData, seed: int,
                     cross_validation: bool = False) -> tuple[dict[str, Any], np.ndarray, Any]:
    """Fit on the train rows (validation rows for early stopping where the model takes them), score the validation rows,
    then test metrics next to the baselines. With cross_validation, the folds of model_cfg (cv_folds, cv_max_rows,
    cv_jobs) run beside the final fit; without, the fit may use fit_jobs threads. With refit_with_val_rows, a model
    that does not early-stop is fitted again on the train and validation rows (scikit-learn's refit=True): that fit
    meets the test rows; the validation score is the first fit's, and the baselines are fitted on the train rows.

    Returns ({data, [cv,] train_seconds, [validation,] test, baselines}, test predictions, the fitted model).
    """
    refit = bool(model_cfg.get("refit_with_val_rows"))
    if refit and early_stops(model_name, model_cfg):
        raise ValueError(f"models.{model_name}.refit_with_val_rows: {model_name} early-stops on the validation rows, so "
                         f"it cannot be refitted on them; set it false")
    result: dict[str, Any] = {"data": {}}
    rows = subsample_rows(len(task.y["train"]), model_cfg.get("max_train_rows"), seed)
    if len(rows) < len(task.y["train"]):
        result["data"]["model_trained_on_rows"] = int(len(rows))
    fit_jobs = int(model_cfg.get("fit_jobs") or 1)
    started = time.perf_counter()
    if model_spec(model_name).uses_validation_rows:
        # early stopping may watch a subsample of the validation rows: scoring all of them each epoch can cost more than the epoch
        val = subsample_rows(len(task.y["val"]), model_cfg.get("max_val_rows"), seed)
        if len(val) < len(task.y["val"]):
            result["data"]["model_early_stopped_on_val_rows"] = int(len(val))
        model = fit_rows(model, task.X["train"][rows], task.y["train"][rows],
                         eval_set=[(task.X["val"][val], task.y["val"][val])])
    elif cross_validation:
        result["cv"], model, seconds = cross_validate_and_fit(
            model, task, int(model_cfg["cv_folds"]), model_cfg.get("cv_max_rows"), seed, rows,
            int(model_cfg.get("cv_jobs") or 1))
        result["train_seconds"] = round(seconds, 3)
    else:
        model = fit_rows(model, task.X["train"][rows], task.y["train"][rows], fit_jobs=fit_jobs)
    result.setdefault("train_seconds", round(time.perf_counter() - started, 3))
    threads = prediction_threads(model_name, model_cfg)
    if len(task.y.get("val", ())):  # the register stage picks each task's champion on this score
        result["validation"] = validation_score(task, predict_rows(model.predict, task.X["val"], threads))
    baseline_task = task  # baselines stay fitted on the train rows: one set of baselines beside every model of a task
    if refit:
        task = task.with_validation_in_train()
        rows = subsample_rows(len(task.y["train"]), model_cfg.get("max_train_rows"), seed)
        started = time.perf_counter()
        model = fit_rows(clone(model), task.X["train"][rows], task.y["train"][rows], fit_jobs=fit_jobs)
        result["data"]["refitted_on_train_and_val_rows"] = int(len(rows))
        result["refit_seconds"] = round(time.perf_counter() - started, 3)
    subsets = test_subsets(task)
    if task.kind == "classification":
        predicted, scores = labels_and_scores(model, model_name, task.X["test"], threads)
        classes = getattr(model, "classes_", None)
        result["test"] = classification_metrics(task.y["test"], predicted, scores, classes)
        result["test"]["polymorph_accuracy"] = polymorph_accuracy(task.y["test"], predicted,
                                                                  task.frames["test"]["reduced_formula"])
        result["test_by_source"] = {name: classification_metrics(
            task.y["test"][rows], predicted[rows], None if scores is None else scores[rows], classes, per_class=False)
            for name, rows in subsets.items()}
        if task.target == "sg_number" and scores is not None and classes is not None:
            result["test"] |= _lattice_accuracies(model, scores, classes, task.frames["test"]["label_unmerged"].to_numpy(),
                                                  task.X["test"])
    else:
        predicted = model.predict(task.X["test"])
        result["test"] = regression_metrics(task.y["test"], predicted)
        result["test_by_source"] = {name: regression_metrics(task.y["test"][rows], predicted[rows])
                                    for name, rows in subsets.items()}
    result["baselines"] = baselines_for(baseline_task, seed)
    if result["test_by_source"]:
        result["baselines_by_source"] = {name: baselines_for(baseline_task, seed, rows) for name, rows in subsets.items()}
    else:
        del result["test_by_source"]
    return result, predicted, model


def fit_rows(model, X: np.ndarray, y: np.ndarray, *, fit_jobs: int = 1, eval_set=None):
    """model.fit on these rows: early-stopping on eval_set where given; else with fit_jobs joblib threads for an
    estimator whose n_jobs is left null (a forest's trees; its predictions stay on one thread)."""
    if eval_set is not None:
        return model.fit(X, y, eval_set=eval_set)
    with joblib.parallel_config(backend="threading", n_jobs=fit_jobs):
        return model.fit(X, y)


def prediction_threads(model_name: str, model_cfg: Mapping[str, Any]) -> int:
    """Threads that predict blocks of rows side by side: models.<model>.predict_jobs where the registry says the model
    (or its base learner) predicts row by row outside the GIL, else one (e.g. two_stage on a LightGBM base)."""
    return int(model_cfg.get("predict_jobs") or 1) if predicts_in_threads(model_name, model_cfg) else 1


def predict_rows(method: Callable[[np.ndarray], Any], X: np.ndarray, threads: int = 1) -> np.ndarray:
    """method(X), computed on `threads` blocks of rows side by side: the same values for a row-by-row predictor."""
    if threads <= 1 or len(X) < 2 * threads:
        return np.asarray(method(X))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        return np.concatenate([np.asarray(part) for part in pool.map(method, np.array_split(X, threads))])


def labels_and_scores(model, model_name: str, X: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
    """A classifier's predicted labels and class scores (None where it has none): one predict_proba where its registry
    entry says its labels are the most probable classes; blocks of rows in `threads` threads."""
    def call(method):
        return predict_rows(method, X, threads)

    if model_spec(model_name).labels_from_proba:
        scores = call(model.predict_proba)
        return np.asarray(model.classes_)[scores.argmax(axis=1)], scores
    return call(model.predict), scores_of(model, X, call)


def _lattice_accuracies(model, proba: np.ndarray, classes, y_true: np.ndarray, X: np.ndarray) -> dict[str, float]:
    """Bravais-lattice accuracy of a space-group model: from its summed group probabilities (and its stage 1, if any).

    y_true holds the groups before rare ones merged, so a row is scored on its real lattice as the Bravais task is.
    """
    from xtalml.models.lattices import lattice_of, lattice_proba

    truth = np.array([lattice_of(v) for v in y_true.astype(str)])
    names, summed = lattice_proba(proba, classes)
    result = {"bravais_accuracy_from_sg_proba": float((names[summed.argmax(axis=1)] == truth).mean())}
    if hasattr(model, "predict_lattice_proba"):
        lattice = model.lattice_classes_[model.predict_lattice_proba(X).argmax(axis=1)]
        result["stage1_bravais_accuracy"] = float((lattice == truth).mean())
    return result


def run_training(task_name: str, task_cfg: Mapping[str, Any], model_name: str, model_cfg: Mapping[str, Any],
                 seed: int, out: Mapping[str, Path], data: DataDirs = DataDirs(), tracking_uri: str | None = None) -> dict:
    """Everything one `train` stage does, inside one MLflow run; returns the full evaluation written to
    out['evaluation'] (out['metrics'] gets its headline figures)."""
    task = load_task(task_name, task_cfg, data, **task_inputs(model_name))
    model_cfg = model_config(task_cfg, model_name, {model_name: model_cfg})
    model = build_model(model_name, model_cfg, seed, task.feature_names)
    with training_run(task_name, model_name, tracking_uri):
        _log_datasets(task)
        result: dict[str, Any] = {"task": task_name, "model": model_name, "data": task.info}
        cross_validation = model_spec(model_name).cross_validates and bool(model_cfg.get("cv_folds"))
        scored, predicted, model = fit_and_evaluate(model, model_name, model_cfg, task, seed, cross_validation)
        result["data"] |= scored.pop("data")
        result |= scored
        frame = task.frames["test"][["id", "reduced_formula"]].assign(true=task.y["test"], predicted=predicted)
        _write_outputs(model, task, result, frame, out)
        _track(task_name, model_name, task_cfg, model_cfg, seed, task, result, out)
        example = pd.DataFrame(task.X["val" if len(task.y["val"]) else "train"][:3], columns=task.feature_names)
        mlflow.set_tag("model_uri", log_model(model, example, pip_requirements(model_name, model_cfg)))
    return result


def _log_datasets(task: TaskData) -> None:
    features, splits = task.inputs[0], task.inputs[1::2]  # inputs: each source's features then its split
    digest = hashlib.md5("".join(file_md5(p) for p in splits).encode()).hexdigest()[:8]
    for part, context in (("train", "training"), ("val", "validation"), ("test", "test")):
        frame = task.frames[part][["id", *task.feature_names, task.target]]
        log_dataset(frame, features, context, f"{task.name}:{part} ({task.info['table']}, split {digest})",
                    targets=task.target)


def _write_outputs(model, task: TaskData, result: dict, frame: pd.DataFrame, out: Mapping[str, Path]) -> None:
    for path in out.values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    plots = Path(out["plots"])
    plots.mkdir(parents=True, exist_ok=True)
    frame.astype({"true": str, "predicted": str} if task.kind == "classification" else {}).to_parquet(out["predictions"], index=False)
    if task.kind == "classification":
        frame[["true", "predicted"]].astype(str).rename(columns={"true": "actual"}).to_csv(plots / "confusion.csv", index=False)
    else:
        frame[["true", "predicted"]].to_csv(plots / "parity.csv", index=False)
    history = getattr(model, "history_", None)
    if history:
        pd.DataFrame(history).to_csv(plots / "loss.csv", index=False)
    if model_spec(result["model"]).feature_importance:
        pd.DataFrame({"feature": task.feature_names, "importance": model.feature_importances_}).sort_values(
            "importance", ascending=False).to_csv(plots / "feature_importance.csv", index=False)
    joblib.dump({"model": model, "feature_names": task.feature_names, "task": task.name, "target": task.target},
                out["model"], compress=3)
    Path(out["evaluation"]).write_text(json.dumps(result, indent=2) + "\n")
    Path(out["metrics"]).write_text(json.dumps(headline_metrics(result, task.kind), indent=2) + "\n")


def _track(task_name, model_name, task_cfg, model_cfg, seed, task: TaskData, result, out) -> None:
    metrics = (numeric_metrics(result["test"], "test.") | numeric_metrics(result.get("cv", {}), "cv.")
               | numeric_metrics(result.get("validation", {}), "val.")
               | numeric_metrics(result.get("test_by_source", {}), "test_by_source."))
    for name, values in result["baselines"].items():
        metrics |= numeric_metrics(values, f"baseline.{name}.")
    metrics["train_seconds"] = result["train_seconds"]
    tags = {"git_commit": git_commit(), "task": task_name, "model": model_name,
            **{f"data.{'/'.join(Path(p).parts[-2:])}": file_digest(Path(p)) for p in task.inputs}}
    params = flatten({"task": dict(task_cfg), "model": dict(model_cfg), "seed": seed})
    log_results(params, metrics, _history(out), tags, [Path(out["evaluation"]), Path(out["plots"])])


def _history(out) -> list[dict]:
    path = Path(out["plots"]) / "loss.csv"
    return pd.read_csv(path).to_dict("records") if path.exists() else []
