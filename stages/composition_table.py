"""Stage composition_table@<source>: one composition source (download → parse → featurize) plus the primary table's rows."""

import argparse
import json
from pathlib import Path

import pandas as pd

from xtalml.cif.dataset import parse_raw, summarise_rejects
from xtalml.config import load_params, section
from xtalml.features.table import build_feature_table, feature_columns
from xtalml.sources.download import download_source
from xtalml.tasks import stack_composition_tables

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--source", required=True, help="a key of composition_sources in params.yaml")
parser.add_argument("--primary", default="data/processed/features.parquet")
parser.add_argument("--out", required=True)
parser.add_argument("--metrics", required=True)
args = parser.parse_args()

params = load_params(args.params)
sources = section(params, "composition_sources")
if args.source not in sources:
    raise SystemExit(f"composition source {args.source!r} is not in params.yaml; composition_sources: {', '.join(sources)}")
source, cfg = sources[args.source], section(params, "composition_table")
featurize_cfg = section(params, "featurize")
out = Path(args.out)
download_source(source, out / "raw")
structures, parse_rejects = parse_raw(out / "raw", section(params, "parse")["workers"], section(params, "parse")["timeout_s"])
index_features, schema, feature_rejects = build_feature_table(structures, featurize_cfg["composition"], geometry=False,
                                                              element_tables=featurize_cfg.get("element_tables"))
columns = feature_columns(schema, ["composition"])
primary = pd.read_parquet(args.primary) if cfg["include_primary"] else None
table = stack_composition_tables(index_features, primary, columns)
table.to_parquet(out / "features.parquet", index=False)
(out / "feature_schema.json").write_text(json.dumps({**schema, "features": {"geometry": [], "composition": columns}}, indent=2) + "\n")
rejects = pd.concat([parse_rejects, feature_rejects], ignore_index=True)
rejects.to_parquet(out / "rejects.parquet", index=False)
Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
Path(args.metrics).write_text(json.dumps({
    "rows": len(table), "rows_by_source": table["source"].value_counts().to_dict(),
    "rejected": summarise_rejects(rejects)}, indent=2) + "\n")
print(f"composition_table@{args.source}: {len(table)} rows ({table['source'].value_counts().to_dict()}), {len(rejects)} rejects")
