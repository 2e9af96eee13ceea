"""Stage parse@<source>: every raw record → structures.parquet, or rejects.parquet with its reason."""

import argparse
import json
from pathlib import Path

from xtalml.cif.dataset import parse_raw
from xtalml.config import load_params, section

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--raw", type=Path, required=True, help="the download stage's folder")
parser.add_argument("--structures", type=Path, required=True, help="parsed records (.parquet)")
parser.add_argument("--rejects", type=Path, required=True, help="rejected records with their reason (.parquet)")
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()

cfg = section(load_params(args.params), "parse", ["workers", "timeout_s"])
structures, rejects = parse_raw(args.raw, cfg["workers"], cfg["timeout_s"])
for path in (args.structures, args.rejects, args.metrics):
    path.parent.mkdir(parents=True, exist_ok=True)
structures.to_parquet(args.structures, index=False)
rejects.to_parquet(args.rejects, index=False)
total = len(structures) + len(rejects[rejects["stage"] == "parse"])
# counts only: the reasons are in rejects.parquet (a reason as a metric key would add a `dvc exp show` column per reason)
summary = {"parsed": len(structures), "rejected": {stage: int((rejects["stage"] == stage).sum()) for stage in ("download", "parse")},
           "parsed_fraction": round(len(structures) / total, 6) if total else 0.0}
args.metrics.write_text(json.dumps(summary, indent=2) + "\n")
print(f"parse {args.raw}: {len(structures)} structures, {len(rejects)} rejects")
