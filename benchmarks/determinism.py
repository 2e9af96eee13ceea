"""Retrain train stages in fresh processes as other CPUs would run them, and over seeds; compare with metrics/.

Usage:
  python benchmarks/determinism.py [--runs TASK/MODEL,...] [--settings avx2_cpu,avx512_cpu,cpu_defaults] [--native]
  python benchmarks/determinism.py --seeds 42,43,44 [--runs ...] [--json seed_spread.json]
  python benchmarks/determinism.py --chgnet [--settings ...] [--native]
Run it where `dvc repro` ran (it reads data/features and data/split and writes nothing there). --runs defaults to
every train stage whose model runs on torch. Each setting is what another CPU's libraries would pick:
  avx2_cpu      MKL, oneDNN and ATen at AVX2, numpy without AVX-512 and OpenBLAS on Haswell kernels: an AVX2-only CPU
  avx512_cpu    MKL, oneDNN, ATen and OpenBLAS at AVX-512 (where this CPU has it): an AVX-512 CPU
  cpu_defaults  none of these variables set: what this CPU picks by itself
xtalml.numerics overwrites ATen's, oneDNN's, OpenBLAS's and numpy's variables and sets MKL_CBWR=COMPATIBLE (that is
the pin); MKL's instruction set is not overwritten and is what the pinned runs test beside the CPU's own choices.
--native runs the same settings with the pins off (XTALML_NUMERICS=native): the control, showing what each setting
changes without them.
Prints, per run and headline metric, the committed value and each setting's difference from it; with --seeds, each
seed's test and validation figures, their mean and spread (max - min), the train seed's read from metrics/; with
--chgnet, the energy per atom of three CHGNet relaxations (one thread, 15 FIRE steps, fmax 0.15, as the benchmark
ran them at c79546e), per setting, and its difference from the first setting's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ISA_VARIABLES = ("MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "NPY_DISABLE_CPU_FEATURES",
                 "OPENBLAS_CORETYPE", "MKL_CBWR", "XTALML_NUMERICS")
SETTINGS = {
    "avx2_cpu": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                 "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Haswell"},
    "avx512_cpu": {"MKL_ENABLE_INSTRUCTIONS": "AVX512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
                   "ATEN_CPU_CAPABILITY": "avx512", "OPENBLAS_CORETYPE": "SkylakeX"},
    "cpu_defaults": {},
}
CHILD = """
import json, sys
from pathlib import Path
from xtalml.config import load_params
from xtalml.evaluation.metrics import headline_metrics
from xtalml.models.registry import fix_thread_counts
from xtalml.numerics import torch_settings
from xtalml.tasks import DataDirs
from xtalml.training import run_training
task, model, seed, out, root = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])
params = load_params(root / "params.yaml")
fix_thread_counts([model], params["models"], params["train"].get("torch_threads", 1))
result = run_training(task, params["tasks"][task], model, params["models"][model], seed,
                      {k: out / name for k, name in (("metrics", "m.json"), ("evaluation", "e.json"),
                       ("predictions", "p.parquet"), ("model", "m.pkl"), ("plots", "plots"))}, DataDirs.under(root),
                      tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
print(json.dumps({"metrics": headline_metrics(result, params["tasks"][task]["kind"]), "torch": torch_settings()}))
"""

RELAXATIONS = """
import json
from pymatgen.core import Lattice, Structure
from xtalml.numerics import torch_settings
from xtalml.structures.relax import random_structure, relax
structures = {
    "MgAl2O4 spinel (primitive)": Structure.from_spacegroup(227, Lattice.cubic(8.3), ["Mg", "Al", "O"],
        [[0.125] * 3, [0.5] * 3, [0.26] * 3]).get_primitive_structure(),
    "NaCl rock salt, strained": Structure.from_spacegroup(225, Lattice.cubic(6.0), ["Na", "Cl"], [[0] * 3, [0.5] * 3]),
    "ZnO PyXtal P6_3mc (seed 7)": random_structure(186, ["Zn", "O"], [2, 2], 4 * 11.0, None, 7),
}
energies = {name: relax(s, fmax=0.15, steps=15, time_limit_s=600)[1] for name, s in structures.items()}
print(json.dumps({"metrics": energies, "torch": torch_settings()}))
"""


def flat(d: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        out |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def torch_runs() -> list[str]:
    """Every train stage (task/model of params.yaml's train.matrix) whose model runs on torch."""
    sys.path.insert(0, str(Path("src").resolve()))
    from xtalml.config import load_params
    from xtalml.models.registry import uses_torch

    params = load_params(Path("params.yaml"))
    return [f"{task}/{model}" for group in params["train"]["matrix"].values() for task in group["task"]
            for model in group["model"] if uses_torch(model, params["models"][model])]


def in_fresh_process(script: str, args: list[str], env_changes: dict[str, str], native: bool) -> dict:
    """Run a child script under a setting: its metrics (flat) and torch's settings, from its last line."""
    env = {k: v for k, v in os.environ.items() if k not in ISA_VARIABLES}
    env |= env_changes | ({"XTALML_NUMERICS": "native"} if native else {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path("src").resolve()), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:  # MLflow's artifacts (./mlruns) land there, not in the project
        done = subprocess.run([sys.executable, "-c", script, *args, tmp, str(Path.cwd())], env=env,
                              capture_output=True, text=True, cwd=tmp)
    if done.returncode != 0:
        raise SystemExit(f"{args} ({env_changes}) failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {"metrics": flat(found["metrics"]), "torch": found["torch"]}


def retrain(task: str, model: str, seed: int, env_changes: dict[str, str], native: bool) -> dict:
    """Headline metrics and torch's settings of one retraining in a fresh process."""
    return in_fresh_process(CHILD, [task, model, str(seed)], env_changes, native)


def compare_relaxations(settings: list[str], native: bool) -> None:
    found = {name: in_fresh_process(RELAXATIONS, [], SETTINGS[name], native) for name in settings}
    first = found[settings[0]]["metrics"]
    print("CHGNet relaxations" + "".join(f"\n  {name}: torch {found[name]['torch']}" for name in settings))
    for key, value in first.items():
        diffs = "  ".join(f"{name} {found[name]['metrics'][key] - value:+.2e}" for name in settings[1:])
        print(f"  {key:32s} {settings[0]} {value:.10f} eV/atom  {diffs}", flush=True)


def compare_settings(runs: list[str], settings: list[str], native: bool, seed: int) -> None:
    for run in runs:
        task, model = run.split("/")
        committed = flat(json.loads(Path(f"metrics/{task}/{model}.json").read_text()))
        found = {name: retrain(task, model, seed, SETTINGS[name], native) for name in settings}
        print(run + "".join(f"\n  {name}: torch {found[name]['torch']}" for name in settings))
        for key, value in committed.items():
            if key.startswith("baselines."):
                continue
            diffs = "  ".join(f"{name} {found[name]['metrics'][key] - value:+.2e}" for name in settings)
            print(f"  {key:40s} committed {value:.6g}  {diffs}", flush=True)


def seed_spread(runs: list[str], seeds: list[int], train_seed: int, json_path: str | None) -> None:
    from xtalml.studies.seed_spread import spread_table

    table = {}
    for run in runs:
        task, model = run.split("/")
        per_seed = {seed: retrain(task, model, seed, {}, False)["metrics"] for seed in seeds if seed != train_seed}
        if train_seed in seeds:  # the committed run is that seed's (the CPU settings above check it reproduces)
            per_seed[train_seed] = flat(json.loads(Path(f"metrics/{task}/{model}.json").read_text()))
        table[run] = spread_table(per_seed)
        print(run)
        for key, row in table[run].items():
            print(f"  {key:28s} mean {row['mean']:.6g}  spread {row['spread']:.3g}  std {row['std']:.3g}  "
                  + "  ".join(f"{s}: {v:.6g}" for s, v in row["per_seed"].items()), flush=True)
    if json_path:
        Path(json_path).write_text(json.dumps(table, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", help="TASK/MODEL,... (default: every torch train stage)")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--native", action="store_true", help="the control: the same settings without the pins")
    parser.add_argument("--seeds", help="SEED,...: the seed spread of each run instead of the CPU settings")
    parser.add_argument("--json", help="with --seeds: also write the table to this file")
    parser.add_argument("--chgnet", action="store_true", help="CHGNet relaxations under the settings instead")
    args = parser.parse_args()
    if args.chgnet:
        compare_relaxations(args.settings.split(","), args.native)
        return
    runs = args.runs.split(",") if args.runs else torch_runs()
    sys.path.insert(0, str(Path("src").resolve()))
    from xtalml.config import load_params

    train_seed = int(load_params(Path("params.yaml"))["train"]["seed"])
    if args.seeds:
        seed_spread(runs, [int(s) for s in args.seeds.split(",")], train_seed, args.json)
    else:
        compare_settings(runs, args.settings.split(","), args.native, train_seed)


if __name__ == "__main__":
    main()
