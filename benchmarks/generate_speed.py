"""Seconds per formula of `xtalml generate` at the default settings (params.yaml generate.search), for 10 formulas of
1 to 20 atoms per formula unit: cold (a new `xtalml generate` process: imports, a local Dask cluster, CHGNet loaded
in each worker) and warm (one Python session's project, its cluster already up, as in a notebook).

    python benchmarks/generate_speed.py [--formulas NaCl ZnO ...] [--no-cold]

Run from a project after `dvc repro`; prints one row per formula and the medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time

import pandas as pd
import yaml

import xtalml

FORMULAS = ["NaCl", "NiAl", "ZnO", "MgB2", "Li2O", "TiO2", "CaTiO3", "CoAl2O4", "LiFePO4", "Ca3Al2Si3O12"]


def cold_seconds(formula: str, out: str) -> tuple[float, int]:
    """Wall seconds of `xtalml generate FORMULA` in a new process, and its exit code."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "xtalml", "generate", formula, "--format", "json", "--out", out],
                          capture_output=True, text=True)
    return time.perf_counter() - start, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formulas", nargs="+", default=FORMULAS)
    parser.add_argument("--no-cold", action="store_true", help="only the warm figures")
    parser.add_argument("--search", action="append", default=[], metavar="KEY=VALUE",
                        help="a generate.search setting for the warm runs, e.g. short_steps=null (repeatable)")
    args = parser.parse_args()
    search = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.search)}
    rows = []
    with tempfile.TemporaryDirectory() as out, xtalml.load() as project:
        project.generate("NaCl", candidates=1)  # the cluster up and CHGNet loaded in its workers
        settings = {**dataclasses.asdict(project.search_settings), **search}
        for formula in args.formulas:
            start = time.perf_counter()
            found = project.generate(formula, search=search)
            warm = time.perf_counter() - start
            cold, _ = (None, None) if args.no_cold or search else cold_seconds(formula, out)
            best = found[0]
            rows.append({"formula": formula, "atoms": len(best.structure), "warm_s": round(warm, 1),
                         "cold_s": None if cold is None else round(cold, 1), "candidates": len(found),
                         "full": sum(c.info.get("relaxation") == "full" for c in found),
                         "best_sg": best.space_group_number, "best_source": best.source,
                         "best_prototype": best.prototype})
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    print(json.dumps({"median_warm_s": float(table["warm_s"].median()),
                      "median_cold_s": None if args.no_cold or search else float(table["cold_s"].median()),
                      "settings": {k: settings[k] for k in ("candidates", "steps", "short_steps",
                                                                      "short_max_atom_steps", "full_relaxations")}}))


if __name__ == "__main__":  # Dask's local worker processes re-import this file
    main()
