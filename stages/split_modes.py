"""Stage split_modes: the headline model of each composition task, refit on a split by chemical system."""

import argparse
import json
from pathlib import Path

from xtalml.config import load_params
from xtalml.evaluation.metrics import headline_metrics
from xtalml.studies.split_modes import split_mode_comparison
from xtalml.models.registry import fix_thread_counts

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--features", type=Path, required=True, help="the featurize stages' folder")
parser.add_argument("--out", type=Path, required=True, help="the second split (<source>.parquet) and evaluation.json")
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()

params = load_params(args.params)
fix_thread_counts(list(params["split_modes"]["models"].values()), params["models"], params["train"].get("torch_threads", 1))
result = split_mode_comparison(params, args.out, args.features)
(args.out / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")  # the report reads row counts there
# per task the refit model's headline figures; which model and group: split_modes in params.yaml, details in the evaluation
headline = {task: headline_metrics(r, params["tasks"][task]["kind"]) for task, r in result["tasks"].items()}
args.metrics.write_text(json.dumps(headline, indent=2) + "\n")
for task, r in result["tasks"].items():
    key = "accuracy" if "accuracy" in r["test"] else "mae"
    print(f"split_modes: {task} {r['model']} by {result['group']}: test {key} {r['test'][key]:.4f}")
