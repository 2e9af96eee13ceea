"""Space-group success of `xtalml generate` on CSPBench (or on validation formulas of our split), beside the
space-group model alone, per category and split by whether a source of ours holds the formula.

    python benchmarks/cspbench.py --csv CSPbenchmark_test_data.csv --per-category 1   # a quick look: 15 formulas
    python benchmarks/cspbench.py --csv CSPbenchmark_test_data.csv                    # all 180
    python benchmarks/cspbench.py --val 24                                              # 24 validation formulas

CSPBench (usccolumbia/cspbenchmark, MIT): data/CSPbenchmark_test_data.csv, 180 Materials Project structures in 15
categories. As its leaders report, templates of the target's own reduced formula are left out (no candidate is
`known`); a structure counts as found at k when one of the first k relaxed candidates has the target's space group
(spglib, symprec 0.1, CSPBench's "space group" metric). The model may have seen a formula our sources hold: both
parts are printed; every kept candidate goes to --out/candidates.csv (for benchmarks/rank_weights.py).
For each formula, where the right group was lost: not among the candidates' start groups, left
while relaxing, or ranked below the fifth place. Run from a project after `dvc repro`; writes per-formula rows to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import xtalml
from xtalml.predict import formula_estimates

TOP = (1, 5, 20)
PUBLISHED = {"PNcsp+": {"top5": 0.861}, "TCSP 2.0": {"top5": 0.839}, "TCSPV3": {"top1": 0.678, "top5": 0.856,
                                                                             "top20": 0.906}}


def source_formulas(root: Path) -> dict[str, set[str]]:
    """{source: reduced formulas it holds} of every parsed source of the project."""
    out = {}
    for path in sorted((root / "data" / "sources").glob("*/structures.parquet")):
        table = pd.read_parquet(path, columns=["reduced_formula"])
        out[path.parent.name] = set(table["reduced_formula"].dropna())
    return out


def cspbench_rows(csv: Path, per_category: int | None) -> pd.DataFrame:
    """formula, true space group and category of each CSPBench row (the first per_category of each category)."""
    table = pd.read_csv(csv)
    if per_category:
        table = table.groupby("category", sort=False).head(per_category)
    return pd.DataFrame({"formula": table["pretty_formula"], "sg_number": table["spacegroup"].astype(int),
                         "category": table["category"], "id": table["material_id"]}).reset_index(drop=True)


def validation_rows(root: Path, count: int, seed: int) -> pd.DataFrame:
    """count validation formulas of the primary source (ordered, at most 20 atoms), as the generate stage picks."""
    from xtalml.config import load_params
    from xtalml.structures.benchmark import benchmark_structures

    bench = load_params(root / "params.yaml")["generate"]["benchmark"]
    per_bin = [count // len(bench["atom_bins"])] * len(bench["atom_bins"])
    table, _ = benchmark_structures(root / "data/sources" / bench["source"], root / "data/split" /
                                    f"{bench['source']}.parquet", list(bench["atom_bins"]), per_bin, seed, "val")
    return pd.DataFrame({"formula": table["formula"], "sg_number": table["sg_number"].astype(int),
                         "category": "val " + table["atom_bin"].astype(str), "id": table["id"]})


def model_ranks(project, formulas: list[str], truth: list[int]) -> list[int | None]:
    """Rank (1 = first) of the true group among the space-group model's probabilities, None where it is no class."""
    estimates = formula_estimates(project.predictor, formulas)
    classes = [int(c) if str(c).isdigit() else -1 for c in estimates["space_group_classes"]]
    out = []
    for row, group in zip(estimates["space_group_proba"], truth):
        if group not in classes or not np.all(np.isfinite(row)):
            out.append(None)
            continue
        order = np.argsort(-row, kind="stable")
        out.append(int(np.flatnonzero(np.asarray(classes)[order] == group)[0]) + 1)
    return out


def score(rows: pd.DataFrame, result, ranks: list[int | None], held: dict[str, set[str]]) -> pd.DataFrame:
    """One row per formula: the model's rank of the true group, the first candidate rank in it, and where it was lost."""
    from pymatgen.core import Composition

    out = []
    for row, model_rank in zip(rows.itertuples(index=False), ranks):
        found = result.candidates.get(row.formula, [])
        relaxed = [c.space_group_number for c in found]
        started = [c.info["predicted_space_group"] for c in found]
        first = next((i + 1 for i, g in enumerate(relaxed) if g == row.sg_number), None)
        if first is not None and first <= 5:
            lost = ""
        elif row.sg_number not in started and first is None:
            lost = "not tried"
        elif first is None:
            lost = "left while relaxing"
        else:
            lost = "ranked below 5"
        reduced = Composition(row.formula).reduced_formula
        sources = sorted(name for name, formulas in held.items() if reduced in formulas)
        out.append({"id": row.id, "formula": row.formula, "category": row.category, "sg_number": row.sg_number,
                    "in_sources": bool(sources), "sources": ",".join(sources), "model_rank": model_rank,
                    "candidate_rank": first, "candidates": len(found), "lost": lost,
                    "known_used": any(c.info.get("known") for c in found),
                    "error": result.errors.get(row.formula, "")})
    return pd.DataFrame(out)


