"""Stage register: per task, the model best on the validation rows becomes xtalml-<task>@champion; the predictor pyfunc too."""

import argparse
import json
from pathlib import Path

from xtalml.config import load_params, section
from xtalml.models.registry import fix_thread_counts
from xtalml.predict import DEFAULT_MODELS
from xtalml.serving import (PREDICTOR_EXPERIMENT, mark_model_training, pick_champion, register_champion,
                            register_predictor, validation_scores)

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--models", default="models")
parser.add_argument("--metrics", default="metrics/register.json")
parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
args = parser.parse_args()

params = load_params(args.params)
tasks, runs = section(params, "tasks"), section(params, "train")["runs"]
# as the train stages; it scores every trained model
fix_thread_counts(sorted({r["model"] for r in runs.values()}), section(params, "models"), section(params, "train").get("torch_threads", 1))
result = {"chosen_on": "validation rows (never test)", "tasks": {}}
for task_name, task_cfg in tasks.items():
    models = sorted({r["model"] for r in runs.values() if r["task"] == task_name})
    if not models:
        continue
    scores, examples = validation_scores(task_name, task_cfg, models, Path(args.models))
    metric = "accuracy" if task_cfg["kind"] == "classification" else "mae"
    champion = pick_champion(scores, task_cfg["kind"])
    registered = register_champion(task_name, champion, Path(args.models) / task_name / f"{champion}.pkl",
                                   examples[champion], scores[champion], metric, args.tracking_uri)
    result["tasks"][task_name] = {"champion": champion, "metric": metric, "validation": scores,
                                  "registered": registered["name"], "version": registered["version"]}
    print(f"register: {registered['name']}@champion = {champion} (validation {metric} {scores[champion]:.4f}, "
          f"version {registered['version']}{', new' if registered['new_version'] else ''})")
choice = {task: result["tasks"][task]["champion"] for task in DEFAULT_MODELS if task in result["tasks"]}
predictor = register_predictor(Path(args.models), choice, Path(args.params), args.tracking_uri)
result["predictor"] = {"registered": predictor["name"], "version": predictor["version"], "models": choice}
mark_model_training([*result["tasks"], PREDICTOR_EXPERIMENT], args.tracking_uri)
print(f"register: {predictor['name']}@champion version {predictor['version']} with {choice}")
Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
Path(args.metrics).write_text(json.dumps(result, indent=2) + "\n")
