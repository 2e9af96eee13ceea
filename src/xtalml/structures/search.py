"""Structure search for formulas: candidates from the space-group model (or at random, or the true group), built and
relaxed as Dask tasks, duplicates merged, ranked by energy per atom; CIFs written with what made them."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from xtalml.cif.symmetry import space_group_info
from xtalml.config import settings_from
from xtalml.progress import progress
from xtalml.structures.candidates import (CandidateError, compatible_units, formula_counts, plan_candidates,
                                          random_groups, top_groups)
from xtalml.structures.lattice import cell_parameters
from xtalml.structures.relax import CARRIED
from xtalml.structures.templates import MAPPING_WEIGHTS
from xtalml.structures.wyckoff_prior import prior_sites

# ours: templates ranked with the space-group model, then PyXtal in the model's groups (Wyckoff prior); random: PyXtal in
# groups drawn from the training frequencies; oracle: templates and PyXtal in the true group; templates_only: templates
# ranked without the space-group model; pyxtal_prior: PyXtal in the model's groups, uniform Wyckoff positions (the
# search before templates); unrelaxed: ours, not relaxed, ranked by score (CRYSPNet's way)
ARMS = ("ours", "random", "oracle", "templates_only", "pyxtal_prior", "unrelaxed")
MODEL_ARMS = ("ours", "pyxtal_prior", "unrelaxed")  # the arms that use the space-group model (the ranking's too)


@dataclass
class SearchSettings:
    """The generate section of params.yaml: candidate budget, groups tried, template scoring, relaxation, time limits."""

    candidates: int = 10
    probability_mass: float = 0.9
    top_k: int = 10
    max_atoms: int = 40
    units_per_group: int = 2
    templates: int = 10        # at most this many of the candidates are templates; PyXtal fills the rest
    cover_groups: int = 0      # the candidates span the model's cover_groups most probable groups first: in each, its
                               # best template, else a PyXtal structure (ours; 0: templates by score alone)
    template_weights: dict = field(default_factory=lambda: {"space_group": 1.0, "substitution": 1.0, "members": 0.0})
    wyckoff_prior: bool = True  # PyXtal candidates take Wyckoff positions drawn from Materials Project frequencies
    score_weight: float = 0.1   # relaxed candidates rank by energy per atom (eV) - score_weight x their score
    group_weight: float = 0.0   # - group_weight x log p(the group it relaxed to, by the space-group model)
    volume_weight: float = 0.0  # + volume_weight x |log(relaxed / predicted volume)|
    mapping_weights: dict = field(default_factory=lambda: dict(MAPPING_WEIGHTS))  # element-to-site distance
    mappings_per_template: int = 1  # a template's best element-to-site assignments tried (same-amount elements swap)
    fmax: float = 0.1
    fix_symmetry: bool = False
    fix_symmetry_pyxtal: bool = False  # PyXtal candidates (not templates) relax within their group (ASE FixSymmetry)
    steps: int = 200
    max_atom_steps: int | None = None  # a relaxation of n atoms takes at most max_atom_steps / n steps
    # staged relaxation (generate_structures): every candidate first takes at most short_steps (and
    # short_max_atom_steps / n) steps; the full_relaxations best by the ranking then go on to `steps`. None: one stage
    short_steps: int | None = None
    short_max_atom_steps: int | None = None
    full_relaxations: int = 3
    full_relaxation_groups: int = 0  # of those, first the best candidate in each of the model's most probable groups
    candidate_time_limit_s: float = 60.0
    formula_time_limit_s: float = 600.0
    seed: int = 42

    @classmethod
    def from_params(cls, cfg: Mapping[str, Any]) -> "SearchSettings":
        return settings_from(cls, cfg, "generate.search")


@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int | None = None) -> Iterator[Any]:
    """A client of the cluster at `scheduler` (tcp://HOST:PORT), or of a LocalCluster of single-threaded worker
    processes, one per core by default, closed on exit."""
    import os

    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout="30s") as client:
            yield client
        return
    workers = int(n_workers or os.cpu_count() or 1)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def group_probabilities(proba: np.ndarray | None, classes: Sequence[str] | None) -> dict[int, float]:
    """{space-group number: the model's probability} ('other' and other merged classes left out)."""
    if proba is None or classes is None:
        return {}
    return {int(c): float(p) for p, c in zip(proba, classes) if str(c).isdigit()}


PYXTAL_DISTANCE = 2.0  # a random structure scores as a template whose substitution is this far (a poor one)


def template_score(option: Mapping[str, Any], p_group: float, weights: Mapping[str, float]) -> float:
    """How promising a template is for a formula: w_sg log p(its group) - w_sub (element distance of the substitution)
    + w_members log(members)."""
    return (float(weights.get("space_group", 0.0)) * float(np.log(max(p_group, 1e-4)))
            - float(weights.get("substitution", 0.0)) * float(option["distance"])
            + float(weights.get("members", 0.0)) * float(np.log(option["members"])))


def ranked_templates(options: Sequence[Mapping[str, Any]], groups: Mapping[int, float],
                     weights: Mapping[str, float], only_group: int | None = None) -> list[dict[str, Any]]:
    """Template options with their group's probability and score, best first (only those of only_group, if given)."""
    out = []
    for option in options:
        if only_group is not None and option["space_group"] != only_group:
            continue
        p = groups.get(option["space_group"], 0.0)
        out.append({**option, "p_group": p, "score": template_score(option, p, weights)})
    out.sort(key=lambda o: (-o["score"], o["distance"], o["template_id"]))
    return out


def covering_candidates(ranked: Sequence[Mapping[str, Any]], groups: Mapping[int, float], counts: Sequence[int],
                        settings: SearchSettings) -> tuple[list[Mapping[str, Any]], list[tuple[int, int]]]:
    """(templates, PyXtal (group, Z)) of a candidate set that spans the settings.cover_groups most probable groups
    (`groups`, most probable first): each group's best template, else a PyXtal structure at its smallest compatible Z;
    then the other templates by score, within the budget of candidates and of templates."""
    slots: list[tuple[str, Any]] = []
    for group in list(groups)[:settings.cover_groups]:
        best = next((o for o in ranked if o["space_group"] == group), None)
        if best is not None:
            slots.append(("template", best))
        elif units := compatible_units(group, tuple(counts), settings.max_atoms):
            slots.append(("pyxtal", (group, units[0])))
    taken = {id(o) for kind, o in slots if kind == "template"}
    slots += [("template", o) for o in ranked if id(o) not in taken]
    templates, pyxtal = [], []
    for kind, item in slots:
        if len(templates) + len(pyxtal) >= settings.candidates:
            break
        if kind == "pyxtal":
            pyxtal.append(item)
        elif len(templates) < settings.templates:
            templates.append(item)
    return templates, pyxtal


def candidate_specs(formula: str, arm: str, settings: SearchSettings, *, volume_per_atom: float,
                    proba: np.ndarray | None = None, classes: Sequence[str] | None = None,
                    frequencies: Mapping[int, float] | None = None, true_group: int | None = None,
                    lattice_of: Any = None, templates: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The candidates one arm tries for one formula (CandidateError when it cannot try any): first templates
    (template_options of the formula, best first), then PyXtal structures for the rest of the budget.
    lattice_of(bravais_lattice) gives a PyXtal candidate's free cell parameters."""
    if not np.isfinite(volume_per_atom) or volume_per_atom <= 0:
        raise CandidateError(f"formula {formula!r}: no volume per atom predicted")
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose one of {', '.join(ARMS)}")
    species, counts = formula_counts(formula, settings.max_atoms)
    rng = np.random.default_rng([settings.seed, ARMS.index(arm), sum(map(ord, formula))])
    groups = group_probabilities(proba, classes)
    weights = dict(settings.template_weights)
    chosen: list[dict[str, Any]] = []
    covering: list[tuple[int, int]] = []
    if arm in ("ours", "unrelaxed", "templates_only", "oracle"):
        if arm == "templates_only":
            weights["space_group"] = 0.0
        only = int(true_group) if arm == "oracle" else None
        chosen = ranked_templates(templates, {only: 1.0} if arm == "oracle" else groups, weights, only)
        if settings.cover_groups and arm in ("ours", "unrelaxed"):
            chosen, covering = covering_candidates(chosen, top_groups(proba, classes, settings.probability_mass,
                                                                      settings.top_k), counts, settings)
        else:
            chosen = chosen[:min(settings.templates, settings.candidates)]
    pyxtal_budget = settings.candidates - len(chosen) - len(covering)
    plan: list[tuple[int, int]] = list(covering)
    weights_pyxtal: dict[int, float] = {}
    if pyxtal_budget > 0:
        if arm == "random":
            plan = random_groups(dict(frequencies), counts, pyxtal_budget, settings.max_atoms, rng,
                                 settings.units_per_group)
        else:
            weights_pyxtal = ({int(true_group): 1.0} if arm == "oracle"
                              else top_groups(proba, classes, settings.probability_mass, settings.top_k))
            if not weights_pyxtal:
                raise CandidateError(f"formula {formula!r}: the space-group model gives no numbered group")
            try:
                plan += plan_candidates(counts, weights_pyxtal, pyxtal_budget, settings.max_atoms,
                                        settings.units_per_group)
            except CandidateError:
                if not chosen and not plan:
                    raise
    common = {"input": formula, "arm": arm, "species": species, "counts": counts, "volume_per_atom": float(volume_per_atom),
              "relax": arm != "unrelaxed", "fmax": settings.fmax, "steps": settings.steps,
              "max_atom_steps": settings.max_atom_steps, "time_limit_s": settings.candidate_time_limit_s, "fix_symmetry": settings.fix_symmetry}
    specs = []
    for option in chosen:
        specs.append({**common, "index": len(specs), "source": "template", "group": option["space_group"],
                      "units": None, "p_group": option["p_group"], "score": option["score"],
                      "template_id": option["template_id"], "prototype": option["prototype"],
                      "member": option["member"], "known": option["known"], "template": option["structure"],
                      "mapping": option["mapping"], "cell": None, "sites": None, "seed": int(rng.integers(0, 2**31 - 1))})
    prior = settings.wyckoff_prior and arm in ("ours", "oracle", "unrelaxed")
    for group, units in plan:
        volume = volume_per_atom * units * sum(counts)
        cell = None
        if lattice_of is not None and arm != "random":
            bravais = space_group_info(group)[2]
            cell = cell_parameters(bravais, lattice_of(bravais), volume)
        p = float(weights_pyxtal.get(group, groups.get(group, 0.0)))
        group_prior = float(frequencies.get(group, 0.0)) if arm == "random" else p  # random scores without the model
        specs.append({**common, "index": len(specs), "source": "pyxtal", "group": group, "units": units, "p_group": p,
                      "fix_symmetry": settings.fix_symmetry or settings.fix_symmetry_pyxtal,
                      "score": template_score({"distance": PYXTAL_DISTANCE, "members": 1}, group_prior, weights),
                      "template_id": None, "prototype": None, "member": None,
                      "known": False, "template": None, "mapping": None, "cell": cell,
                      "sites": prior_sites(group, [units * c for c in counts], rng) if prior else None,
                      "seed": int(rng.integers(0, 2**31 - 1))})
    return specs


def _failed(spec: Mapping[str, Any], reason: str) -> dict[str, Any]:
    return {**{k: spec[k] for k in CARRIED},
            "structure": None, "energy_per_atom": None, "seconds": 0.0, "error": reason}


def relaxation_key(spec: Mapping[str, Any]) -> str | None:
    """What determines a template candidate's relaxation (no random draw is involved): arms that try the same
    template with the same elements share one relaxation; None for a PyXtal candidate (its own random structure)."""
    if spec.get("template") is None or spec.get("as_given"):
        return None
    fields = ("input", "template", "mapping", "volume_per_atom", "relax", "fmax", "steps", "max_atom_steps",
              "time_limit_s", "fix_symmetry", "fixed_cell")
    return json.dumps([spec.get(k) for k in fields], sort_keys=True, default=str)


def run_specs(client, specs: Sequence[Mapping[str, Any]], formula_time_limit_s: float) -> list[dict[str, Any]]:
    """Run every candidate as a Dask task, one task per distinct relaxation (relaxation_key); a formula and arm whose
    candidates have used formula_time_limit_s seconds in all has its remaining candidates cancelled (each comes back
    with that reason). A shared relaxation counts its seconds for every arm that asked for it."""
    from distributed import as_completed

    from xtalml.structures.relax import run_candidate

    unique: dict[str, int] = {}  # relaxation key -> position among the tasks
    task_of, tasks = [], []
    for spec in specs:
        key = relaxation_key(spec)
        if key is None or key not in unique:
            if key is not None:
                unique[key] = len(tasks)
            tasks.append(spec)
        task_of.append(len(tasks) - 1 if key is None else unique[key])
    futures = client.map(run_candidate, tasks, pure=False)
    owners: dict[str, list[Mapping[str, Any]]] = {}
    for spec, t in zip(specs, task_of):
        owners.setdefault(futures[t].key, []).append(spec)
    spent: dict[tuple, float] = {}
    results: dict[str, dict] = {}
    for future in progress(as_completed(futures), total=len(futures), desc="candidates", unit="structure"):
        if future.cancelled():
            continue
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the candidate crashed its worker every time
            result = _failed(owners[future.key][0], f"{type(exc).__name__}: {exc}")
        results[future.key] = result
        for spec in owners[future.key]:
            key = (spec["input"], spec["arm"])
            spent[key] = spent.get(key, 0.0) + result["seconds"]
        over = {k for k, s in spent.items() if s > formula_time_limit_s}
        if over:
            for other in futures:
                if other.key not in results and all((s["input"], s["arm"]) in over for s in owners[other.key]):
                    other.cancel()
    out = []
    for spec, t in zip(specs, task_of):
        result = results.get(futures[t].key)
        if result is None:
            out.append(_failed(spec, f"time limit per formula ({formula_time_limit_s:g} s) reached"))
        else:
            out.append({**result, **{k: spec.get(k) for k in CARRIED}})
        out[-1]["predicted_volume_per_atom"] = spec.get("volume_per_atom")
    return out


def with_relaxed_group_probability(results: Sequence[dict[str, Any]],
                                   groups: Mapping[str, Mapping[int, float]]) -> Sequence[dict[str, Any]]:
    """results, each successful one given "p_relaxed_group": the space-group model's probability of the group it
    relaxed to (groups: {formula: group_probabilities}); 0 for a group the model does not name."""
    for r in results:
        if r.get("space_group_number") is not None and r["input"] in groups:
            r["p_relaxed_group"] = float(groups[r["input"]].get(int(r["space_group_number"]), 0.0))
    return results


def ranking_value(candidate: Mapping[str, Any], score_weight: float = 0.0, *, group_weight: float = 0.0,
                  volume_weight: float = 0.0) -> float:
    """A relaxed candidate's rank value, lower first: energy per atom (eV) - score_weight x score - group_weight x
    log p(the group it relaxed to; its start group where that is not known) + volume_weight x |log(relaxed /
    predicted volume per atom)|."""
    value = float(candidate["energy_per_atom"]) - score_weight * float(candidate["score"])
    if group_weight:
        p = candidate.get("p_relaxed_group", candidate.get("p_group"))
        value -= group_weight * float(np.log(max(float(p or 0.0), 1e-4)))
    predicted = candidate.get("predicted_volume_per_atom")
    if volume_weight and predicted and candidate.get("volume_per_atom"):
        value += volume_weight * abs(float(np.log(float(candidate["volume_per_atom"]) / float(predicted))))
    return value


def rank_candidates(results: Sequence[Mapping[str, Any]], score_weight: float = 0.0, *, group_weight: float = 0.0,
                    volume_weight: float = 0.0) -> list[dict[str, Any]]:
    """Successful candidates of one formula and arm, duplicates merged (pymatgen StructureMatcher, the better ranked
    kept), by ranking_value (energy alone reranks templates poorly); unrelaxed candidates by their score (template
    score, or their group's probability)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    good = [dict(r) for r in results if r.get("structure") is not None]
    for r in good:
        r["structure"] = Structure.from_dict(r["structure"]) if isinstance(r["structure"], dict) else r["structure"]
    relaxed = all(r.get("energy_per_atom") is not None for r in good)
    key = ((lambda r: (ranking_value(r, score_weight, group_weight=group_weight, volume_weight=volume_weight),
                       r["index"])) if relaxed
           else (lambda r: (-r["score"], r["index"])))
    good.sort(key=key)
    matcher, kept = StructureMatcher(), []
    for r in good:
        twin = next((k for k in kept if matcher.fit(k["structure"], r["structure"])), None)
        if twin is None:
            r["duplicates"] = 0
            kept.append(r)
        else:
            twin["duplicates"] += 1
    for rank, r in enumerate(kept, 1):
        r["rank"] = rank
    return kept


def rank_weights(settings: SearchSettings, arm: str = "ours") -> dict[str, float]:
    """rank_candidates' weights of these settings for an arm (the group probability weighs only in MODEL_ARMS)."""
    return {"score_weight": settings.score_weight,
            "group_weight": settings.group_weight if arm in MODEL_ARMS else 0.0,
            "volume_weight": settings.volume_weight}


def mapping_options(settings: SearchSettings) -> dict[str, Any]:
    """template_options' element-to-site settings of these settings."""
    return {"per_template": settings.mappings_per_template, "mapping_weights": dict(settings.mapping_weights)}


def full_relaxation_choice(ranked: Sequence[Mapping[str, Any]], groups: Mapping[int, float],
                           settings: SearchSettings) -> list[Mapping[str, Any]]:
    """Which ranked short-stage candidates of a formula go on to the full relaxation: first the best one in each of
    the settings.full_relaxation_groups most probable groups of `groups` (the space-group model's, by the group the
    candidate is in after the short stage), then the best others, settings.full_relaxations in all."""
    chosen: list[Mapping[str, Any]] = []
    for group in sorted(groups, key=lambda g: (-groups[g], g))[:settings.full_relaxation_groups]:
        best = next((r for r in ranked if r["space_group_number"] == group), None)
        if best is not None and len(chosen) < settings.full_relaxations:
            chosen.append(best)
    chosen += [r for r in ranked if all(r is not c for c in chosen)][:settings.full_relaxations - len(chosen)]
    return chosen


def relax_best_further(client, specs: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]],
                       settings: SearchSettings, groups: Mapping[str, Mapping[int, float]] | None = None
                       ) -> list[dict[str, Any]]:
    """The second stage of a staged relaxation: per formula, settings.full_relaxations candidates of the short stage
    (ranked, duplicates merged; full_relaxation_choice with `groups`, {formula: the model's group probabilities})
    relax on from where they stopped, to settings.steps; every result says the stage it reached ("relaxation":
    "short" or "full"), its steps and seconds summed over both stages."""
    spec_of = {(s["input"], s["index"]): s for s in specs}
    follow = []
    with_relaxed_group_probability(results, groups or {})
    for formula in dict.fromkeys(r["input"] for r in results):
        mine = [r for r in results if r["input"] == formula]
        best = rank_candidates(mine, **rank_weights(settings, mine[0]["arm"]))
        for r in full_relaxation_choice(best, (groups or {}).get(formula, {}), settings):
            follow.append({**spec_of[(formula, r["index"])], "as_given": True, "steps": settings.steps,
                           "template": json.dumps(r["structure"].as_dict()), "max_atom_steps": settings.max_atom_steps})
    further = {(r["input"], r["index"]): r for r in (run_specs(client, follow, settings.formula_time_limit_s)
                                                     if follow else []) if r.get("structure") is not None}
    out = []
    for r in results:
        done = further.get((r["input"], r["index"]))
        if done is None:
            out.append({**r, "relaxation": "short" if r.get("structure") is not None else None})
        else:
            out.append({**done, "relaxation": "full", "relax_steps": r.get("relax_steps", 0) + done.get("relax_steps", 0),
                        "seconds": r["seconds"] + done["seconds"]})
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] or "formula"


