"""Stage conformal: calibrate split-conformal space-group sets on the validation rows, measure them on the test rows."""

import argparse
import json
from pathlib import Path

import joblib

from xtalml.config import load_params, section
from xtalml.evaluation.conformal import conformal_evaluation, nonconformity, top_k_curve
from xtalml.tasks import load_task, model_config
from xtalml.models.registry import REGISTRY, task_inputs, trained_on_validation_rows

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--out", default="models/conformal")
parser.add_argument("--metrics", default="metrics/conformal.json")
args = parser.parse_args()

params = load_params(args.params)
cfg = section(params, "conformal", ["task", "model", "coverages", "top_k_max"])
task_name, model_name = cfg["task"], cfg["model"]
task_cfg, models = section(params, "tasks")[task_name], section(params, "models")
if trained_on_validation_rows(model_name, model_config(task_cfg, model_name, models)):  # then they cannot calibrate it
    fresh = [n for n in REGISTRY if n in models and not trained_on_validation_rows(n, model_config(task_cfg, n, models))]
    raise SystemExit(f"conformal.model={model_name!r} saw the validation rows in training (early stopping or "
                     f"refit_with_val_rows); choose one trained on the train rows only: {', '.join(fresh)}")
bundle = joblib.load(Path("models") / task_name / f"{model_name}.pkl")
task = load_task(task_name, task_cfg, **task_inputs(model_name))
model, classes = bundle["model"], [str(c) for c in bundle["model"].classes_]
calibration = nonconformity(model.predict_proba(task.X["val"]), classes, task.y["val"])
proba_test = model.predict_proba(task.X["test"])
result = {"task": task_name, "model": model_name, "calibration_rows": len(calibration), "test_rows": len(task.y["test"]),
          "classes": len(classes), "sets": conformal_evaluation(calibration, proba_test, classes, task.y["test"], cfg["coverages"]),
          "top_k_accuracy": top_k_curve(proba_test, classes, task.y["test"], int(cfg["top_k_max"]))}
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
(out / f"{task_name}.json").write_text(json.dumps(
    {"task": task_name, "model": model_name, "scores": sorted(float(s) for s in calibration)}) + "\n")
Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
Path(args.metrics).write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps({k: v for k, v in result.items() if k != "top_k_accuracy"}, indent=2))
