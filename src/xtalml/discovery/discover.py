"""Discovery in a chemical system: its compositions ranked by the existence model, the best ones searched (the generate
search: templates steered by the space-group model, PyXtal fill, CHGNet on Dask), the known structures of the system
relaxed the same way, all placed on the convex hull of formation energy; each proposal new or known."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from xtalml.config import settings_from
from xtalml.discovery.compositions import candidate_compositions, system_name
from xtalml.discovery.existence import formula_key, key_elements
from xtalml.discovery.hull import hull_picture, hull_table
from xtalml.structures.search import SearchSettings, generate_structures

ORDERS = ("existence", "enumeration", "random")
PROPOSAL_COLUMNS = ["system", "formula", "existence", "space_group_number", "source", "prototype", "energy_per_atom",
                    "formation_energy_per_atom", "e_above_hull", "new", "known_in", "relaxation", "cif"]


@dataclass
class DiscoverSettings:
    """The discover section of params.yaml: compositions enumerated and searched, the search per composition."""

    max_atoms: int = 8            # atoms per formula unit of an enumerated composition
    compositions: int = 6         # the budget: compositions searched per system
    subsystems: bool = True       # enumerate the binaries of a ternary (and so on) too
    known_structures: int = 12    # known structures of the system (template library) relaxed for the hull, at most
    hull_tolerance: float = 0.1   # eV/atom: "on the hull" for the figures
    search: dict = dataclasses.field(default_factory=dict)  # generate.search settings overridden for discovery
    seed: int = 42

    @classmethod
    def from_params(cls, cfg: Mapping[str, Any]) -> "DiscoverSettings":
        return settings_from(cls, cfg, "discover")

    def search_settings(self, base: SearchSettings) -> SearchSettings:
        """The generate search with this section's overrides."""
        return dataclasses.replace(base, **self.search)


