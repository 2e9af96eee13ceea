"""Stage lattice: lattice parameters from composition per Bravais lattice (free ratios and angles), with the cell
volume from the volume-per-atom champion; scored on the test rows per lattice beside the median and elemental baselines."""

import argparse
import json
from pathlib import Path

from xtalml.champions import choose_champion
from xtalml.config import load_params, section
from xtalml.models.compact import compact_lattice, save_compact
from xtalml.predict import formula_estimates, load_predictor
from xtalml.structures.lattice_task import headline, train_lattice_task
from xtalml.tasks import DataDirs
from xtalml.experiments import describe_experiment
from xtalml.tracking import log_results, training_run

VOLUME_TASK = "volume_per_atom_from_composition"

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--volume-models", type=Path, required=True, help=f"models/{VOLUME_TASK}")
parser.add_argument("--volume-metrics", type=Path, required=True, help=f"metrics/{VOLUME_TASK}: the champion's criterion")
parser.add_argument("--structures", type=Path, required=True, help="lattice.source's parsed structures (their cells)")
parser.add_argument("--features", type=Path, required=True, help="lattice.source's feature folder")
parser.add_argument("--split", type=Path, required=True, help="the split stage's folder")
parser.add_argument("--out", type=Path, required=True, help="folder of the fitted lattice model (lattice.pkl)")
parser.add_argument("--evaluation", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()

params = load_params(args.params)
cfg = section(params, "lattice", ["source", "features", "model"])
if args.features.name != cfg["source"]:
    raise SystemExit(f"lattice: --features {args.features} is not the folder of lattice.source ({cfg['source']})")
champion = choose_champion(params, VOLUME_TASK, args.volume_metrics)["champion"]
predictor = load_predictor(args.volume_models.parent, {VOLUME_TASK: champion}, calibrations=False, lattice=False)


def volume_per_atom(formulas):
    return formula_estimates(predictor, formulas)["volume_per_atom"]


model_path = args.out / "lattice.pkl"
describe_experiment("lattice_from_composition", "Lattice parameters from composition, per Bravais lattice (CRYSPNet's "
                    "third model): a forest predicts the conventional cell's free ratios and angles; scored on the "
                    f"{cfg['source']} test rows beside each lattice's median parameters, the cell volume from the "
                    "volume-per-atom champion beside the elemental volume.")
with training_run("lattice_from_composition", "lattice_forest") as run:
    bundle, evaluation = train_lattice_task(cfg, volume_per_atom, args.structures,
                                            DataDirs(args.features.parent, args.split))
    bundle["volume_model"] = champion
    summary = headline(evaluation)
    evaluation["volume_model"] = champion
    metrics = {"test": summary, "volume_model": champion}  # per-lattice figures: the evaluation file (the report's)
    # forests in compact form: predict maps them in milliseconds, same predictions
    save_compact({**bundle, "model": compact_lattice(bundle["model"])}, model_path)
    for path, content in ((args.evaluation, evaluation), (args.metrics, metrics)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2) + "\n")
    flat = {f"test_{k}": v for k, v in summary.items() if v is not None}
    flat |= {f"{lat}_{k.replace('/', '_over_')}": v for lat, e in evaluation["test"].items() for k, v in e.items()
             if v is not None}
    log_results({**cfg["model"], "features": cfg["features"], "volume_model": champion}, flat, [],
                {"task": "lattice_from_composition", "model": "lattice_forest"}, [model_path, args.metrics])
print(f"lattice: test ratio MAE {summary['ratio_mae']:.4f} (median baseline {summary['baseline_ratio_mae']:.4f}), "
      f"angle MAE {summary['angle_mae']:.2f}° ({summary['baseline_angle_mae']:.2f}°), cell volume MAPE "
      f"{summary['volume_mape']:.3f} ({champion}; elemental {summary['baseline_volume_mape']:.3f})")
