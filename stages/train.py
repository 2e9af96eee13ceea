"""Stage train_<group>@<task>-<model>: fit one model on one task, evaluate on the test split next to baselines, log to
MLflow."""

import argparse
from pathlib import Path

from xtalml.config import load_params, section
from xtalml.models.registry import fix_thread_counts
from xtalml.tasks import DataDirs
from xtalml.training import run_training

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--task", required=True)
parser.add_argument("--model", required=True)
parser.add_argument("--features", type=Path, required=True, help="the featurize stages' folder")
parser.add_argument("--split", type=Path, required=True, help="the split stage's folder")
parser.add_argument("--model-file", type=Path, required=True, help="the fitted model (.pkl)")
parser.add_argument("--predictions", type=Path, required=True, help="test predictions (.parquet)")
parser.add_argument("--evaluation", type=Path, required=True, help="everything scored (.json)")
parser.add_argument("--plots", type=Path, required=True, help="folder of the run's plot files")
parser.add_argument("--metrics", type=Path, required=True, help="headline figures (.json, a DVC metric)")
args = parser.parse_args()

params = load_params(args.params)
tasks, models = section(params, "tasks"), section(params, "models")
if args.task not in tasks:
    raise SystemExit(f"unknown task {args.task!r}; tasks in params.yaml: {', '.join(tasks)}")
if args.model not in models:
    raise SystemExit(f"unknown model {args.model!r}; models in params.yaml: {', '.join(models)}")
train = section(params, "train")
fix_thread_counts([args.model], models, train.get("torch_threads", 1))
out = {"metrics": args.metrics, "evaluation": args.evaluation, "predictions": args.predictions, "model": args.model_file,
       "plots": args.plots}
result = run_training(args.task, tasks[args.task], args.model, models[args.model], train["seed"], out,
                      DataDirs(args.features, args.split))
headline = {k: round(v, 4) for k, v in result["test"].items() if k in ("accuracy", "top5_accuracy", "mae", "r2")}
print(f"train {args.task}-{args.model}: test {headline} in {result['train_seconds']} s")
