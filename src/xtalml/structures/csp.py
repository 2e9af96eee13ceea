"""The generate stage's work: the four arms of the CSP benchmark on held-out structures, run on Dask, scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from xtalml.structures.benchmark import benchmark_structures, score_arm, summarise
from xtalml.structures.candidates import CandidateError
from xtalml.structures.search import (ARMS, SearchSettings, _safe, candidate_specs, dask_client, lattice_predictor,
                                      rank_candidates, run_specs, write_cif)
from xtalml.tasks import DataDirs, read_table, task_sources


def training_frequencies(task_cfg: Mapping[str, Any], data: DataDirs = DataDirs()) -> dict[int, float]:
    """Space-group frequencies of the space-group task's train rows: the random-search prior."""
    table = read_table(task_sources(task_cfg), ["id", "sg_number"], data)
    counts = table.loc[(table["part"] == "train") & table["sg_number"].notna(), "sg_number"].astype(int).value_counts()
    return {int(g): float(n / counts.sum()) for g, n in counts.items()}


def run_benchmark(params: Mapping[str, Any], predictor, lattice_bundle: Mapping[str, Any] | None, out_dir: Path,
                  source_dir: Path, data: DataDirs = DataDirs(),
                  client=None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(candidates, per-formula scores, summary per arm) of the benchmark on the structures of source_dir (the
    download and parse stages' folder of generate.benchmark.source); CIFs of the kept candidates under
    out_dir/cifs/<arm>/<formula>/."""
    from xtalml.predict import formula_estimates

    cfg = params["generate"]
    bench = cfg["benchmark"]
    settings = SearchSettings.from_params({**cfg["search"], **(bench.get("search") or {})})
    source = bench["source"]
    table, truths = benchmark_structures(Path(source_dir), data.split / f"{source}.parquet",
                                         list(bench["atom_bins"]), list(bench["formulas_per_bin"]), int(bench["seed"]),
                                         bench.get("part", "test"))
    if table.empty:
        raise ValueError(f"generate: no ordered test structure of {source} fits the benchmark's atom bins")
    formulas = table["formula"].tolist()
    estimates = formula_estimates(predictor, formulas)
    frequencies = training_frequencies(params["tasks"][cfg["space_group_task"]], data)
    lattice_rows = lattice_predictor(lattice_bundle, estimates["features"])
    specs, refused = [], []
    for i, row in table.iterrows():
        for arm in cfg["arms"]:
            try:
                specs += candidate_specs(row["formula"], arm, settings,
                                         volume_per_atom=float(estimates["volume_per_atom"][i]),
                                         proba=estimates["space_group_proba"][i], classes=estimates["space_group_classes"],
                                         frequencies=frequencies, true_group=int(row["sg_number"]), lattice_of=lattice_rows(i))
            except CandidateError as exc:
                refused.append({"input": row["formula"], "arm": arm, "error": str(exc)})
    if client is None:
        with dask_client(cfg.get("scheduler"), cfg.get("n_workers")) as own:
            results = run_specs(own, specs, settings.formula_time_limit_s)
    else:
        results = run_specs(client, specs, settings.formula_time_limit_s)
    scored, kept_rows = [], []
    for i, row in table.iterrows():
        for arm in cfg["arms"]:
            mine = [r for r in results if r["input"] == row["formula"] and r["arm"] == arm]
            ranked = rank_candidates(mine)
            score = score_arm(ranked, mine, truths[i], int(row["sg_number"]), float(row["volume_per_atom"]),
                              settings.candidates)
            scored.append({**row.to_dict(), "arm": arm, **score})
            for c in ranked:
                path = write_cif(c, out_dir / "cifs" / arm / _safe(row["formula"]))
                kept_rows.append({"input": row["formula"], "arm": arm, "rank": c["rank"], "group": c["group"],
                                  "p_group": c["p_group"], "units": c["units"],
                                  "space_group_number": c["space_group_number"], "energy_per_atom": c["energy_per_atom"],
                                  "volume_per_atom": c["volume_per_atom"], "duplicates": c["duplicates"],
                                  "seconds": c["seconds"], "cif": str(path)})
    per_formula = pd.DataFrame(scored)
    candidates = pd.DataFrame(kept_rows)
    summary = summarise(per_formula)
    summary["refused"] = refused
    summary["failed_candidates"] = {arm: int(sum(1 for r in results if r["arm"] == arm and r.get("structure") is None))
                                    for arm in cfg["arms"]}
    return candidates, per_formula, summary


HEADLINE_KEYS = ("formulas", "top1_default", "top5_default", "any_default", "top1_cdvae", "top5_cdvae", "any_cdvae",
                 "top5_cdvae_up_to_8_atoms", "top1_space_group", "matched_volume_error", "candidate_seconds_per_formula")
# what metrics/generate.json keeps per arm for `dvc exp show`; MLflow gets every HEADLINE_KEYS figure, summary.json all
METRIC_KEYS = ("formulas", "top1_cdvae", "top5_cdvae", "any_cdvae", "top5_cdvae_up_to_8_atoms", "top1_space_group")


def headline(summary: Mapping[str, Any], keys: tuple[str, ...] = HEADLINE_KEYS) -> dict[str, Any]:
    """Per arm: match rates (both tolerances), space-group hits, volume error, seconds (or the given keys)."""
    return {arm: {k: summary[arm][k] for k in keys} for arm in ARMS if arm in summary}


def write_outputs(candidates: pd.DataFrame, per_formula: pd.DataFrame, summary: Mapping[str, Any], out_dir: Path,
                  metrics_path: Path, plots_dir: Path) -> None:
    """data/generate (tables, summary, CIFs), metrics/generate.json, plots/generate/match_curve.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    candidates.to_parquet(out_dir / "candidates.parquet", index=False)
    per_formula.drop(columns=["curve"]).to_parquet(out_dir / "per_formula.parquet", index=False)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(headline(summary, METRIC_KEYS), indent=2) + "\n")
    plots_dir.mkdir(parents=True, exist_ok=True)
    arms = [arm for arm in ARMS if arm in summary]
    curve = pd.DataFrame({arm: summary[arm]["curve_any_cdvae"] for arm in arms})  # one column per arm: one line each
    curve.insert(0, "candidates", range(1, len(curve) + 1))
    curve.to_csv(plots_dir / "match_curve.csv", index=False)
