"""Retrain train stages in fresh processes under other CPU settings and compare their metrics with metrics/<task>/<model>.json.

Usage: python benchmarks/determinism.py [--runs volume_from_geometry/tabnet,...] [--settings pinned,avx512,avx2_numpy]
Run it where `dvc repro` ran (it reads data/features and data/split, writes nothing there). Each setting is an
environment a machine could have:
  pinned      this project's default (MKL_CBWR=AVX2, ATEN_CPU_CAPABILITY=avx2), in a new process: run-to-run
  avx512      MKL_CBWR=AUTO, ATEN_CPU_CAPABILITY=avx512: torch's kernels as an unpinned AVX-512 machine picks them
  avx2_numpy  pinned torch, numpy without its AVX-512 kernels and OpenBLAS on Haswell kernels: an AVX2-only CPU
Prints, per run and headline metric, the committed value and each setting's difference from it.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = {
    "pinned": {},
    "avx512": {"MKL_CBWR": "AUTO", "ATEN_CPU_CAPABILITY": "avx512"},
    "avx2_numpy": {"NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR",
                   "OPENBLAS_CORETYPE": "Haswell"},
}
DEFAULT_RUNS = ("volume_from_geometry/tabnet,volume_from_geometry/wide_deep,volume_per_atom_from_composition/mlp_regressor,"
                "volume_per_atom_from_composition/lightgbm_regressor,sg_from_geometry/mlp_classifier")
CHILD = """
import json, sys
from pathlib import Path
from xtalml.config import load_params
from xtalml.evaluation.metrics import headline_metrics
from xtalml.models.registry import fix_thread_counts
from xtalml.tasks import DataDirs
from xtalml.training import run_training
task, model, out, root = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
params = load_params(root / "params.yaml")
fix_thread_counts([model], params["models"], params["train"].get("torch_threads", 1))
result = run_training(task, params["tasks"][task], model, params["models"][model], params["train"]["seed"],
                      {k: out / name for k, name in (("metrics", "m.json"), ("evaluation", "e.json"),
                       ("predictions", "p.parquet"), ("model", "m.pkl"), ("plots", "plots"))}, DataDirs.under(root),
                      tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
print(json.dumps(headline_metrics(result, params["tasks"][task]["kind"])))
"""


def flat(d: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        out |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", default=DEFAULT_RUNS)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    args = parser.parse_args()
    settings = args.settings.split(",")
    for run in args.runs.split(","):
        task, model = run.split("/")
        committed = flat(json.loads(Path(f"metrics/{task}/{model}.json").read_text()))
        found = {}
        for name in settings:
            with tempfile.TemporaryDirectory() as tmp:
                env = {**os.environ, **SETTINGS[name]}
                # in the temporary folder: MLflow's artifacts (./mlruns) land there, not in the project
                done = subprocess.run([sys.executable, "-c", CHILD, task, model, tmp, str(Path.cwd())], env=env,
                                      capture_output=True, text=True, cwd=tmp)
                if done.returncode != 0:
                    raise SystemExit(f"{run} under {name} failed:\n{done.stderr[-3000:]}")
                found[name] = flat(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{run}")
        for key, value in committed.items():
            if key.startswith("baselines."):
                continue
            diffs = "  ".join(f"{name} {found[name][key] - value:+.2e}" for name in settings)
            print(f"  {key:40s} committed {value:.6g}  {diffs}")


if __name__ == "__main__":
    main()
