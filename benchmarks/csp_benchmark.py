"""The generate stage's CSP benchmark at another size and with more arms, outside DVC: prints each arm's figures.

    python benchmarks/csp_benchmark.py --per-bin 30 30 30 30 --out /tmp/csp_large

Arms by default: the stage's (ours, random, oracle) and two that say where ours gains: templates_only (templates
ranked without the space-group model) and pyxtal_prior (PyXtal in the model's groups: the search before templates).
Reads the champions, the lattice model, the template library and params.yaml of a finished `dvc repro`; writes CIFs
and tables under --out.
"""

import argparse
import json
import time
from functools import partial
from pathlib import Path

import joblib
import pandas as pd

from xtalml.champions import registered_champions
from xtalml.config import load_params
from xtalml.predict import formula_estimates, load_predictor
from xtalml.structures.csp import headline, run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-bin", type=int, nargs=4, default=[30, 30, 30, 30], help="formulas per atom bin (1-4, 5-8, 9-12, 13-20)")
    parser.add_argument("--part", default="test", choices=("test", "val"))
    parser.add_argument("--arms", default="ours,random,oracle,templates_only,pyxtal_prior")
    parser.add_argument("--out", type=Path, default=Path("/tmp/csp_benchmark"))
    args = parser.parse_args()
    params = load_params()
    params["generate"]["benchmark"] |= {"formulas_per_bin": args.per_bin, "part": args.part}
    params["generate"]["arms"] = args.arms.split(",")
    predictor = load_predictor(Path("models"), registered_champions(("sg_from_composition",
                                                                     "volume_per_atom_from_composition")))
    start = time.perf_counter()
    source = Path("data/sources") / params["generate"]["benchmark"]["source"]
    _, per_formula, summary = run_benchmark(params, partial(formula_estimates, predictor),
                                            joblib.load("models/lattice/lattice.pkl"), args.out, source,
                                            library=pd.read_parquet("data/templates/library.parquet"))
    seconds = time.perf_counter() - start
    per_formula.drop(columns=["curve"]).to_csv(args.out / "per_formula.csv", index=False)
    figures = headline(summary)
    print(json.dumps({"seconds": round(seconds), "per_bin": args.per_bin, "part": args.part, "arms": figures,
                      "by_atoms": {arm: summary[arm]["by_atoms"] for arm in figures}}, indent=1))


if __name__ == "__main__":  # Dask's local worker processes re-import this file
    main()
