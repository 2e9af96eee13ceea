"""How often a template's element-to-site assignment gives the true structure, for each way of scoring assignments,
on validation formulas of our split (no relaxation, no space-group model: the assignment alone).

    python benchmarks/site_mapping.py                 # 60 validation formulas per atom bin
    python benchmarks/site_mapping.py --per-bin 20

For each validation formula of the primary source with a template in its true space group (templates of its own
reduced formula left out), every such template is substituted with the formula's elements by the assignment each
setting ranks first (and by its best `--mappings` assignments), scaled to the true volume and matched to the true
structure (pymatgen's StructureMatcher at CSPBench's tolerances, elements compared). A formula counts as found where
a template of its true group matches. Only formulas with two or more elements of one reduced amount have a choice:
their share is printed apart. Run from a project after `dvc repro templates`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from xtalml.config import load_params
from xtalml.structures.benchmark import benchmark_structures
from xtalml.structures.templates import reduced_amounts, template_options, template_structure

SETTINGS = {
    "properties": {"properties": 1.0},
    "properties + oxidation": {"properties": 1.0, "oxidation": 1.0},
    "properties + periodic": {"properties": 1.0, "periodic": 1.0},
    "properties + periodic + oxidation": {"properties": 1.0, "periodic": 1.0, "oxidation": 1.0},
    "oxidation, then properties": {"properties": 0.1, "oxidation": 1.0},
    "periodic": {"periodic": 1.0},
}


def has_choice(formula: str) -> bool:
    """Two or more elements share a reduced amount: the assignment is a choice."""
    amounts = [round(v, 6) for v in reduced_amounts(formula).values()]
    return len(set(amounts)) < len(amounts)


def found(formula: str, truth, library: pd.DataFrame, group: int, weights: dict, mappings: int, matcher) -> bool:
    """A template of the true group, substituted by one of the setting's first `mappings` assignments, matches."""
    options = template_options(formula, library, exclude_formula=formula, per_template=mappings,
                               mapping_weights=weights)
    volume = truth.volume / len(truth)
    return any(matcher.fit(truth, template_structure(o, volume)) for o in options if o["space_group"] == group)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-bin", type=int, default=60)
    parser.add_argument("--mappings", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--project", type=Path, default=Path("."))
    args = parser.parse_args()
    from pymatgen.analysis.structure_matcher import StructureMatcher

    start = time.perf_counter()
    bench = load_params(args.project / "params.yaml")["generate"]["benchmark"]
    table, truths = benchmark_structures(args.project / "data/sources" / bench["source"],
                                         args.project / "data/split" / f"{bench['source']}.parquet",
                                         list(bench["atom_bins"]), [args.per_bin] * len(bench["atom_bins"]), 42, "val")
    library = pd.read_parquet(args.project / "data/templates/library.parquet")
    matcher = StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)
    rows = []
    for row, truth in zip(table.itertuples(index=False), truths):
        options = template_options(row.formula, library, exclude_formula=row.formula)
        if not any(o["space_group"] == row.sg_number for o in options):
            continue
        out = {"formula": row.formula, "choice": has_choice(row.formula)}
        for name, weights in SETTINGS.items():
            for k in args.mappings:
                out[f"{name} @{k}"] = found(row.formula, truth, library, row.sg_number, weights, k, matcher)
        out["any assignment"] = found(row.formula, truth, library, row.sg_number, {"properties": 1.0}, 24, matcher)
        rows.append(out)
    per_formula = pd.DataFrame(rows)
    columns = [c for c in per_formula.columns if c not in ("formula", "choice")]
    summary = pd.DataFrame({"all": per_formula[columns].mean(),
                            "with a choice": per_formula.loc[per_formula["choice"], columns].mean()}).round(3)
    print(summary.to_string())
    print(json.dumps({"validation formulas": len(table), "with a template in the true group": len(per_formula),
                      "with a choice": int(per_formula["choice"].sum()),
                      "seconds": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
