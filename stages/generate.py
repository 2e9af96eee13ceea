"""Stage generate: the CSP benchmark. Held-out ordered AMCSD structures searched by four arms at the same candidate
budget (ours, random search, the true group as oracle, ours unrelaxed as CRYSPNet ranks), relaxed with CHGNet on Dask."""

import argparse
import time
from pathlib import Path

import joblib

from xtalml.config import load_params, section
from xtalml.predict import champion_models, load_predictor
from xtalml.structures.csp import headline, run_benchmark, write_outputs
from xtalml.tracking import log_results, training_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--models", default="models")
    parser.add_argument("--lattice", default="models/lattice/lattice.pkl")
    parser.add_argument("--out", default="data/generate")
    parser.add_argument("--metrics", default="metrics/generate.json")
    parser.add_argument("--plots", default="plots/generate")
    args = parser.parse_args()

    params = load_params(args.params)
    cfg = section(params, "generate", ["search", "benchmark", "arms", "space_group_task"])
    tasks = ("sg_from_composition", "volume_per_atom_from_composition")
    choice = {t: m for t, m in champion_models().items() if t in tasks}
    predictor = load_predictor(Path(args.models), choice)
    lattice = joblib.load(args.lattice) if Path(args.lattice).exists() else None
    start = time.perf_counter()
    out = Path(args.out)
    candidates, per_formula, summary = run_benchmark(params, predictor, lattice, out)
    summary["seconds"] = time.perf_counter() - start
    summary["models"] = choice
    write_outputs(candidates, per_formula, summary, out, Path(args.metrics), Path(args.plots))
    for arm, figures in headline(summary).items():
        with training_run("crystal_structure_prediction", arm):
            log_results({**cfg["search"], **{f"benchmark_{k}": v for k, v in cfg["benchmark"].items()}, "arm": arm,
                         **{f"model_{t}": m for t, m in choice.items()}},
                        {k: v for k, v in figures.items() if v is not None}, [], {"arm": arm, "task": "csp"},
                        [out / "cifs" / arm])
        print(f"generate {arm}: top-1 {figures['top1_cdvae']:.3f}, top-5 {figures['top5_cdvae']:.3f}, any "
              f"{figures['any_cdvae']:.3f} (CDVAE tolerances; default {figures['top5_default']:.3f} top-5), top-ranked "
              f"group right {figures['top1_space_group']:.3f}, {figures['candidate_seconds_per_formula']:.1f} s/formula")
    print(f"generate: {summary[next(iter(headline(summary)))]['formulas']} formulas in {summary['seconds']:.0f} s")


if __name__ == "__main__":  # Dask's local worker processes re-import this file
    main()
