"""Stage existence: the existence model (does a known compound have this composition?), trained on the compositions of
the chemical systems our experimental sources hold, split by chemical system; scored on its held-out systems beside
the charge-balance rule and random order."""

import argparse
import json
from pathlib import Path

import joblib
import pandas as pd

from xtalml.config import load_params, section
from xtalml.discovery.existence import train_existence
from xtalml.experiments import describe_experiment
from xtalml.tracking import log_dataset, log_results, training_run

EXPERIMENT = "existence"

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--sources", type=Path, required=True, help="data/sources: each source's structures.parquet")
parser.add_argument("--out", type=Path, required=True, help="folder of the fitted model (existence.pkl)")
parser.add_argument("--data", type=Path, required=True, help="folder of the systems and held-out compositions")
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()

cfg = section(load_params(args.params), "existence", ["sources", "max_atoms", "max_elements", "model"])
formulas = {s: pd.read_parquet(args.sources / s / "structures.parquet", columns=["formula"])["formula"]
            for s in cfg["sources"]}
describe_experiment(EXPERIMENT, "The existence model: P(a known compound has this composition) from composition "
                    f"features, LightGBM. Positives: formulas of {', '.join(cfg['sources'])} with 2 to "
                    f"{cfg['max_elements']} elements and at most {cfg['max_atoms']} atoms per formula unit; negatives: "
                    "the other compositions of the same chemical systems. Split by chemical system; scored as a ranking "
                    "of every composition of each held-out system, beside the charge-balance rule and random order.")
with training_run(EXPERIMENT, "existence_lightgbm"):
    result = train_existence(cfg, formulas)
    args.out.mkdir(parents=True, exist_ok=True)
    args.data.mkdir(parents=True, exist_ok=True)
    model_path = args.out / "existence.pkl"
    joblib.dump({"model": result["model"], "max_atoms": cfg["max_atoms"], "max_elements": cfg["max_elements"],
                 "sources": list(cfg["sources"])}, model_path)
    result["systems"].to_parquet(args.data / "systems.parquet", index=False)
    result["held_out"].to_parquet(args.data / "held_out.parquet", index=False)
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(result["metrics"], indent=2) + "\n")
    log_dataset(result["systems"], args.data / "systems.parquet", "training", "chemical systems (part per system)")
    flat = {f"{part}_{arm}_{k}": v for part in ("val", "test") for arm, figures in result["metrics"][part].items()
            for k, v in figures.items()}
    log_results({k: v for k, v in cfg.items() if k != "model"} | {f"model_{k}": v for k, v in cfg["model"].items()},
                flat, [], {"task": "existence", "estimator": "lightgbm"}, [args.metrics])
test = result["metrics"]["test"]
print(f"existence: test systems {result['metrics']['rows']['systems']['test']}, average precision "
      f"{test['existence_model']['average_precision']:.3f} (charge-balance rule "
      f"{test['charge_balance_rule']['average_precision']:.3f}, random {test['random_order']['average_precision']:.3f}),"
      f" recall at 5 {test['existence_model']['recall_at_5']:.3f}")