def provenance(candidate: Mapping[str, Any]) -> str:
    """Where a candidate came from: its template (id, prototype, the member substituted) or PyXtal."""
    if candidate.get("source") == "template":
        return f"template {candidate['template_id']} {candidate['prototype']}, substituted from {candidate['member']}"
    return f"pyxtal random structure, Z = {candidate['units']}"


def cif_name(candidate: Mapping[str, Any]) -> str:
    """A kept candidate's file name: rank, reduced formula, relaxed space group."""
    structure = candidate["structure"]
    return f"{candidate['rank']:02d}_{_safe(structure.composition.reduced_formula)}_sg{candidate['space_group_number']}.cif"


def cif_text(candidate: Mapping[str, Any]) -> str:
    """A kept candidate as a CIF whose comment lines carry where it came from, its group and the model's probability
    of it, the relaxed group (spglib), the energy and formation energy per atom and the rank."""
    from pymatgen.io.cif import CifWriter

    structure = candidate["structure"]
    energy = candidate.get("energy_per_atom")
    formation = candidate.get("formation_energy_per_atom")
    refs = ", ".join(f"{el}: {proto}" for el, proto in (candidate.get("references") or {}).items())
    formation_line = (f"# formation energy per atom {formation:.4f} eV against the elemental references ({refs})"
                      if formation is not None else f"# formation energy: {candidate.get('formation_energy_error')}")
    comments = [f"# xtalml generate: input {candidate['input']}, arm {candidate['arm']}, rank {candidate['rank']}",
                f"# from {provenance(candidate)}" + (" (a known structure of this formula)" if candidate.get("known") else ""),
                f"# start space group {candidate['group']} (p = {candidate['p_group']:.4f} by the space-group model)",
                f"# relaxed space group {candidate['space_group_number']} (spglib, symprec 0.1)",
                f"# energy per atom {'not relaxed' if energy is None else f'{energy:.5f} eV (CHGNet 0.3.0)'}",
                formation_line]
    try:
        body = str(CifWriter(structure, symprec=0.1))
    except Exception:  # noqa: BLE001 - symmetrising can fail on a distorted cell; P1 then
        body = str(CifWriter(structure))
    return "\n".join(comments) + "\n" + body


