"""The rediscovery benchmark of the discover stage on more held-out systems than the stage runs, printed as a table.

    python benchmarks/discover_benchmark.py --systems 20                  # 20 held-out systems, every arm
    python benchmarks/discover_benchmark.py --systems 20 --set compositions=8 --set search.candidates=6

Runs stages/discover.py itself (the same code, the project's models, library and references) with
discover.benchmark.systems (and any --set of the discover section) changed in a copy of params.yaml, its outputs in
--out, its MLflow runs in a store of their own (--out/mlflow.db): the project's outputs and runs are untouched.
Run from a project after `dvc repro`. Prints each arm's figures and the existence ranking of the systems' compositions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml


def changed(params: dict, settings: list[str]) -> dict:
    """params with discover.<key>=<value> of each setting (dotted keys reach into nested sections)."""
    for setting in settings:
        key, _, value = setting.partition("=")
        node = params["discover"]
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", type=int, default=20, help="held-out systems (default 20)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a discover setting to change")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/discover"))
    parser.add_argument("--project", type=Path, default=Path("."))
    args = parser.parse_args()

    root = args.project.resolve()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["discover"]["benchmark"]["systems"] = args.systems
    params = changed(params, args.set)
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    stage = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["discover"]["cmd"].split()
    stage = [str(out / "data") if t == "data/discover" else str(out / "metrics.json") if t == "metrics/discover.json"
             else t for t in stage]
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{out / 'mlflow.db'}")
    started = time.perf_counter()
    subprocess.run([sys.executable, *stage[1:], "--params", str(out / "params.yaml")], cwd=root, env=env, check=True)
    seconds = time.perf_counter() - started
    summary = json.loads((out / "data" / "summary.json").read_text())
    arms = pd.DataFrame(summary["arms"]).T
    pd.set_option("display.width", 200)
    print(f"\n{len(summary['systems'])} held-out systems in {seconds:.0f} s; dropped: {summary['dropped_systems']}; "
          f"library rows left out: {summary['library_rows_dropped']}")
    print(arms.to_string(float_format=lambda v: f"{v:.3f}"))
    print("\nexistence ranking of the systems' compositions:")
    print(pd.DataFrame(summary["existence_ranking"]).T.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
