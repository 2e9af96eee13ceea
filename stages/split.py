"""Stage split: one train/val/test assignment per group (formula or chemical system) for every table."""

import argparse
import json
from pathlib import Path

import pandas as pd

from xtalml.config import load_params, section
from xtalml.splitting import near_duplicate_share, overlapping_groups, read_split_columns, shared_split

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--tables", nargs="+", required=True,
                    help="folders holding features.parquet; split.parquet is written beside each")
parser.add_argument("--metrics", default="metrics/split.json")
args = parser.parse_args()

cfg = section(load_params(args.params), "split", ["method", "group", "seed"])
tables = {folder: read_split_columns(Path(folder) / "features.parquet", cfg.get("stratify")) for folder in args.tables}
parts = shared_split(tables, cfg)
metrics = {"method": cfg["method"], "group": cfg["group"], "tables": {}}
for folder, table in tables.items():
    part = parts[folder]
    pd.DataFrame({"id": table["id"], "part": part}).to_parquet(Path(folder) / "split.parquet", index=False)
    metrics["tables"][folder] = {
        "rows": part.value_counts().to_dict(), "formulas": table.groupby(part)["reduced_formula"].nunique().to_dict(),
        # rows whose group is held out (test/val) elsewhere in this table, by source: never trained on
        "excluded_by_source": table.loc[part == "excluded", "source"].value_counts().to_dict(),
        "near_duplicate_test_share": round(near_duplicate_share(table["formula"].astype(str), part), 4)}
    print(f"split ({cfg['method']}, by {cfg['group']}) {folder}: {part.value_counts().to_dict()}")
metrics["formulas_in_two_parts"] = sum(  # 0 by design: within every table
    len(overlapping_groups(t, parts[f], "reduced_formula")) for f, t in tables.items())
ours = pd.concat([t.assign(part=parts[f].to_numpy()) for f, t in tables.items()])
ours = ours[ours.get("published_split", pd.Series(pd.NA, index=ours.index)).isna()]
metrics["formulas_in_two_parts_across_tables_without_published_split"] = len(
    overlapping_groups(ours, ours["part"], "reduced_formula"))
metrics["near_duplicate_rule"] = "test row with a train row of the same elements, every atomic fraction within 0.02"
Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
Path(args.metrics).write_text(json.dumps(metrics, indent=2) + "\n")