def write_cif(candidate: Mapping[str, Any], folder: Path) -> Path:
    """One CIF per kept candidate (cif_text), named by cif_name, in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / cif_name(candidate)
    path.write_text(cif_text(candidate))
    return path


def candidate_picture(candidate: Mapping[str, Any], path: Path) -> Path:
    """A ball-and-stick PNG of a kept candidate's conventional cell, its group and source in the caption."""
    from xtalml.structures.pictures import conventional_cell, structure_figure

    structure = conventional_cell(candidate["structure"])
    title = f"{structure.composition.reduced_formula}, rank {candidate['rank']}, space group {candidate['space_group_number']}"
    return structure_figure([(structure, title)], f"from {provenance(candidate)}", path)


def candidate_row(candidate: Mapping[str, Any], cif: Path | None) -> dict[str, Any]:
    """What `xtalml generate` prints of a kept candidate."""
    energy = candidate.get("energy_per_atom")
    return {"rank": candidate["rank"], "space_group_number": candidate["space_group_number"],
            "source": candidate.get("source"), "template_id": candidate.get("template_id"),
            "prototype": candidate.get("prototype"), "known": bool(candidate.get("known")),
            "predicted_space_group": candidate["group"], "p_group": round(float(candidate["p_group"]), 4),
            "p_relaxed_group": (None if candidate.get("p_relaxed_group") is None
                                else round(float(candidate["p_relaxed_group"]), 4)),
            "score": round(float(candidate["score"]), 4),
            "formula_units": candidate["units"], "atoms": len(candidate["structure"]),
            "energy_per_atom": None if energy is None else round(float(energy), 5),
            "formation_energy_per_atom": (None if candidate.get("formation_energy_per_atom") is None
                                          else round(float(candidate["formation_energy_per_atom"]), 4)),
            **({"references": candidate["references"]} if candidate.get("references") else
               {"formation_energy_error": candidate.get("formation_energy_error")}),
            "volume_per_atom": round(float(candidate["volume_per_atom"]), 3),
            "predicted_volume_per_atom": (None if candidate.get("predicted_volume_per_atom") is None
                                          else round(float(candidate["predicted_volume_per_atom"]), 3)),
            "duplicates": candidate["duplicates"],
            "relaxation": candidate.get("relaxation", None if energy is None else "full"),
            "relax_steps": candidate.get("relax_steps"), "cif": None if cif is None else str(cif)}


