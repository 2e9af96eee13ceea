"""The generate stage's work: the arms of the CSP benchmark on held-out structures, run on Dask, scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from xtalml.structures.benchmark import benchmark_structures, score_arm, summarise
from xtalml.structures.candidates import CandidateError
from xtalml.structures.search import (ARMS, SearchSettings, _safe, candidate_specs, dask_client, group_probabilities,
                                      lattice_predictor, mapping_options, rank_candidates, rank_weights, run_specs,
                                      with_relaxed_group_probability, write_cif)
from xtalml.tasks import DataDirs, read_table, task_sources


def training_frequencies(task_cfg: Mapping[str, Any], data: DataDirs = DataDirs()) -> dict[int, float]:
    """Space-group frequencies of the space-group task's train rows: the random-search prior."""
    table = read_table(task_sources(task_cfg), ["id", "sg_number"], data)
    counts = table.loc[(table["part"] == "train") & table["sg_number"].notna(), "sg_number"].astype(int).value_counts()
    return {int(g): float(n / counts.sum()) for g, n in counts.items()}


def truth_spec(formula: str, structure, settings: SearchSettings) -> dict[str, Any]:
    """A benchmark's true structure relaxed as every candidate is (its formation energy is the reference the matched
    candidates' are set beside)."""
    return {"input": formula, "arm": "truth", "index": 0, "source": "truth", "group": None, "units": None,
            "p_group": 0.0, "score": 0.0, "template_id": None, "prototype": None, "member": None, "known": True,
            "template": json.dumps(structure.as_dict()), "mapping": {}, "as_given": True, "species": [], "counts": [],
            "volume_per_atom": None, "cell": None, "sites": None, "seed": 0, "relax": True, "fmax": settings.fmax,
            "steps": settings.steps, "max_atom_steps": settings.max_atom_steps,
            "time_limit_s": settings.candidate_time_limit_s, "fix_symmetry": False}


