"""The rediscovery benchmark: held-out chemical systems (test systems of the existence split whose known compounds no
model trained on and no template holds) searched by each arm at one budget; does an arm put the known compounds on
its hull, in their known space group, and how many stable, new compositions does it propose?"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xtalml.discovery.compositions import candidate_compositions, system_name
from xtalml.discovery.existence import formula_key, key_elements, searchable
from xtalml.structures.benchmark import match_flags, read_structure

# arm → (composition order, structure search): ours; ours without the existence model; random compositions (charge-
# balanced where the system has an anion) with PyXtal structures in random groups
ARMS = {"ours": ("existence", "ours"), "enumeration": ("enumeration", "ours"), "random": ("random", "random")}


def train_keys(split_groups: Mapping[str, pd.Series]) -> set[str]:
    """formula_keys of the training rows of every table of the main split (its group column is the reduced formula)."""
    keys: set[str] = set()
    for groups in split_groups.values():
        keys |= {k for k in map(formula_key, pd.unique(groups.dropna().astype(str))) if k is not None}
    return keys


def held_out_systems(systems: pd.DataFrame, known: Mapping[str, Sequence[str]], trained: set[str], *,
                     max_atoms: int, max_elements: int, min_known: int, n_systems: int, seed: int,
                     references: Sequence[str] | None = None, part: str = "test") -> tuple[pd.DataFrame, dict[str, int]]:
    """(n_systems systems: system, n_elements, known formula_keys, drawn at random (seeded, binaries and ternaries
    alternating) from the existence split's test systems with at least min_known known compounds within max_atoms
    (those a search can propose), none of them in `trained` (the space-group model's training rows), every element
    among `references` (those with a reference energy, when given); {reason: systems dropped})."""
    by_system: dict[str, list[str]] = {}
    for key in known:
        if searchable(key, max_atoms, max_elements):
            by_system.setdefault(system_name(key_elements(key)), []).append(key)
    test = systems.loc[systems["part"] == part, "system"]  # "val": the systems settings are tuned on
    rows, dropped = [], {"fewer known compounds than min_known": 0,
                         "a known compound is a training row of the space-group model": 0,
                         "an element has no reference energy": 0}
    for system in sorted(test):
        keys = sorted(by_system.get(system, []))
        if references is not None and not set(system.split("-")) <= set(references):
            dropped["an element has no reference energy"] += 1
        elif len(keys) < min_known:
            dropped["fewer known compounds than min_known"] += 1
        elif any(k in trained for k in keys):
            dropped["a known compound is a training row of the space-group model"] += 1
        else:
            rows.append({"system": system, "n_elements": len(system.split("-")), "known": keys})
    pool = pd.DataFrame(rows, columns=["system", "n_elements", "known"])
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(pool.loc[pool["n_elements"] == n, "system"].to_numpy()))
              for n in sorted(pool["n_elements"].unique())]
    chosen: list[str] = []
    while len(chosen) < n_systems and any(queues):
        for queue in queues:
            if queue and len(chosen) < n_systems:
                chosen.append(queue.pop(0))
    dropped["eligible, not drawn"] = len(pool) - len(chosen)
    picked = pool.set_index("system").loc[chosen].reset_index()
    return picked, dropped


def library_without(library: pd.DataFrame, systems: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """The template library without any member of the held-out systems (their exact element sets), and how many rows
    were dropped: no known structure of a held-out compound can be a template or a hull entry while they are searched."""
    held = {tuple(s.split("-")) for s in systems}
    keys = library["reduced_formula"].map(formula_key)
    inside = keys.map(lambda k: k is not None and key_elements(k) in held)
    return library[~inside].reset_index(drop=True), int(inside.sum())


def joint_hulls(runs: Mapping[str, Mapping[str, Any]], references: Mapping[str, Mapping[str, Any]]) -> None:
    """Add e_above_joint_hull to every arm's proposals: the distance to the hull of every arm's entries of the system
    together (each formula at its lowest energy), a stricter test than the arm's own hull, where an arm that found
    only poor structures makes its own proposals look stable."""
    from pymatgen.analysis.phase_diagram import PDEntry
    from pymatgen.core import Composition

    from xtalml.discovery.hull import phase_diagram

    systems = {e["system"] for result in runs.values() for e in result["systems"]}
    for system in systems:
        entries = [e for result in runs.values() for e in result["systems"] if e["system"] == system]
        hulls = pd.concat([e["hull"] for e in entries if not e["hull"].empty] or [pd.DataFrame(columns=["formula"])])
        if hulls.empty:
            continue
        lowest = hulls.sort_values("energy_per_atom").drop_duplicates("formula")[["formula", "energy_per_atom"]]
        diagram, _ = phase_diagram(lowest.assign(label="joint"), references, system.split("-"))
        for e in entries:
            e["proposals"]["e_above_joint_hull"] = [
                max(0.0, float(diagram.get_e_above_hull(PDEntry(Composition(f), float(energy) * Composition(f).num_atoms))))
                if pd.notna(energy) else np.nan for f, energy in zip(e["proposals"]["formula"], e["proposals"]["energy_per_atom"])]


def score_systems(result: Mapping[str, Any], chosen: pd.DataFrame, known_groups: Mapping[str, set[int]], *,
                  max_atoms: int, subsystems: bool, tolerance: float,
                  true_structures: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame:
    """One row per held-out system of an arm's run: its known compounds, how many its candidate compositions hold
    (reachable), were searched (proposed), lie within `tolerance` eV/atom of the run's hull (rediscovered) in a known
    space group (structure_right) and, of those whose structure the primary source has (`true_structures`: formula_key
    → its structures), how many match one (CSPBench's tolerances: structure_matched of with_structure); its proposals
    on the hull that no source holds (new_stable); the errors."""
    by_system = {s["system"]: s for s in result["systems"]}
    rows = []
    for system, n_elements, keys in chosen[["system", "n_elements", "known"]].itertuples(index=False):
        elements = system.split("-")
        reachable = {formula_key(f) for f in candidate_compositions(elements, max_atoms, subsystems=subsystems)}
        entry = by_system.get(system)
        proposals = entry["proposals"] if entry is not None else pd.DataFrame(columns=["formula", "e_above_hull", "new"])
        proposals = proposals.assign(key=proposals["formula"].map(formula_key))
        near = proposals[proposals["e_above_hull"].astype(float) <= tolerance]
        rediscovered = near[near["key"].isin(keys)]
        right = [sg is not None and not pd.isna(sg) and int(sg) in known_groups.get(k, set())
                 for k, sg in zip(rediscovered["key"], rediscovered["space_group_number"])]
        with_structure = matched = 0
        for f, k in zip(rediscovered["formula"], rediscovered["key"]):
            truths = (true_structures or {}).get(k, [])
            candidate = (entry or {}).get("structures", {}).get(f)
            if truths:
                with_structure += 1
                matched += bool(candidate is not None and any(match_flags(candidate, t)["cspbench"] for t in truths))
        joint = (proposals[proposals["e_above_joint_hull"].astype(float) <= tolerance]
                 if "e_above_joint_hull" in proposals else near.iloc[:0])
        rows.append({"system": system, "n_elements": int(n_elements), "known": len(keys),
                     "rediscovered_joint_hull": int(joint["key"].isin(keys).sum()),
                     "new_stable_joint_hull": int((joint["new"].astype(bool) & ~joint["key"].isin(keys)).sum()),
                     "reachable": len(set(keys) & reachable), "proposed": int(proposals["key"].isin(keys).sum()),
                     "rediscovered": len(rediscovered), "structure_right": int(sum(right)),
                     "with_structure": with_structure, "structure_matched": matched,
                     "new_stable": int((near["new"].astype(bool) & ~near["key"].isin(keys)).sum()),
                     "searched": len(proposals), "error": result["errors"].get(system)})
    return pd.DataFrame(rows)


def arm_figures(per_system: pd.DataFrame, seconds: float) -> dict[str, float]:
    """An arm's figures over the held-out systems: formula recall (rediscovered / known, pooled), share reachable and
    proposed, known space group among the rediscovered, stable new proposals, seconds per system."""
    known = max(int(per_system["known"].sum()), 1)
    found = int(per_system["rediscovered"].sum())
    figures = {"formula_recall": found / known, "reachable_share": int(per_system["reachable"].sum()) / known,
               "proposed_share": int(per_system["proposed"].sum()) / known,
               "known_space_group_share": (int(per_system["structure_right"].sum()) / found) if found else 0.0,
               "new_stable_proposals": int(per_system["new_stable"].sum()),
               "formula_recall_joint_hull": int(per_system["rediscovered_joint_hull"].sum()) / known,
               "rediscovered_with_structure": int(per_system["with_structure"].sum()),
               "known_structure_match_share": (int(per_system["structure_matched"].sum())
                                               / max(int(per_system["with_structure"].sum()), 1)),
               "new_stable_proposals_joint_hull": int(per_system["new_stable_joint_hull"].sum()),
               "systems": int(len(per_system)),
               "known_compounds": int(per_system["known"].sum()),
               "seconds_per_system": seconds / max(len(per_system), 1)}
    for n, part in per_system.groupby("n_elements"):
        figures[f"formula_recall_{n}_elements"] = int(part["rediscovered"].sum()) / max(int(part["known"].sum()), 1)
    return figures


def known_space_groups(tables: Mapping[str, pd.DataFrame]) -> dict[str, set[int]]:
    """formula_key → every space group our experimental sources record for it (polymorphs included)."""
    out: dict[str, set[int]] = {}
    for table in tables.values():
        rows = table.dropna(subset=["sg_number"])
        for formula, sg in zip(rows["formula"].astype(str), rows["sg_number"]):
            key = formula_key(formula)
            if key is not None:
                out.setdefault(key, set()).add(int(sg))
    return out


def run_rediscovery(params: Mapping[str, Any], *, estimate, existence, lattice, library: pd.DataFrame,
                    references: Mapping[str, Mapping[str, Any]], systems: pd.DataFrame,
                    experimental: Mapping[str, Sequence[str]], every_source: Mapping[str, Sequence[str]],
                    trained: set[str], volume_trained: set[str], known_groups: Mapping[str, set[int]],
                    frequencies: Mapping[int, float],
                    client, out_dir: Path, true_structures=None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(per-system scores of every arm, every arm's proposals, summary) of the benchmark in params.yaml's discover
    section: held-out systems drawn, their compounds left out of the library, each arm run at one budget (the ours
    searches shared by the arms that search the same compositions), the existence ranking of their compositions
    beside the charge-balance rule and random order, a hull picture of one system with its known compounds marked.
    experimental: formula_key → experimental sources (the known compounds); every_source: the same over every source
    (what is new); trained: formula_keys of the space-group model's training rows (a held-out system holds none);
    volume_trained: the volume model's (counted: it saw their volumes, never whether they exist or their structure).
    true_structures(formula_keys) gives the primary source's ordered structures of those compounds, by key."""
    from xtalml.discovery.compositions import charge_balanced
    from xtalml.discovery.discover import DiscoverSettings, discover_systems
    from xtalml.discovery.existence import existence_table, ranking_figures
    from xtalml.discovery.hull import hull_picture
    from xtalml.structures.search import SearchSettings

    cfg = dict(params["discover"])
    bench = cfg.pop("benchmark")
    settings = DiscoverSettings.from_params({**cfg, "subsystems": False})  # the held-out system's own compositions
    search = SearchSettings.from_params(params["generate"]["search"])
    max_elements = int(params["existence"]["max_elements"])
    chosen, dropped = held_out_systems(systems, experimental, trained, max_atoms=settings.max_atoms,
                                       max_elements=max_elements, min_known=int(bench["min_known"]),
                                       n_systems=int(bench["systems"]), seed=settings.seed, references=list(references),
                                       part=bench.get("part", "test"))
    if chosen.empty:
        raise ValueError(f"discover: no held-out system qualifies ({dropped})")
    library, library_dropped = library_without(library, list(chosen["system"]))
    compositions = existence_table(experimental, max_atoms=settings.max_atoms, max_elements=max_elements,
                                   systems=list(chosen["system"]))
    ranking = {"existence_model": ranking_figures(compositions, existence(compositions["formula"].to_numpy())),
               "charge_balance_rule": ranking_figures(compositions, charge_balanced(list(compositions["formula"]))
                                                      .astype(float)),
               "random_order": ranking_figures(compositions, np.zeros(len(compositions)), seed=settings.seed)}
    cache: dict = {}
    per_system, proposals, figures, runs = [], [], {}, {}
    for arm in bench["arms"]:
        order, search_arm = ARMS[arm]
        runs[arm] = discover_systems([s.split("-") for s in chosen["system"]], estimate=estimate, existence=existence,
                                     settings=settings, search=search, client=client, library=library, lattice=lattice,
                                     references=references, known=every_source, order=order, arm=search_arm,
                                     frequencies=frequencies, out_dir=Path(out_dir) / "arms" / arm, pictures=False,
                                     exclude_own_formula=True, cache=cache)
    joint_hulls(runs, references)
    truths = true_structures([k for keys in chosen["known"] for k in keys]) if true_structures is not None else {}
    for arm, result in runs.items():
        scores = score_systems(result, chosen, known_groups, max_atoms=settings.max_atoms, subsystems=False,
                               tolerance=settings.hull_tolerance, true_structures=truths)
        per_system.append(scores.assign(arm=arm))
        for entry in result["systems"]:
            proposals.append(entry["proposals"].assign(arm=arm))
        figures[arm] = arm_figures(scores, result["seconds"])
    pictures = []
    ours = runs.get(bench["arms"][0])
    if ours is not None and ours["systems"]:
        scores = per_system[0].set_index("system")
        entry = max(ours["systems"], key=lambda e: (scores.loc[e["system"], "rediscovered"], e["system"]))
        marked = [f for f in entry["proposals"]["formula"]
                  if formula_key(f) in set(chosen.set_index("system").loc[entry["system"], "known"])]
        path = hull_picture(entry["diagram"], Path(out_dir) / f"hull_{entry['system']}.png",
                            title=f"{entry['system']} (held out), arm {bench['arms'][0]}: CHGNet formation energy",
                            marked=marked)
        pictures.append({"system": entry["system"], "path": str(path), "marked": marked})
    summary = {"arms": figures, "existence_ranking": ranking, "systems": chosen.assign(
                   known=chosen["known"].map(list)).to_dict("records"),
               "dropped_systems": dropped, "library_rows_dropped": library_dropped, "pictures": pictures,
               "known_compounds_in_volume_training_rows": int(sum(k in volume_trained for keys in chosen["known"]
                                                                  for k in keys)),
               "budget": {"compositions_per_system": settings.compositions,
                          "candidates_per_composition": settings.search_settings(search).candidates,
                          "known_structures_per_system": settings.known_structures},
               "seconds_per_system": "wall time of the searches an arm used (each batch's time shared equally among "
                                     "its formulas), reused searches included: arms that search the same compositions "
                                     "share one search"}
    frames = [p for p in proposals if not p.empty]
    return (pd.concat(per_system, ignore_index=True),
            pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), summary)


def primary_structures(source_dir: Path) -> Any:
    """keys → {formula_key: the source's ordered structures of it} over the download and parse stages' folder."""
    def read(keys: Sequence[str]) -> dict[str, list[Any]]:
        rows = pd.read_parquet(Path(source_dir) / "structures.parquet", columns=["id", "formula"])
        rows = rows[rows["formula"].map(formula_key).isin(set(keys))]
        manifest = pd.read_csv(Path(source_dir) / "raw" / "manifest.csv").set_index("id")["path"]
        out: dict[str, list[Any]] = {}
        for row in rows.itertuples(index=False):
            structure = read_structure(Path(source_dir) / "raw" / manifest[row.id]) if row.id in manifest.index else None
            if structure is not None and structure.is_ordered:
                out.setdefault(formula_key(row.formula), []).append(structure)
        return out
    return read
