"""Stage leakage_audit: why label-derived columns and random splits give inflated accuracy; the polymorph ceiling."""

import argparse
import json
from pathlib import Path

import pandas as pd

from xtalml.config import load_params, section
from xtalml.evaluation.leakage import leakage_audit, polymorph_ceiling

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--features", default="data/processed/features.parquet")
parser.add_argument("--split", default="data/processed/split.parquet")
parser.add_argument("--composition", default="data/composition/cod_index")
parser.add_argument("--metrics", default="metrics/leakage_audit.json")
args = parser.parse_args()

params = load_params(args.params)
cfg, rf_cfg = section(params, "leakage_audit", ["seed", "test_size"]), section(params, "models")["random_forest"]
schema = json.loads((Path(args.features).parent / "feature_schema.json").read_text())
table = pd.read_parquet(args.features).merge(pd.read_parquet(args.split), on="id")
table = table[table["part"].isin(["train", "val", "test"])].reset_index(drop=True)
result = {"sg_from_geometry_random_forest": leakage_audit(
    table, table["part"], schema["features"]["geometry"], rf_cfg, cfg["seed"], cfg["test_size"])}
composition = pd.read_parquet(Path(args.composition) / "features.parquet", columns=["id", "reduced_formula", "sg_number", "bravais_lattice"])
composition = composition.merge(pd.read_parquet(Path(args.composition) / "split.parquet"), on="id")
test = composition[composition["part"] == "test"]
result["polymorph_ceiling"] = {"sg_from_composition": polymorph_ceiling(test, "sg_number"),
                               "bravais_from_composition": polymorph_ceiling(test, "bravais_lattice"), "test_rows": len(test)}
Path(args.metrics).write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