def run_benchmark(params: Mapping[str, Any], estimate: Callable[[list[str]], Mapping[str, Any]],
                  lattice_bundle: Mapping[str, Any] | None, out_dir: Path,
                  source_dir: Path, data: DataDirs = DataDirs(), library: pd.DataFrame | None = None,
                  references: Mapping[str, Mapping[str, Any]] | None = None,
                  client=None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(candidates, per-formula scores, summary per arm) of the benchmark on the structures of source_dir (the
    download and parse stages' folder of generate.benchmark.source), templates from `library` but never one of the
    target's own reduced formula; each kept candidate's formation energy against `references`, and the matched
    ones' beside the true structure's (relaxed the same way); CIFs of the kept candidates under
    out_dir/cifs/<arm>/<formula>/. estimate(formulas) gives the models' space-group probabilities, volumes per atom
    and features of the formulas (xtalml.predict.formula_estimates of a loaded predictor)."""
    from xtalml.structures.references import formation_energy
    from xtalml.structures.templates import template_options

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
    estimates = estimate(formulas)
    frequencies = training_frequencies(params["tasks"][cfg["space_group_task"]], data)
    lattice_rows = lattice_predictor(lattice_bundle, estimates["features"])
    specs, refused, coverage = [], [], []
    for i, row in table.iterrows():
        options = ([] if library is None else
                   template_options(row["formula"], library, exclude_formula=row["reduced_formula"],
                                    **mapping_options(settings)))
        coverage.append({"has_template": bool(options),
                         "has_template_in_true_group": any(o["space_group"] == int(row["sg_number"]) for o in options)})
        for arm in cfg["arms"]:
            try:
                specs += candidate_specs(row["formula"], arm, settings,
                                         volume_per_atom=float(estimates["volume_per_atom"][i]),
                                         proba=estimates["space_group_proba"][i], classes=estimates["space_group_classes"],
                                         frequencies=frequencies, true_group=int(row["sg_number"]), lattice_of=lattice_rows(i),
                                         templates=options)
            except CandidateError as exc:
                refused.append({"input": row["formula"], "arm": arm, "error": str(exc)})
        specs.append(truth_spec(row["formula"], truths[i], settings))
    if client is None:
        with dask_client(cfg.get("scheduler"), cfg.get("n_workers")) as own:
            results = run_specs(own, specs, settings.formula_time_limit_s)
    else:
        results = run_specs(client, specs, settings.formula_time_limit_s)
    scored, kept_rows = [], []
    references = references or {}
    for i, row in table.iterrows():
        truth = next((r for r in results if r["input"] == row["formula"] and r["arm"] == "truth"), {})
        true_formation = formation_energy(row["formula"], truth.get("energy_per_atom"), references)
        for arm in cfg["arms"]:
            mine = [r for r in results if r["input"] == row["formula"] and r["arm"] == arm]
            with_relaxed_group_probability(mine, {row["formula"]: group_probabilities(
                estimates["space_group_proba"][i], estimates["space_group_classes"])})
            ranked = rank_candidates(mine, **rank_weights(settings, arm))
            for c in ranked:
                c |= formation_energy(row["formula"], c.get("energy_per_atom"), references)
            score = score_arm(ranked, mine, truths[i], int(row["sg_number"]), float(row["volume_per_atom"]),
                              settings.candidates)
            matched = score.pop("matched_rank", None)
            scored.append({**row.to_dict(), "arm": arm, **coverage[i], **score,
                           "true_formation_energy": true_formation["formation_energy_per_atom"],
                           "matched_formation_energy": (ranked[matched - 1]["formation_energy_per_atom"]
                                                        if matched else None),
                           "first_structure": ranked[0]["structure"].as_dict() if ranked else None})
            for c in ranked:
                path = write_cif(c, out_dir / "cifs" / arm / _safe(row["formula"]))
                kept_rows.append({"input": row["formula"], "arm": arm, "rank": c["rank"], "source": c["source"],
                                  "template_id": c["template_id"], "prototype": c["prototype"], "group": c["group"],
                                  "p_group": c["p_group"], "units": c["units"],
                                  "space_group_number": c["space_group_number"], "energy_per_atom": c["energy_per_atom"],
                                  "volume_per_atom": c["volume_per_atom"], "duplicates": c["duplicates"],
                                  "formation_energy_per_atom": c["formation_energy_per_atom"],
                                  "seconds": c["seconds"], "cif": str(path)})
    per_formula = pd.DataFrame(scored)
    candidates = pd.DataFrame(kept_rows)
    summary = summarise(per_formula)
    summary["refused"] = refused
    summary["failed_candidates"] = {arm: int(sum(1 for r in results if r["arm"] == arm and r.get("structure") is None))
                                    for arm in cfg["arms"]}
    summary["truths"] = [{"input": r["input"], "energy_per_atom": r.get("energy_per_atom"), "error": r.get("error")}
                         for r in results if r["arm"] == "truth"]
    summary["pictures"] = benchmark_pictures(per_formula, truths, out_dir / "pictures", arm=cfg["arms"][0],
                                             count=int(bench.get("pictures", 6)))
    return candidates, per_formula, summary


def benchmark_pictures(per_formula: pd.DataFrame, truths, folder: Path, arm: str = "ours",
                       count: int = 6) -> list[dict[str, str]]:
    """Pictures of `count` formulas taken in turn from each atom bin: the true structure beside the arm's top-ranked
    candidate (both as conventional cells), the space groups and whether they match in the caption."""
    from pymatgen.core import Structure

    from xtalml.structures.pictures import conventional_cell, structure_figure
    from xtalml.structures.relax import space_group_number

    rows = per_formula[(per_formula["arm"] == arm) & per_formula["first_structure"].notna()].reset_index()
    bins = [g for _, g in rows.groupby("atom_bin", sort=False)]
    order = [g.iloc[k] for k in range(max((len(g) for g in bins), default=0)) for g in bins if k < len(g)][:count]
    out = []
    for row in order:
        truth = conventional_cell(truths[_truth_index(per_formula, row)])
        ours = conventional_cell(Structure.from_dict(row["first_structure"]))
        verdict = "matches" if row["top1_cspbench"] else "does not match"
        caption = (f"{row['reduced_formula']} ({row['atom_bin']} atoms): the true structure, space group {row['sg_number']}; "
                   f"the top-ranked candidate of arm {arm} (from {row['ranked_first_from']}) {verdict} it (CSPBench "
                   "tolerances)")
        path = structure_figure([(truth, f"true, space group {row['sg_number']}"),
                                 (ours, f"{arm} rank 1, space group {space_group_number(ours)}")], caption,
                                folder / f"{_safe(row['reduced_formula'])}.png")
        out.append({"formula": row["formula"], "path": str(path), "caption": caption})
    return out


def _truth_index(per_formula: pd.DataFrame, row) -> int:
    """The position of a per-formula row's formula in the benchmark table (the order of `truths`)."""
    return list(dict.fromkeys(per_formula["formula"])).index(row["formula"])



HEADLINE_KEYS = ("formulas", "top1_cspbench", "top5_cspbench", "any_cspbench", "top1_cdvae", "top5_cdvae", "any_cdvae",
                 "top5_default", "top1_space_group", "top5_space_group", "has_template", "has_template_in_true_group",
                 "ranked_first_template", "matched_volume_error", "candidate_seconds_per_formula")
# what metrics/generate.json keeps per arm for `dvc exp show`; MLflow gets every HEADLINE_KEYS figure, summary.json all
METRIC_KEYS = ("formulas", "top1_cspbench", "top5_cspbench", "top1_space_group", "top5_space_group", "top5_cdvae")


def headline(summary: Mapping[str, Any], keys: tuple[str, ...] = HEADLINE_KEYS) -> dict[str, Any]:
    """Per arm: match rates (both tolerances), space-group hits, volume error, seconds (or the given keys)."""
    return {arm: {k: summary[arm][k] for k in keys} for arm in ARMS if arm in summary}


def write_outputs(candidates: pd.DataFrame, per_formula: pd.DataFrame, summary: Mapping[str, Any], out_dir: Path,
                  metrics_path: Path, plots_dir: Path) -> None:
    """data/generate (tables, summary, CIFs), metrics/generate.json, plots/generate/match_curve.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    candidates.to_parquet(out_dir / "candidates.parquet", index=False)
    per_formula.drop(columns=["curve", "first_structure"], errors="ignore").to_parquet(out_dir / "per_formula.parquet",
                                                                                      index=False)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics = headline(summary, METRIC_KEYS)
    first = next(iter(metrics))  # the share of formulas with a template is the same for every arm: written once
    metrics["coverage"] = {k: summary[first][k] for k in ("has_template", "has_template_in_true_group")}
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    plots_dir.mkdir(parents=True, exist_ok=True)
    arms = [arm for arm in ARMS if arm in summary]
    curve = pd.DataFrame({arm: summary[arm]["curve_any_cspbench"] for arm in arms})  # one column per arm: one line each
    curve.insert(0, "candidates", range(1, len(curve) + 1))
    curve.to_csv(plots_dir / "match_curve.csv", index=False)
