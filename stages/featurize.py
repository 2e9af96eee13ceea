"""Stage featurize: structures → data/processed/features.parquet + feature_schema.json + rejects."""

import argparse
import json
from pathlib import Path

import pandas as pd

from xtalml.cif.dataset import summarise_rejects
from xtalml.config import load_params, section
from xtalml.features.table import build_feature_table

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--structures", default="data/interim/structures.parquet")
parser.add_argument("--out", default="data/processed")
parser.add_argument("--metrics", default="metrics/featurize.json")
args = parser.parse_args()

cfg = section(load_params(args.params), "featurize", ["geometry", "composition"])
features, schema, rejects = build_feature_table(pd.read_parquet(args.structures), cfg["composition"], cfg["geometry"],
                                                cfg.get("element_tables"), cfg.get("volume_per_atom_range"))
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
features.to_parquet(out / "features.parquet", index=False)
(out / "feature_schema.json").write_text(json.dumps(schema, indent=2) + "\n")
rejects.to_parquet(out / "featurize_rejects.parquet", index=False)
Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
Path(args.metrics).write_text(json.dumps({
    "rows": len(features), "geometry_features": len(schema["features"]["geometry"]),
    "composition_features": len(schema["features"]["composition"]),
    "rejected": summarise_rejects(rejects)}, indent=2) + "\n")
print(f"featurize: {len(features)} rows, {len(rejects)} rejects")
