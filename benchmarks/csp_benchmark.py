"""The generate stage's CSP benchmark at another size, outside DVC: prints each arm's figures overall and by atoms.

    python benchmarks/csp_benchmark.py --per-bin 6 6 3 3 --out /tmp/csp_large

Reads the champions, the lattice model and params.yaml of a finished `dvc repro`; writes CIFs and tables under --out.
"""

import argparse
import json
import time
from pathlib import Path

import joblib

from xtalml.champions import registered_champions
from xtalml.config import load_params
from xtalml.predict import load_predictor
from xtalml.structures.csp import headline, run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-bin", type=int, nargs=4, default=[10, 10, 5, 5], help="formulas per atom bin (1-4, 5-8, 9-12, 13-20)")
    parser.add_argument("--part", default="test", choices=("test", "val"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/csp_benchmark"))
    args = parser.parse_args()
    params = load_params()
    params["generate"]["benchmark"] |= {"formulas_per_bin": args.per_bin, "part": args.part}
    predictor = load_predictor(Path("models"), registered_champions(("sg_from_composition",
                                                                     "volume_per_atom_from_composition")))
    start = time.perf_counter()
    source = Path("data/sources") / params["generate"]["benchmark"]["source"]
    _, per_formula, summary = run_benchmark(params, predictor, joblib.load("models/lattice/lattice.pkl"), args.out, source)
    seconds = time.perf_counter() - start
    per_formula.drop(columns=["curve"]).to_csv(args.out / "per_formula.csv", index=False)
    figures = headline(summary)
    print(json.dumps({"seconds": round(seconds), "per_bin": args.per_bin, "part": args.part, "arms": figures,
                      "by_atoms": {arm: summary[arm]["by_atoms"] for arm in figures}}, indent=1))


if __name__ == "__main__":  # Dask's local worker processes re-import this file
    main()
