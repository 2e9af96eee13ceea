"""Stage split: one train/val/test assignment per group (formula or chemical system) for every source."""

import argparse
import json
from pathlib import Path


from xtalml.config import load_params, section
from xtalml.splitting import read_split_columns, shared_split, split_summary

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--features", required=True, help="folder of featurize@<source> outputs")
parser.add_argument("--out", required=True, help="<source>.parquet (id, part, group) is written here")
parser.add_argument("--metrics", required=True)
args = parser.parse_args()

params = load_params(args.params)
cfg = section(params, "split", ["method", "group", "seed"])
sources = {key: read_split_columns(Path(args.features) / key / "features.parquet", cfg.get("stratify"))
           for key in section(params, "sources")}
parts = shared_split(sources, cfg)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
for key, assignment in parts.items():
    assignment.to_parquet(out / f"{key}.parquet", index=False)
    print(f"split ({cfg['method']}, by {cfg['group']}) {key}: {assignment['part'].value_counts().to_dict()}")
summary = split_summary(sources, parts, cfg)
(Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")  # formulas per part; the report reads it
metrics = {"rows": {key: m["rows"] for key, m in summary["sources"].items()},
           "groups_in_two_parts_without_published_split": summary["groups_in_two_parts_without_published_split"]}
Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
Path(args.metrics).write_text(json.dumps(metrics, indent=2) + "\n")
