"""Stage lattice: lattice parameters from composition per Bravais lattice (free ratios and angles), with the cell
volume from the volume-per-atom champion; scored on the test rows per lattice beside the median and elemental baselines."""

import argparse
import json
from pathlib import Path

from xtalml.config import load_params, section, training_runs
from xtalml.models.compact import compact_lattice, save_compact
from xtalml.predict import formula_estimates, load_predictor
from xtalml.serving import pick_champion, validation_scores
from xtalml.structures.lattice_task import headline, train_lattice_task
from xtalml.tracking import log_results, training_run

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--models", default="models")
parser.add_argument("--out", default="models/lattice/lattice.pkl")
parser.add_argument("--evaluation", default="data/evaluation/lattice.json")
parser.add_argument("--metrics", default="metrics/lattice.json")
args = parser.parse_args()

params = load_params(args.params)
cfg = section(params, "lattice", ["source", "features", "model"])
task = "volume_per_atom_from_composition"
candidates = sorted({run["model"] for run in training_runs(params) if run["task"] == task})
champion = pick_champion(validation_scores(task, candidates, Path("metrics")), "regression")  # as register picks it
predictor = load_predictor(Path(args.models), {task: champion})


def volume_per_atom(formulas):
    return formula_estimates(predictor, formulas)["volume_per_atom"]


with training_run("lattice_from_composition", "lattice_forest") as run:
    bundle, evaluation = train_lattice_task(cfg, volume_per_atom)
    bundle["volume_model"] = champion
    summary = headline(evaluation)
    evaluation["volume_model"] = champion
    metrics = {"test": summary, "volume_model": champion}  # per-lattice figures: the evaluation file (the report's)
    for path, content in ((Path(args.out), None), (Path(args.evaluation), evaluation), (Path(args.metrics), metrics)):
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:  # forests in compact form: predict maps them in milliseconds, same predictions
            save_compact({**bundle, "model": compact_lattice(bundle["model"])}, path)
        else:
            path.write_text(json.dumps(content, indent=2) + "\n")
    flat = {f"test_{k}": v for k, v in summary.items() if v is not None}
    flat |= {f"{lat}_{k.replace('/', '_over_')}": v for lat, e in evaluation["test"].items() for k, v in e.items()
             if v is not None}
    log_results({**cfg["model"], "features": cfg["features"], "volume_model": champion}, flat, [],
                {"task": "lattice_from_composition", "model": "lattice_forest"}, [Path(args.out), Path(args.metrics)])
print(f"lattice: test ratio MAE {summary['ratio_mae']:.4f} (median baseline {summary['baseline_ratio_mae']:.4f}), "
      f"angle MAE {summary['angle_mae']:.2f}° ({summary['baseline_angle_mae']:.2f}°), cell volume MAPE "
      f"{summary['volume_mape']:.3f} ({champion}; elemental {summary['baseline_volume_mape']:.3f})")