def ranked_compositions(elements: Sequence[str], settings: DiscoverSettings, order: str,
                        existence: Callable[[Sequence[str]], np.ndarray] | None) -> pd.DataFrame:
    """The system's candidate compositions, best first: by the existence model's probability, in enumeration order
    (fewest elements and atoms first), or at random (seeded); with their existence probability where there is a model."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")
    formulas = candidate_compositions(elements, settings.max_atoms, subsystems=settings.subsystems)
    table = pd.DataFrame({"formula": formulas, "enumeration": np.arange(len(formulas))})
    table["existence"] = existence(formulas) if existence is not None and formulas else np.nan
    if order == "existence":
        if existence is None:
            raise ValueError("order 'existence' needs the existence model (dvc repro existence)")
        table = table.sort_values(["existence", "enumeration"], ascending=[False, True], kind="stable")
    elif order == "random":
        rng = np.random.default_rng([settings.seed, sum(map(ord, system_name(elements)))])
        table = table.iloc[rng.permutation(len(table))]
    return table.reset_index(drop=True)


def known_library_formulas(elements: Sequence[str], library: pd.DataFrame | None, limit: int) -> list[str]:
    """Reduced formulas of the library's members made only of the system's elements (two or more of them), those with
    the most members first (at most `limit`)."""
    if library is None or library.empty or limit <= 0:
        return []
    allowed = set(elements)
    keys = library["reduced_formula"].map(formula_key)
    inside = keys.map(lambda k: k is not None and len(key_elements(k)) >= 2 and set(key_elements(k)) <= allowed)
    counts = library.loc[inside, "reduced_formula"].value_counts(sort=False)
    ordered = sorted(counts.items(), key=lambda fc: (-fc[1], fc[0]))
    return [f for f, _ in ordered[:limit]]


def _best(candidates: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    done = [c for c in candidates if c.get("energy_per_atom") is not None]
    return min(done, key=lambda c: c["energy_per_atom"]) if done else None


def known_sources(key: str | None, known: Mapping[str, Sequence[str]]) -> list[str]:
    """The sources that hold a formula (by formula_key)."""
    return list(known.get(key, [])) if key is not None else []


def discover_systems(systems: Sequence[Sequence[str]], *, estimate: Callable[[Sequence[str]], Mapping[str, Any]],
                     existence: Callable[[Sequence[str]], np.ndarray] | None, settings: DiscoverSettings,
                     search: SearchSettings, client, library: pd.DataFrame | None, lattice: Mapping[str, Any] | None,
                     references: Mapping[str, Mapping[str, Any]], known: Mapping[str, Sequence[str]],
                     order: str = "existence", arm: str = "ours", frequencies: Mapping[int, float] | None = None,
                     out_dir: Path | None = None, pictures: bool = True,
                     exclude_own_formula: bool = False, cache: dict | None = None) -> dict[str, Any]:
    """For each system (its elements): the compositions ranked (`order`), the first settings.compositions searched
    (generate's search, `arm`), the library's known structures of the system relaxed the same way, the hull of all;
    {"systems": [{system, proposals (one row per composition searched, best candidate), hull (every entry),
    diagram, structures (each proposal's relaxed structure, when kept), compositions, hull_png}], "errors": {system:
    reason}, "seconds"}. `known`: formula_key → sources holding it.
    `cache` ({}): searches already done (by arm and formula) are reused, and new ones added; "seconds" counts the
    searches this run used, reused ones included."""
    search = settings.search_settings(search)
    plans, errors = {}, {}
    for elements in systems:
        name = system_name(elements)
        try:
            ranked = ranked_compositions(elements, settings, order, existence)
        except ValueError as exc:
            errors[name] = str(exc)
            continue
        chosen = list(ranked["formula"][:settings.compositions])
        knowns = [f for f in known_library_formulas(elements, library, settings.known_structures) if f not in chosen]
        plans[name] = {"elements": tuple(elements), "ranked": ranked, "chosen": chosen, "knowns": knowns}
    searched = list(dict.fromkeys(f for p in plans.values() for f in p["chosen"]))
    cache = {} if cache is None else cache
    _fill(cache, arm, [f for f in searched if (arm, f) not in cache], estimate, lattice, search, client, library,
          references, arm=arm, frequencies=frequencies, keep=out_dir is not None,
          exclude_own_formula=exclude_own_formula)
    found = {"by_formula": {f: cache[(arm, f)][0] for f in searched},
             "errors": {f: cache[(arm, f)][1] for f in searched if cache[(arm, f)][1]}}
    knowns = list(dict.fromkeys(f for p in plans.values() for f in p["knowns"]))
    own = None if library is None else library[library["reduced_formula"].isin(knowns)]
    _fill(cache, "known", [f for f in knowns if ("known", f) not in cache], estimate, lattice,
          dataclasses.replace(search, candidates=1, templates=1, cover_groups=0), client, own, references)
    relaxed = {"by_formula": {f: cache[("known", f)][0] for f in knowns}}
    seconds = sum(cache[(arm, f)][2] for f in searched) + sum(cache[("known", f)][2] for f in knowns)
    out = []
    for name, plan in plans.items():
        rows = []
        for formula in plan["chosen"]:
            best = _best(found["by_formula"].get(formula, []))
            rank = plan["ranked"].index[plan["ranked"]["formula"] == formula][0]
            row = {"system": name, "formula": formula, "existence": float(plan["ranked"].loc[rank, "existence"]),
                   "composition_rank": int(rank) + 1, "label": "proposal",
                   "error": None if best else found["errors"].get(formula, "no candidate relaxed")}
            rows.append(row | _candidate_fields(best, formula, known))
        for formula in plan["knowns"]:
            best = _best(relaxed["by_formula"].get(formula, []))
            if best is not None:
                rows.append({"system": name, "formula": formula, "label": "known structure"}
                            | _candidate_fields(best, formula, known))
        table = pd.DataFrame(rows).reindex(columns=list(dict.fromkeys(
            ["system", "formula", "label", "energy_per_atom", *(k for r in rows for k in r)])))
        entries = table[table["energy_per_atom"].notna()]
        try:
            hull, diagram = hull_table(entries.reindex(columns=["formula", "energy_per_atom", "label"]), references,
                                       plan["elements"])
        except ValueError as exc:
            errors[name] = str(exc)
            continue
        proposals = table[table["label"] == "proposal"].merge(
            hull[["formula", "label", "formation_energy_per_atom", "e_above_hull"]], on=["formula", "label"],
            how="left", suffixes=("_search", ""))
        picture = None
        if out_dir is not None and pictures:
            picture = str(hull_picture(diagram, Path(out_dir) / name / "hull.png",
                                       title=f"{name}: convex hull of CHGNet formation energy"))
        cifs = []
        if out_dir is not None:
            for formula in proposals["formula"]:
                best = _best(found["by_formula"].get(formula, []))
                if best is not None and best.get("cif_text"):
                    path = Path(out_dir) / name / f"{formula}.cif"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(best["cif_text"])
                    cifs.append(str(path))
                else:
                    cifs.append(None)
            proposals["cif"] = cifs
        best_structures = {f: b["structure"] for f in proposals["formula"]
                           if (b := _best(found["by_formula"].get(f, []))) is not None and b.get("structure") is not None}
        out.append({"system": name, "proposals": proposals, "hull": hull, "diagram": diagram,
                    "structures": best_structures,
                    "compositions": int(len(plan["ranked"])), "hull_png": picture})
    return {"systems": out, "errors": errors, "seconds": seconds}


def _candidate_fields(best: Mapping[str, Any] | None, formula: str, known: Mapping[str, Sequence[str]]) -> dict:
    holders = known_sources(formula_key(formula), known)
    fields = {"new": not holders, "known_in": ",".join(holders)}
    if best is None:
        return fields | {"energy_per_atom": np.nan, "space_group_number": None, "source": None, "prototype": None,
                         "relaxation": None}
    return fields | {"energy_per_atom": float(best["energy_per_atom"]), "space_group_number": best.get("space_group_number"),
                     "source": best.get("source"), "prototype": best.get("prototype"),
                     "relaxation": best.get("relaxation")}


def _fill(cache: dict, label: str, formulas: Sequence[str], *args, **kwargs) -> None:
    """Search formulas in one batch and cache (candidates, error, seconds) per formula under (label, formula): the
    batch's wall time shared equally among its formulas, so a later run that reuses them counts what they cost."""
    if not formulas:
        return
    started = time.perf_counter()
    fresh = _search(formulas, *args, **kwargs)
    share = (time.perf_counter() - started) / len(formulas)
    for f in formulas:
        cache[(label, f)] = (fresh["by_formula"].get(f, []), fresh["errors"].get(f), share)


def _search(formulas: Sequence[str], estimate, lattice, search: SearchSettings, client, library, references, *,
            arm: str = "ours", frequencies=None, keep: bool = False, exclude_own_formula: bool = False) -> dict[str, Any]:
    """{"by_formula": {formula: candidate rows}, "errors": {formula: reason}} of one generate search."""
    if not formulas:
        return {"by_formula": {}, "errors": {}}
    estimates = estimate(list(formulas))
    result = generate_structures(list(formulas), estimates, lattice, search, client, library=library,
                                 references=references, keep_structures=keep, arm=arm, frequencies=frequencies,
                                 exclude_own_formula=exclude_own_formula)
    return {"by_formula": {s["input"]: s["candidates"] for s in result["structures"]}, "errors": result["errors"]}


def proposals_table(result: Mapping[str, Any], *, max_e_hull: float | None = None,
                    max_formation_energy: float | None = None, prototype: str | None = None) -> pd.DataFrame:
    """Every system's proposals in one table, best first (energy above hull), kept by the conditions: at most
    max_e_hull above the hull, formation energy at most max_formation_energy, prototype containing `prototype`
    (case-insensitive: 'perovskite', 'Heusler', 'CsCl')."""
    frames = [s["proposals"] for s in result["systems"] if not s["proposals"].empty]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PROPOSAL_COLUMNS)
    for column in PROPOSAL_COLUMNS:
        if column not in table:
            table[column] = None
    keep = pd.Series(True, index=table.index)
    if max_e_hull is not None:
        keep &= table["e_above_hull"].astype(float) <= max_e_hull
    if max_formation_energy is not None:
        keep &= table["formation_energy_per_atom"].astype(float) <= max_formation_energy
    if prototype:
        keep &= table["prototype"].fillna("").str.contains(prototype, case=False, regex=False)
    table = table[keep].sort_values(["system", "e_above_hull", "formula"], na_position="last")
    return table[[*PROPOSAL_COLUMNS, *[c for c in ("composition_rank", "error") if c in table]]].reset_index(drop=True)


def proposals_json(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The proposals as JSON-ready rows (NaN as null)."""
    return json.loads(table.to_json(orient="records"))
