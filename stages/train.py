"""Stage train@<task>--<model>: fit one model on one task, evaluate on the test split next to baselines, log to MLflow."""

import argparse
from pathlib import Path

from xtalml.config import load_params, section
from xtalml.models.registry import fix_thread_counts
from xtalml.training import run_training

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--task", required=True)
parser.add_argument("--model", required=True)
args = parser.parse_args()

params = load_params(args.params)
tasks, models = section(params, "tasks"), section(params, "models")
if args.task not in tasks:
    raise SystemExit(f"unknown task {args.task!r}; tasks in params.yaml: {', '.join(tasks)}")
if args.model not in models:
    raise SystemExit(f"unknown model {args.model!r}; models in params.yaml: {', '.join(models)}")
train = section(params, "train")
fix_thread_counts([args.model], models, train.get("torch_threads", 1))
name = f"{args.task}/{args.model}"
result = run_training(args.task, tasks[args.task], args.model, models[args.model], train["seed"], {
    "metrics": Path(f"metrics/{name}.json"), "evaluation": Path(f"data/evaluation/{name}.json"), "predictions": Path(f"data/predictions/{name}.parquet"),
    "model": Path(f"models/{name}.pkl"), "plots": Path(f"plots/{name}")})
headline = {k: round(v, 4) for k, v in result["test"].items() if k in ("accuracy", "top5_accuracy", "mae", "r2")}
print(f"train {name}: test {headline} in {result['train_seconds']} s")
