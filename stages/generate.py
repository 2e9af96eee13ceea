"""Stage generate: the CSP benchmark. Held-out ordered AMCSD structures searched by four arms at the same candidate
budget (ours, random search, the true group as oracle, ours unrelaxed as CRYSPNet ranks), relaxed with CHGNet on Dask."""

import argparse
import time
from pathlib import Path

import joblib

from xtalml.champions import registered_champions
from xtalml.config import load_params, section
from xtalml.predict import load_predictor
from xtalml.structures.csp import headline, run_benchmark, write_outputs
from xtalml.tasks import DataDirs
from xtalml.tracking import log_results, training_run

SEARCH_TASKS = ("sg_from_composition", "volume_per_atom_from_composition")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--register", type=Path, required=True, help="metrics/register.json: the champions that search")
    parser.add_argument("--models", type=Path, nargs="+", required=True, help=f"models/<task> of {', '.join(SEARCH_TASKS)}")
    parser.add_argument("--lattice", type=Path, required=True, help="the lattice stage's folder (lattice.pkl)")
    parser.add_argument("--source", type=Path, required=True, help="data/sources/<generate.benchmark.source>")
    parser.add_argument("--features", type=Path, required=True, help="the featurize stages' folder")
    parser.add_argument("--split", type=Path, required=True, help="the split stage's folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plots", type=Path, required=True)
    args = parser.parse_args()

    params = load_params(args.params)
    cfg = section(params, "generate", ["search", "benchmark", "arms", "space_group_task"])
    if {p.name for p in args.models} != set(SEARCH_TASKS) or len({p.parent for p in args.models}) != 1:
        raise SystemExit(f"generate: --models takes models/<task> of {', '.join(SEARCH_TASKS)}, one folder each")
    choice = registered_champions(SEARCH_TASKS, args.register)
    predictor = load_predictor(args.models[0].parent, choice, calibrations=False, lattice=False)
    lattice_file = args.lattice / "lattice.pkl"
    lattice = joblib.load(lattice_file) if lattice_file.exists() else None
    start = time.perf_counter()
    candidates, per_formula, summary = run_benchmark(params, predictor, lattice, args.out, args.source,
                                                     DataDirs(args.features, args.split))
    summary["seconds"] = time.perf_counter() - start
    summary["models"] = choice
    write_outputs(candidates, per_formula, summary, args.out, args.metrics, args.plots)
    for arm, figures in headline(summary).items():
        with training_run("crystal_structure_prediction", arm):
            log_results({**cfg["search"], **{f"benchmark_{k}": v for k, v in cfg["benchmark"].items()}, "arm": arm,
                         **{f"model_{t}": m for t, m in choice.items()}},
                        {k: v for k, v in figures.items() if v is not None}, [], {"arm": arm, "task": "csp"},
                        [args.out / "cifs" / arm])
        print(f"generate {arm}: top-1 {figures['top1_cdvae']:.3f}, top-5 {figures['top5_cdvae']:.3f}, any "
              f"{figures['any_cdvae']:.3f} (CDVAE tolerances; default {figures['top5_default']:.3f} top-5), top-ranked "
              f"group right {figures['top1_space_group']:.3f}, {figures['candidate_seconds_per_formula']:.1f} s/formula")
    print(f"generate: {summary[next(iter(headline(summary)))]['formulas']} formulas in {summary['seconds']:.0f} s")


if __name__ == "__main__":  # Dask's local worker processes re-import this file
    main()
