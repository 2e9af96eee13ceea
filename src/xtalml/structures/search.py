"""Structure search for formulas: candidates from the space-group model (or at random, or the true group), built and
relaxed as Dask tasks, duplicates merged, ranked by energy per atom; CIFs written with what made them."""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from xtalml.cif.symmetry import space_group_info
from xtalml.progress import progress
from xtalml.structures.candidates import (CandidateError, formula_counts, plan_candidates, random_groups, top_groups)
from xtalml.structures.lattice import cell_parameters

ARMS = ("ours", "random", "oracle", "unrelaxed")


@dataclass
class SearchSettings:
    """The generate section of params.yaml: candidate budget, groups tried, relaxation and time limits."""

    candidates: int = 10
    probability_mass: float = 0.9
    top_k: int = 10
    max_atoms: int = 40
    units_per_group: int = 2
    fmax: float = 0.1
    fix_symmetry: bool = False
    steps: int = 200
    candidate_time_limit_s: float = 60.0
    formula_time_limit_s: float = 600.0
    seed: int = 42

    @classmethod
    def from_params(cls, cfg: Mapping[str, Any]) -> "SearchSettings":
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"generate.search: unknown settings {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**cfg)


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


def candidate_specs(formula: str, arm: str, settings: SearchSettings, *, volume_per_atom: float,
                    proba: np.ndarray | None = None, classes: Sequence[str] | None = None,
                    frequencies: Mapping[int, float] | None = None, true_group: int | None = None,
                    lattice_of: Any = None) -> list[dict[str, Any]]:
    """The candidates one arm tries for one formula (CandidateError when it cannot try any).

    ours and unrelaxed: the model's most probable groups, budget shared by probability; random: groups drawn from
    the training frequencies; oracle: the true group. lattice_of(bravais_lattice) gives the free cell parameters.
    """
    if not np.isfinite(volume_per_atom) or volume_per_atom <= 0:
        raise CandidateError(f"formula {formula!r}: no volume per atom predicted")
    species, counts = formula_counts(formula, settings.max_atoms)
    rng = np.random.default_rng([settings.seed, ARMS.index(arm), sum(map(ord, formula))])
    if arm in ("ours", "unrelaxed"):
        weights = top_groups(proba, classes, settings.probability_mass, settings.top_k)
        if not weights:
            raise CandidateError(f"formula {formula!r}: the space-group model gives no numbered group")
        plan = plan_candidates(counts, weights, settings.candidates, settings.max_atoms, settings.units_per_group)
    elif arm == "oracle":
        weights = {int(true_group): 1.0}
        plan = plan_candidates(counts, weights, settings.candidates, settings.max_atoms, settings.units_per_group)
    elif arm == "random":
        weights = {}
        plan = random_groups(dict(frequencies), counts, settings.candidates, settings.max_atoms, rng,
                             settings.units_per_group)
    else:
        raise ValueError(f"unknown arm {arm!r}; choose one of {', '.join(ARMS)}")
    specs = []
    for index, (group, units) in enumerate(plan):
        volume = volume_per_atom * units * sum(counts)
        cell = None
        if lattice_of is not None and arm != "random":
            bravais = space_group_info(group)[2]
            cell = cell_parameters(bravais, lattice_of(bravais), volume)
        specs.append({"input": formula, "arm": arm, "index": index, "group": group, "units": units,
                      "p_group": float(weights.get(group, 0.0)), "species": species, "counts": counts,
                      "volume_per_atom": float(volume_per_atom), "cell": cell,
                      "seed": int(rng.integers(0, 2**31 - 1)), "relax": arm != "unrelaxed", "fmax": settings.fmax,
                      "steps": settings.steps, "time_limit_s": settings.candidate_time_limit_s,
                      "fix_symmetry": settings.fix_symmetry})
    return specs


def _failed(spec: Mapping[str, Any], reason: str) -> dict[str, Any]:
    return {**{k: spec[k] for k in ("input", "arm", "index", "group", "units", "p_group")},
            "structure": None, "energy_per_atom": None, "seconds": 0.0, "error": reason}


def run_specs(client, specs: Sequence[Mapping[str, Any]], formula_time_limit_s: float) -> list[dict[str, Any]]:
    """Run every candidate as a Dask task; a formula whose candidates have used formula_time_limit_s seconds in all
    has its remaining candidates cancelled (each comes back with that reason)."""
    from distributed import as_completed

    from xtalml.structures.relax import run_candidate

    futures = client.map(run_candidate, list(specs), pure=False)
    owner = {f.key: s for f, s in zip(futures, specs)}
    spent: dict[str, float] = {}
    results: dict[str, dict] = {}
    for future in progress(as_completed(futures), total=len(futures), desc="candidates", unit="structure"):
        spec = owner[future.key]
        if future.cancelled():
            continue
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the candidate crashed its worker every time
            result = _failed(spec, f"{type(exc).__name__}: {exc}")
        results[future.key] = result
        key = (spec["input"], spec["arm"])
        spent[key] = spent.get(key, 0.0) + result["seconds"]
        if spent[key] > formula_time_limit_s:
            for other, other_spec in zip(futures, specs):
                if (other_spec["input"], other_spec["arm"]) == key and other.key not in results:
                    other.cancel()
    out = []
    for future, spec in zip(futures, specs):
        out.append(results.get(future.key) or _failed(spec, f"time limit per formula ({formula_time_limit_s:g} s) reached"))
    return out


