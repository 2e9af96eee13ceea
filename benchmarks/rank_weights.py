"""The ranking's weights chosen on validation formulas: the kept candidates of a `benchmarks/cspbench.py --val N` run
reranked by every combination of weights (energy per atom - score_weight x template score - group_weight x log p(the
group it relaxed to) + volume_weight x |log(relaxed / predicted volume)|), space-group success at top 1 and top 5 for each.

    python benchmarks/cspbench.py --val 40 --out /tmp/cspbench-val
    python benchmarks/rank_weights.py /tmp/cspbench-val/candidates.csv

Which candidates went on to the full relaxation was decided by the run's own weights; this reranks what came back.
Never run it on CSPBench's candidates: the public benchmark is for reporting.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from xtalml.config import load_params
from xtalml.structures.search import SearchSettings, rank_weights, ranking_value

GRID = {"score_weight": [0.0, 0.05, 0.1, 0.2, 0.5], "group_weight": [0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0],
        "volume_weight": [0.0, 0.1, 0.3]}


def success(candidates: pd.DataFrame, weights: dict[str, float], top: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Share of formulas whose true group is among the first k candidates when ranked with these weights."""
    hits = {k: [] for k in top}
    for _, mine in candidates.groupby("formula", sort=False):
        rows = mine.to_dict("records")
        order = sorted(rows, key=lambda r: (ranking_value(r, weights["score_weight"], group_weight=weights["group_weight"],
                                                          volume_weight=weights["volume_weight"]), r["rank"]))
        groups = [r["space_group_number"] for r in order]
        for k in top:
            hits[k].append(int(rows[0]["sg_number"]) in groups[:k])
    return {f"top{k}": sum(v) / len(v) for k, v in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", type=Path, help="candidates.csv of a cspbench.py --val run")
    parser.add_argument("--show", type=int, default=15, help="print the best N combinations")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the project's params (its defaults)")
    args = parser.parse_args()
    candidates = pd.read_csv(args.candidates)
    candidates = candidates[candidates["energy_per_atom"].notna()]
    rows = []
    for values in itertools.product(*GRID.values()):
        weights = dict(zip(GRID, values))
        rows.append({**weights, **success(candidates, weights)})
    table = pd.DataFrame(rows).sort_values(["top1", "top5"], ascending=False, kind="stable")
    print(f"{candidates['formula'].nunique()} formulas, {len(candidates)} candidates")
    print(table.head(args.show).round(3).to_string(index=False))
    defaults = rank_weights(SearchSettings.from_params(load_params(args.params)["generate"]["search"]))
    as_run = table[np.logical_and.reduce([np.isclose(table[k], v) for k, v in defaults.items()])]
    print(f"the defaults ({', '.join(f'{k} {v:g}' for k, v in defaults.items())}):",
          as_run[["top1", "top5"]].round(3).to_dict("records"))


if __name__ == "__main__":
    main()
