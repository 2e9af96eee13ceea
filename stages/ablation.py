"""Stage ablation: one model per composition task refit on each composition feature set, the same rows for every set."""

import argparse
import json
from pathlib import Path

from xtalml.config import load_params
from xtalml.studies.ablation import feature_set_ablation
from xtalml.models.registry import fix_thread_counts
from xtalml.tasks import DataDirs

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--features", type=Path, required=True, help="the featurize stages' folder")
parser.add_argument("--split", type=Path, required=True, help="the split stage's folder")
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()

params = load_params(args.params)
fix_thread_counts(list(params["ablation"]["models"].values()), params["models"], params["train"].get("torch_threads", 1))
result = feature_set_ablation(params, DataDirs(args.features, args.split))
args.metrics.write_text(json.dumps(result, indent=2) + "\n")
for task, r in result["tasks"].items():
    for run in r["runs"]:
        key = "accuracy" if "accuracy" in run["test"] else "mae"
        print(f"ablation: {task} {r['model']} on {run['feature_set']} ({run['features']} features): "
              f"test {key} {run['test'][key]:.4f} in {run['train_seconds']} s")
