"""Stage parse@<source>: every raw record → structures.parquet, or rejects.parquet with its reason."""

import argparse
import json
from pathlib import Path

from xtalml.cif.dataset import parse_raw
from xtalml.config import load_params, section

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--raw", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--metrics", required=True)
args = parser.parse_args()

cfg = section(load_params(args.params), "parse", ["workers", "timeout_s"])
structures, rejects = parse_raw(Path(args.raw), cfg["workers"], cfg["timeout_s"])
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
structures.to_parquet(out / "structures.parquet", index=False)
rejects.to_parquet(out / "rejects.parquet", index=False)
total = len(structures) + len(rejects[rejects["stage"] == "parse"])
# counts only: the reasons are in rejects.parquet (a reason as a metric key would add a `dvc exp show` column per reason)
summary = {"parsed": len(structures), "rejected": {stage: int((rejects["stage"] == stage).sum()) for stage in ("download", "parse")},
           "parsed_fraction": round(len(structures) / total, 6) if total else 0.0}
Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
Path(args.metrics).write_text(json.dumps(summary, indent=2) + "\n")
print(f"parse {args.raw}: {len(structures)} structures, {len(rejects)} rejects")
