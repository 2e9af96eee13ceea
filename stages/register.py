"""Stage register: per task, the model best on the validation rows becomes xtalml-<task>@champion; the predictor pyfunc too."""

import argparse
import json
from functools import partial
from pathlib import Path

from xtalml.config import load_params, section, training_runs
from xtalml.predict import DEFAULT_MODELS
from xtalml.serving import (PREDICTOR_EXPERIMENT, mark_model_training, model_requirements, pick_champion,
                            register_champion, register_predictor, validation_example, validation_scores)

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--models", default="models")
parser.add_argument("--train-metrics", default="metrics", help="folder of the train stages' metrics/<task>/<model>.json")
parser.add_argument("--metrics", default="metrics/register.json")
parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
args = parser.parse_args()

params = load_params(args.params)
tasks, runs = section(params, "tasks"), training_runs(params)
result, model_uris = {"chosen_on": "validation rows (never test)", "tasks": {}}, {}
for task_name, task_cfg in tasks.items():
    models = sorted({r["model"] for r in runs if r["task"] == task_name})
    if not models:
        continue
    scores = validation_scores(task_name, models, Path(args.train_metrics))
    metric = "accuracy" if task_cfg["kind"] == "classification" else "mae"
    champion = pick_champion(scores, task_cfg["kind"])
    registered = register_champion(task_name, champion, Path(args.models) / task_name / f"{champion}.pkl",
                                   partial(validation_example, task_name, task_cfg, champion), scores[champion], metric,
                                   args.tracking_uri)
    model_uris[task_name] = registered["model_uri"]
    result["tasks"][task_name] = {"champion": champion, "metric": metric, "validation": scores[champion],
                                  "registered": registered["name"], "version": registered["version"]}
    print(f"register: {registered['name']}@champion = {champion} (validation {metric} {scores[champion]:.4f}, "
          f"version {registered['version']}{', new' if registered['new_version'] else ''})")
choice = {task: result["tasks"][task]["champion"] for task in DEFAULT_MODELS if task in result["tasks"]}
needs = [line for task in choice for line in model_requirements(model_uris[task])]
predictor = register_predictor(Path(args.models), choice, Path(args.params), args.tracking_uri, needs)
result["predictor"] = {"registered": predictor["name"], "version": predictor["version"], "models": choice}
mark_model_training([*result["tasks"], PREDICTOR_EXPERIMENT], args.tracking_uri)
print(f"register: {predictor['name']}@champion version {predictor['version']} with "
      + ", ".join(f"{task} {e['model']} ({e['form']})" for task, e in predictor["served"].items()))
Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
Path(args.metrics).write_text(json.dumps(result, indent=2) + "\n")
