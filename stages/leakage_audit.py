"""Stage leakage_audit: why label-derived columns and random splits give inflated accuracy; the polymorph ceiling."""

import argparse
import json
from pathlib import Path

from xtalml.config import load_params, section
from xtalml.evaluation.leakage import leakage_audit, polymorph_ceiling
from xtalml.tasks import DataDirs, read_table, task_sources

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--features", type=Path, required=True, help="the featurize stages' folder")
parser.add_argument("--split", type=Path, required=True, help="the split stage's folder")
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()

params = load_params(args.params)
data = DataDirs(args.features, args.split)
cfg, rf_cfg = section(params, "leakage_audit", ["seed", "test_size"]), section(params, "models")["random_forest"]
tasks = section(params, "tasks")
sources = task_sources(tasks[cfg["geometry_task"]])
geometry = data.schema(sources[0])["features"]["geometry"]
table = read_table(sources, ["id", "reduced_formula", "sg_number", "sg_symbol", *geometry], data)
table = table[table["part"].isin(["train", "val", "test"])].reset_index(drop=True)
result = {"sg_from_geometry_random_forest": leakage_audit(
    table, table["part"], geometry, rf_cfg, cfg["seed"], cfg["test_size"])}
composition = read_table(task_sources(tasks[cfg["composition_task"]]),
                         ["id", "reduced_formula", "sg_number", "bravais_lattice"], data)
test = composition[composition["part"] == "test"]
result["polymorph_ceiling"] = {"sg_from_composition": polymorph_ceiling(test, "sg_number"),
                               "bravais_from_composition": polymorph_ceiling(test, "bravais_lattice"), "test_rows": len(test)}
args.metrics.write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