def candidate_rows(row, result) -> list[dict]:
    """Every kept candidate of one formula with what the ranking knows (benchmarks/rank_weights.py reranks them)."""
    out = []
    for c in result.candidates.get(row.formula, []):
        info = {k: v for k, v in c.info.items() if isinstance(v, (int, float, str, bool, type(None)))}
        out.append({"formula": row.formula, "category": row.category, "sg_number": row.sg_number, **info,
                    "space_group_number": c.space_group_number})
    return out


def success_table(per_formula: pd.DataFrame) -> pd.DataFrame:
    """Share of formulas whose true group is within the first k of the model and of the candidates, per group."""
    def figures(part: pd.DataFrame) -> dict:
        row = {"formulas": len(part)}
        for k in TOP:
            row[f"model_top{k}"] = float((part["model_rank"].fillna(10**6) <= k).mean())
            row[f"candidates_top{k}"] = float((part["candidate_rank"].fillna(10**6) <= k).mean())
        return row

    groups = [("all", per_formula), ("in our sources", per_formula[per_formula["in_sources"]]),
              ("not in our sources", per_formula[~per_formula["in_sources"]])]
    groups += [(category, part) for category, part in per_formula.groupby("category", sort=False)]
    return pd.DataFrame([{"part": name, **figures(part)} for name, part in groups if len(part)]).round(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, help="CSPBench's data/CSPbenchmark_test_data.csv")
    parser.add_argument("--per-category", type=int, default=None, help="only the first N formulas of each category")
    parser.add_argument("--val", type=int, default=None, help="N validation formulas of our split instead of CSPBench")
    parser.add_argument("--candidates", type=int, default=20, help="candidates per formula (top-20 needs 20)")
    parser.add_argument("--batch", type=int, default=4, help="formulas searched together (each keeps its own budget)")
    parser.add_argument("--resume", action="store_true", help="keep the formulas --out already holds, do the rest")
    parser.add_argument("--interleave", action="store_true", help="take the categories' formulas in turn")
    parser.add_argument("--project", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("/tmp/cspbench"))
    parser.add_argument("--search", action="append", default=[], metavar="KEY=VALUE",
                        help="a generate.search setting for this run, e.g. cover_groups=3 (repeatable)")
    args = parser.parse_args()
    search = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.search)}
    if (args.csv is None) == (args.val is None):
        parser.error("give --csv (CSPBench) or --val N (validation formulas)")
    start = time.perf_counter()
    with xtalml.load(args.project) as project:
        rows = (cspbench_rows(args.csv, args.per_category) if args.csv else
                validation_rows(project.root, args.val, seed=42))
        ranks = model_ranks(project, rows["formula"].tolist(), rows["sg_number"].tolist())
        held, done, kept = source_formulas(project.root), [], []
        args.out.mkdir(parents=True, exist_ok=True)
        formulas = list(dict.fromkeys(rows["formula"]))
        if args.resume and (args.out / "per_formula.csv").exists():  # a stopped run: go on after what it scored
            done = [pd.read_csv(args.out / "per_formula.csv")]
            kept = pd.read_csv(args.out / "candidates.csv").to_dict("records")
            formulas = [f for f in formulas if f not in set(done[0]["formula"])]
        if args.interleave:  # one formula of each category in turn: a run stopped early still covers every category
            position = {f: (i, c) for (c, f), i in zip(rows[["category", "formula"]].itertuples(index=False),
                                                         rows.groupby("category", sort=False).cumcount())}
            formulas.sort(key=lambda f: position[f])
        for first in range(0, len(formulas), args.batch):  # a batch at a time: a stopped run keeps what it scored
            batch = formulas[first:first + args.batch]
            result = project.generate_many(batch, args.candidates, search=search, exclude_own_formula=True)
            for formula in batch:
                mine = rows["formula"] == formula
                done.append(score(rows[mine], result, [r for r, m in zip(ranks, mine) if m], held))
                kept += candidate_rows(rows[mine].iloc[0], result)
                print(f"{formula}: {done[-1]['candidate_rank'].tolist()} (true group's rank among the candidates)",
                      flush=True)
            pd.concat(done).to_csv(args.out / "per_formula.csv", index=False)
            pd.DataFrame(kept).to_csv(args.out / "candidates.csv", index=False)
            print(f"{first + len(batch)} of {len(formulas)} formulas, {time.perf_counter() - start:.0f} s", flush=True)
        per_formula = pd.concat(done, ignore_index=True)
    seconds, searched = time.perf_counter() - start, len(formulas)  # this run's: a resumed run's earlier ones not
    table = success_table(per_formula)
    table.to_csv(args.out / "success.csv", index=False)
    print(table.to_string(index=False))
    print("where the true group was lost:", per_formula["lost"].replace("", "found in top 5").value_counts().to_dict())
    print(json.dumps({"formulas": len(per_formula), "search": search, "seconds": round(seconds), "searched_now": searched,
                      "seconds_per_formula": round(seconds / max(1, searched), 1), "known_candidates": int(per_formula["known_used"].sum()),
                      "errors": int((per_formula["error"].fillna("") != "").sum()), "published": PUBLISHED}))


if __name__ == "__main__":  # Dask's local worker processes re-import this file
    main()
