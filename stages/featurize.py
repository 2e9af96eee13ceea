"""Stage featurize@<source>: structures → features.parquet + feature_schema.json + rejects.parquet."""

import argparse
import json
from pathlib import Path

import pandas as pd

from xtalml.config import load_params, section, source_section
from xtalml.features.embeddings import table_specs
from xtalml.features.table import build_feature_table

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--source", required=True, help="a key of the `sources` section of params.yaml")
parser.add_argument("--structures", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--metrics", required=True)
args = parser.parse_args()

params = load_params(args.params)
cfg, source = section(params, "featurize", ["geometry", "composition"]), source_section(params, args.source)
features, schema, rejects = build_feature_table(pd.read_parquet(args.structures), cfg["composition"],
                                                cfg["geometry"] and bool(source.get("cells")),  # formulas have no cell
                                                table_specs(cfg.get("element_tables")), cfg.get("volume_per_atom_range"))
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
features.to_parquet(out / "features.parquet", index=False)
(out / "feature_schema.json").write_text(json.dumps(schema, indent=2) + "\n")
rejects.to_parquet(out / "rejects.parquet", index=False)
Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
Path(args.metrics).write_text(json.dumps({  # counts only: the reasons are in rejects.parquet
    "rows": len(features), "rejected": len(rejects), "geometry_features": len(schema["features"]["geometry"]),
    "composition_features": len(schema["features"]["composition"])}, indent=2) + "\n")
print(f"featurize@{args.source}: {len(features)} rows, {len(rejects)} rejects")
