"""Stage split_modes: the headline model of each composition task, refit on a split by chemical system."""

import argparse
import json
from pathlib import Path

from threadpoolctl import threadpool_limits

from xtalml.config import load_params
from xtalml.evaluation.split_modes import split_mode_comparison
from xtalml.models.registry import uses_torch

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--out", default="data/split_modes")
parser.add_argument("--metrics", default="metrics/split_modes.json")
args = parser.parse_args()

params = load_params(args.params)
threadpool_limits(1)  # as the train stages: the same float sums on every machine
if any(uses_torch(m, params["models"][m]) for m in params["split_modes"]["models"].values()):
    import torch

    torch.set_num_threads(int(params["train"].get("torch_threads", 1)))
result = split_mode_comparison(params, Path(args.out))
Path(args.metrics).write_text(json.dumps(result, indent=2) + "\n")
for task, r in result["tasks"].items():
    key = "accuracy" if "accuracy" in r["test"] else "mae"
    print(f"split_modes: {task} {r['model']} by {result['group']}: test {key} {r['test'][key]:.4f}")