def lattice_predictor(bundle: Mapping[str, Any] | None, features) -> Any:
    """lattice_of(row)(bravais) -> the lattice model's free parameters for that formula row and lattice (None: none)."""
    if bundle is None:
        return lambda row: None
    X = features[bundle["feature_names"]].to_numpy(float)
    cache: dict[tuple[int, str], dict] = {}

    def for_row(row: int):
        def lattice_of(bravais: str) -> dict:
            if (row, bravais) not in cache:
                cache[(row, bravais)] = bundle["model"].predict(X[row:row + 1], [bravais])[0]
            return cache[(row, bravais)]
        return lattice_of
    return for_row


def _failure_reason(results: Sequence[Mapping[str, Any]]) -> str:
    reasons: dict[str, int] = {}
    for r in results:
        reason = str(r.get("error") or "unknown")
        reason = "time limit" if "time limit" in reason else reason.split(":")[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    return "no candidate could be built or relaxed (" + ", ".join(f"{n} x {k}" for k, n in reasons.items()) + ")"


def generate_structures(formulas: Sequence[str], estimates: Mapping[str, Any],
                        lattice_bundle: Mapping[str, Any] | None, settings: SearchSettings, client,
                        out_dir: Path | None = None, library=None,
                        references: Mapping[str, Mapping[str, Any]] | None = None,
                        pictures: bool = False, keep_structures: bool = False,
                        exclude_own_formula: bool = False, arm: str = "ours",
                        frequencies: Mapping[int, float] | None = None) -> dict[str, Any]:
    """{"structures": [{"input", "candidates": [...]}], "errors": {input: reason}} for every formula (distinct,
    in the rows of `estimates`: the models' space-group probabilities, volumes per atom, features and errors, as
    xtalml.predict.formula_estimates gives them): templates of the library (known structures, a member of the
    formula's own included), then PyXtal in the space-group model's groups; each with its formation energy per atom
    against `references` (xtalml.structures.references; a reason where an element has none); CIFs (and with
    pictures, a PNG per CIF) under out_dir/<input>/ when given. keep_structures: each candidate row also holds its
    relaxed pymatgen Structure ("structure") and its CIF text ("cif_text"), which JSON cannot hold.
    exclude_own_formula: no template of the formula's own reduced formula (a benchmark's rule). With
    settings.short_steps, the relaxation is staged (relax_best_further). arm: "random" searches PyXtal structures in
    groups drawn from `frequencies` (the training groups' shares) instead."""
    from xtalml.structures.references import formation_energy
    from xtalml.structures.templates import template_options

    formulas = list(formulas)
    if len(set(formulas)) != len(formulas) or len(estimates["volume_per_atom"]) != len(formulas):
        raise ValueError("generate_structures: give distinct formulas, one row of estimates each")
    errors: dict[str, str] = dict(estimates["errors"])
    lattice_rows = lattice_predictor(lattice_bundle, estimates["features"])
    staged = settings.short_steps is not None
    first = (dataclasses.replace(settings, steps=settings.short_steps, max_atom_steps=settings.short_max_atom_steps)
             if staged else settings)
    specs = []
    for i, formula in enumerate(formulas):
        if formula in errors:
            continue
        try:
            options = (template_options(formula, library, exclude_formula=formula if exclude_own_formula else None,
                                        **mapping_options(settings)) if library is not None else [])
            specs += candidate_specs(formula, arm, first, volume_per_atom=float(estimates["volume_per_atom"][i]),
                                     proba=estimates["space_group_proba"][i], classes=estimates["space_group_classes"],
                                     lattice_of=lattice_rows(i), templates=options, frequencies=frequencies)
        except CandidateError as exc:
            errors[formula] = str(exc)
    results = run_specs(client, specs, settings.formula_time_limit_s) if specs else []
    groups = {f: group_probabilities(estimates["space_group_proba"][i], estimates["space_group_classes"])
              for i, f in enumerate(formulas) if f not in errors}
    if staged and results:
        results = relax_best_further(client, specs, results, settings, groups)
    with_relaxed_group_probability(results, groups)
    structures = []
    for formula in formulas:
        if formula in errors:
            continue
        mine = [r for r in results if r["input"] == formula and r["arm"] == arm]
        kept = rank_candidates(mine, **rank_weights(settings, arm))
        if not kept:
            errors[formula] = _failure_reason(mine)
            continue
        for c in kept:
            c |= formation_energy(formula, c.get("energy_per_atom"), references or {})
        folder = None if out_dir is None else Path(out_dir) / _safe(formula)
        rows = []
        for c in kept:
            text = cif_text(c) if folder is not None or keep_structures else None
            cif = None if folder is None else folder / cif_name(c)
            if cif is not None:
                folder.mkdir(parents=True, exist_ok=True)
                cif.write_text(text)
            rows.append(candidate_row(c, cif))
            if keep_structures:
                rows[-1] |= {"structure": c["structure"], "cif_text": text, "cif_name": cif_name(c)}
            if pictures and cif is not None:
                rows[-1]["png"] = str(candidate_picture(c, cif.with_suffix(".png")))
        structures.append({"input": formula, "candidates": rows})
    return {"structures": structures, "errors": errors}
