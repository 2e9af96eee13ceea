"""Stage split: train/val/test part of every row, grouped by reduced formula → data/processed/split.parquet."""

import argparse
import json
from pathlib import Path

import pandas as pd

from xtalml.config import load_params, section
from xtalml.splitting import grouped_split, overlapping_groups, time_split

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--features", default="data/processed/features.parquet")
parser.add_argument("--out", default="data/processed/split.parquet")
parser.add_argument("--metrics", default="metrics/split.json")
args = parser.parse_args()

cfg = section(load_params(args.params), "split", ["method", "group", "seed"])
table = pd.read_parquet(args.features, columns=["id", cfg["group"], "year", *([cfg["stratify"]] if cfg.get("stratify") else [])])
if cfg["method"] == "grouped":
    part = grouped_split(table, cfg["group"], cfg.get("stratify"), cfg["test_size"], cfg["val_size"], cfg["seed"])
elif cfg["method"] == "time":
    part = time_split(table, cfg["train_until"], cfg["group"], "year", cfg["val_size"], cfg["seed"])
else:
    raise ValueError(f"split.method={cfg['method']!r}: choose grouped or time")
overlap = overlapping_groups(table, part, cfg["group"])
if overlap:
    raise RuntimeError(f"split leaks {len(overlap)} formulas across parts, e.g. {sorted(overlap)[:5]}")
pd.DataFrame({"id": table["id"], "part": part}).to_parquet(args.out, index=False)
counts = part.value_counts().to_dict()
Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
Path(args.metrics).write_text(json.dumps({"rows": counts, "formulas": table.groupby(part)[cfg["group"]].nunique().to_dict(),
                                          "overlapping_formulas": len(overlap)}, indent=2) + "\n")
print(f"split ({cfg['method']}): {counts}")
