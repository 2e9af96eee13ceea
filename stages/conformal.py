"""Stage conformal: calibrate split-conformal space-group sets for the champion (or a named model) on rows that look
like new data, and measure their coverage on the test rows of the main split and of the chemical-system split."""

import argparse
import json
from pathlib import Path

from xtalml.config import load_params, section
from xtalml.evaluation.conformal import calibrate_sets
from xtalml.tasks import DataDirs

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--models", type=Path, required=True, help="models/<conformal.task>: the task's fitted models")
parser.add_argument("--train-metrics", type=Path, required=True, help="metrics/<conformal.task>: the champion's criterion")
parser.add_argument("--features", type=Path, required=True, help="the featurize stages' folder")
parser.add_argument("--split", type=Path, required=True, help="the split stage's folder")
parser.add_argument("--split-modes", type=Path, required=True, help="the split_modes stage's folder (chemical systems)")
parser.add_argument("--out", type=Path, required=True, help="folder of the calibration (<task>.json)")
parser.add_argument("--details", type=Path, required=True, help="rows, median set sizes, top-k curve (.json)")
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()

params = load_params(args.params)
section(params, "conformal", ["task", "model", "calibration", "coverages", "top_k_max"])
calibration, result = calibrate_sets(params, args.models, args.train_metrics, DataDirs(args.features, args.split),
                                     args.split_modes)
args.out.mkdir(parents=True, exist_ok=True)
(args.out / f"{calibration['task']}.json").write_text(json.dumps(calibration) + "\n")
args.details.parent.mkdir(parents=True, exist_ok=True)
args.details.write_text(json.dumps(result, indent=2) + "\n")  # rows, median set sizes, top-k curve: the report reads it
headline = {split: {target: {k: s[k] for k in ("coverage", "mean_set_size")} for target, s in scored["sets"].items()}
            for split, scored in result["test"].items()}
args.metrics.parent.mkdir(parents=True, exist_ok=True)
args.metrics.write_text(json.dumps(headline, indent=2) + "\n")
for split, scored in result["test"].items():
    print(f"conformal {result['model']} ({result['calibration']}): {split} test " + ", ".join(
        f"{k}: coverage {v['coverage']:.3f}, mean set {v['mean_set_size']:.1f}" for k, v in scored["sets"].items()))