def rank_candidates(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Successful candidates of one formula and arm, duplicates merged (pymatgen StructureMatcher, the lowest energy
    kept), by energy per atom; unrelaxed candidates by their group's probability."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    good = [dict(r) for r in results if r.get("structure") is not None]
    for r in good:
        r["structure"] = Structure.from_dict(r["structure"]) if isinstance(r["structure"], dict) else r["structure"]
    relaxed = all(r.get("energy_per_atom") is not None for r in good)
    key = (lambda r: (r["energy_per_atom"], r["index"])) if relaxed else (lambda r: (-r["p_group"], r["index"]))
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


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] or "formula"


def write_cif(candidate: Mapping[str, Any], folder: Path) -> Path:
    """One CIF per kept candidate; comment lines carry the predicted group and its probability, the relaxed group
    (spglib), the energy per atom and the rank."""
    from pymatgen.io.cif import CifWriter

    folder.mkdir(parents=True, exist_ok=True)
    structure = candidate["structure"]
    path = folder / f"{candidate['rank']:02d}_{_safe(structure.composition.reduced_formula)}_sg{candidate['space_group_number']}.cif"
    energy = candidate.get("energy_per_atom")
    comments = [f"# xtalml generate: input {candidate['input']}, arm {candidate['arm']}, rank {candidate['rank']}",
                f"# predicted space group {candidate['group']} (p = {candidate['p_group']:.4f}), Z = {candidate['units']}",
                f"# relaxed space group {candidate['space_group_number']} (spglib, symprec 0.1)",
                f"# energy per atom {'not relaxed' if energy is None else f'{energy:.5f} eV (CHGNet 0.3.0)'}"]
    try:
        body = str(CifWriter(structure, symprec=0.1))
    except Exception:  # noqa: BLE001 - symmetrising can fail on a distorted cell; P1 then
        body = str(CifWriter(structure))
    path.write_text("\n".join(comments) + "\n" + body)
    return path


def candidate_row(candidate: Mapping[str, Any], cif: Path | None) -> dict[str, Any]:
    """What `xtalml generate` prints of a kept candidate."""
    energy = candidate.get("energy_per_atom")
    return {"rank": candidate["rank"], "space_group_number": candidate["space_group_number"],
            "predicted_space_group": candidate["group"], "p_group": round(float(candidate["p_group"]), 4),
            "formula_units": candidate["units"], "atoms": len(candidate["structure"]),
            "energy_per_atom": None if energy is None else round(float(energy), 5),
            "volume_per_atom": round(float(candidate["volume_per_atom"]), 3), "duplicates": candidate["duplicates"],
            "cif": None if cif is None else str(cif)}


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


def generate_structures(formulas: Sequence[str], predictor, lattice_bundle: Mapping[str, Any] | None,
                        settings: SearchSettings, client, out_dir: Path | None = None) -> dict[str, Any]:
    """{"structures": [{"input", "candidates": [...]}], "errors": {input: reason}} for every formula, candidates from
    the space-group model's groups, CIFs under out_dir/<input>/ when given."""
    from xtalml.predict import formula_estimates

    formulas = list(dict.fromkeys(formulas))
    estimates = formula_estimates(predictor, formulas)
    errors: dict[str, str] = dict(estimates["errors"])
    lattice_rows = lattice_predictor(lattice_bundle, estimates["features"])
    specs = []
    for i, formula in enumerate(formulas):
        if formula in errors:
            continue
        try:
            specs += candidate_specs(formula, "ours", settings, volume_per_atom=float(estimates["volume_per_atom"][i]),
                                     proba=estimates["space_group_proba"][i], classes=estimates["space_group_classes"],
                                     lattice_of=lattice_rows(i))
        except CandidateError as exc:
            errors[formula] = str(exc)
    results = run_specs(client, specs, settings.formula_time_limit_s) if specs else []
    structures = []
    for formula in formulas:
        if formula in errors:
            continue
        mine = [r for r in results if r["input"] == formula]
        kept = rank_candidates(mine)
        if not kept:
            errors[formula] = _failure_reason(mine)
            continue
        folder = None if out_dir is None else Path(out_dir) / _safe(formula)
        rows = [candidate_row(c, None if folder is None else write_cif(c, folder)) for c in kept]
        structures.append({"input": formula, "candidates": rows})
    return {"structures": structures, "errors": errors}
