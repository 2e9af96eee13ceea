"""Prediction time: cold start of `xtalml predict NaCl`, then 10,000 formulas through `predict_formulas`.

Usage: python benchmarks/predict_speed.py [--n 10000] [--models models] [--coverage 0.9] [--cold-runs 3]
Cold start: the command run --cold-runs times in fresh processes with the default (champion) models; prints the
median wall time and the largest max RSS. Batch: the test-split formulas of sg_from_composition's table, repeated
if fewer than --n; prints the model loading time, then the prediction time with and without conformal sets.
Run `dvc repro` first. The server figures come from benchmarks/serve_load.py.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from xtalml.config import load_params
from xtalml.predict import load_predictor, predict_formulas, serving_models
from xtalml.tasks import read_table, task_sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--coverage", type=float, default=0.9)
    parser.add_argument("--cold-runs", type=int, default=3)
    args = parser.parse_args()

    walls, peaks = [], []
    for _ in range(args.cold_runs):
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "xtalml", "predict", "NaCl", "--models", str(args.models)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        walls.append(time.perf_counter() - started)
        peaks.append(usage.ru_maxrss / 1024)
        if status != 0:
            raise SystemExit(f"xtalml predict NaCl failed: {child.stderr.read().decode()[-2000:]}")
    print(f"cold start, xtalml predict NaCl with the champions: median {statistics.median(walls):.2f} s wall "
          f"({', '.join(f'{w:.2f}' for w in walls)}), max RSS {max(peaks):.0f} MB")

    table = read_table(task_sources(load_params()["tasks"]["sg_from_composition"]), ["id", "formula"])
    test = table.query("part == 'test'")["formula"].drop_duplicates().tolist()
    formulas = (test * (args.n // len(test) + 1))[: args.n]
    started = time.perf_counter()
    predictor = load_predictor(args.models, serving_models(args.models) or None, serving=True)  # as the command loads
    loaded = time.perf_counter() - started
    names = ", ".join(f"{task}: {bundle['name']}" for task, bundle in predictor.bundles.items())
    print(f"models loaded in {loaded:.2f} s ({names})")
    for coverage in (None, args.coverage):
        started = time.perf_counter()
        answers, errors = predict_formulas(predictor, formulas, coverage)
        seconds = time.perf_counter() - started
        label = f"with {coverage:g} conformal sets" if coverage else "top-3 lattices, top-5 groups, volume"
        print(f"{len(formulas):,} formulas ({len(set(formulas)):,} distinct), {label}: {seconds:.2f} s, "
              f"{len(formulas) / seconds:,.0f} formulas/s, {len(errors)} rejected")
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
