"""Known crystal structures as templates for a structure search: the primary source's ordered training structures,
pymatgen's AFLOW prototypes and robocrys's mineral prototypes, each described by its anonymous formula, space group
and Wyckoff letters, near-duplicates merged per anonymous formula."""

from __future__ import annotations

import gzip
import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

REJECT_COLUMNS = ["origin", "source_id", "reason"]
MEMBER_COLUMNS = ["origin", "source_id", "reduced_formula", "anonymous_formula", "space_group", "wyckoff", "prototype",
                  "volume_per_atom", "atoms"]
LIBRARY_COLUMNS = ["template_id", *MEMBER_COLUMNS, "members", "representative", "structure"]


def anonymous_formula(formula: str) -> str:
    """pymatgen's anonymized reduced formula ('KBr' and 'NaCl' → 'AB', 'MgAl2O4' → 'AB2C4')."""
    from pymatgen.core import Composition

    return Composition(formula).anonymized_formula


def describe(structure, symprec: float = 0.1) -> dict[str, Any]:
    """A structure's space group (spglib, symprec), Wyckoff letters, anonymous formula and volume per atom, and its
    standard primitive cell (the form a template keeps: fewer atoms to relax)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer = SpacegroupAnalyzer(structure, symprec=symprec)
        number = int(analyzer.get_space_group_number())
        conventional = analyzer.get_conventional_standard_structure()  # Wyckoff letters of the standard cell, however given
        wyckoff = SpacegroupAnalyzer(conventional, symprec=symprec).get_symmetrized_structure().wyckoff_symbols
        primitive = analyzer.get_primitive_standard_structure()
    composition = structure.composition
    return {"reduced_formula": composition.reduced_formula, "anonymous_formula": composition.anonymized_formula,
            "space_group": number, "wyckoff": " ".join(sorted(wyckoff, key=lambda w: (int(w[:-1]), w[-1]))),
            "volume_per_atom": float(structure.volume / len(structure)), "atoms": len(primitive),
            "structure": primitive}


def aflow_prototypes() -> Iterable[tuple[str, Any, str]]:
    """(id, structure, prototype label) of the AFLOW prototypes that ship with the pinned pymatgen."""
    from importlib.resources import files

    from monty.serialization import loadfn

    path = files("pymatgen.analysis.prototypes") / "aflow_prototypes.json.gz"
    for entry in loadfn(str(path)):
        tags = entry["tags"]
        label = tags.get("mineral") or tags.get("strukturbericht") or tags["aflow"]
        yield tags["aflow"], entry["snl"].structure, f"{tags['aflow']} ({label})"


def mineral_prototypes(path: Path) -> Iterable[tuple[str, Any, str]]:
    """(id, structure, prototype label) of robocrys's mineral database (read out of its wheel, never installed)."""
    from pymatgen.core import Structure

    table = json.loads(gzip.open(path).read())
    columns = table["columns"]
    for index, row in zip(table["index"], table["data"]):
        entry = dict(zip(columns, row))
        label = " ".join(str(entry[k]) for k in ("mineral", "strukturbericht") if entry.get(k))
        yield index, Structure.from_dict(entry["structure"]), f"{index} ({label or entry.get('pearson', '')})"


def training_rows(structures: Path, split: Path, part: str = "train") -> pd.DataFrame:
    """id and atoms in the cell of one split part of a parsed CIF source: only the train part may become templates."""
    rows = pd.read_parquet(structures, columns=["id", "atoms_in_cell"])
    rows = rows.merge(pd.read_parquet(split, columns=["id", "part"]), on="id")
    return rows[rows["part"] == part].reset_index(drop=True)


def read_structures(rows: pd.DataFrame, raw: Path, max_atoms: int) -> tuple[list[tuple[str, Any, None]], list[dict]]:
    """([(id, structure, None)], rejects) of these rows' CIFs (raw: the download folder with manifest.csv): ordered
    structures whose conventional cell holds at most 2 * max_atoms atoms; each other record a reject with its reason."""
    from xtalml.structures.benchmark import read_structure

    manifest = pd.read_csv(Path(raw) / "manifest.csv").set_index("id")["path"]
    found, rejects = [], []
    for row in rows.itertuples(index=False):
        reason = None
        if not np.isfinite(row.atoms_in_cell) or row.atoms_in_cell > 2 * max_atoms:
            reason = f"more than {2 * max_atoms} atoms in the cell"
        else:
            structure = read_structure(Path(raw) / manifest[row.id]) if row.id in manifest.index else None
            if structure is None:
                reason = "pymatgen cannot read the CIF"
            elif not structure.is_ordered:
                reason = "disordered (partial occupancies)"
        if reason:
            rejects.append({"source_id": row.id, "reason": reason})
        else:
            found.append((row.id, structure, None))
    return found, rejects


def described_chunk(origin: str, rows: pd.DataFrame | None, raw: Path | None, entries: Sequence | None,
                    symprec: float, max_atoms: int) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """One Dask task: read (rows of a CIF source) or take (entries) structures and describe them; rows and rejects."""
    rejects: list[dict[str, str]] = []
    if rows is not None:
        entries, rejects = read_structures(rows, raw, max_atoms)
    described, failed = describe_all(origin, entries, symprec, max_atoms)
    return described, [{"origin": origin, **r} for r in rejects] + failed


def build_library(client, origins: Mapping[str, Any], symprec: float, max_atoms: int, matcher: Mapping[str, float],
                  chunk: int = 200) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(library, rejects) from origins {name: (rows, raw folder) of a CIF source, or a list of (id, structure,
    label)}: structures read and described in Dask tasks of `chunk` records, then grouped per anonymous formula in
    Dask tasks."""
    futures = []
    for origin, spec in origins.items():
        if isinstance(spec, tuple):
            rows, raw = spec
            futures += [client.submit(described_chunk, origin, rows.iloc[i:i + chunk], raw, None, symprec, max_atoms,
                                      pure=False) for i in range(0, len(rows), chunk)]
        else:
            entries = list(spec)
            futures += [client.submit(described_chunk, origin, None, None, entries[i:i + chunk], symprec, max_atoms,
                                      pure=False) for i in range(0, len(entries), chunk)]
    described, rejects = [], []
    for rows, failed in client.gather(futures):
        described += rows
        rejects += failed
    by_formula: dict[str, list] = {}
    for row in described:
        by_formula.setdefault(row["anonymous_formula"], []).append(row)
    biggest_first = sorted(by_formula.values(), key=len, reverse=True)  # the long tasks start first
    groups = [g for part in client.gather(client.map(group_duplicates, biggest_first, matcher=matcher, pure=False))
              for g in part]
    return library_table(groups), pd.DataFrame(rejects, columns=REJECT_COLUMNS)


def describe_all(origin: str, entries: Sequence[tuple[str, Any, str | None]], symprec: float,
                 max_atoms: int) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Template rows of one origin (each described), and rejects with their reasons."""
    rows, rejects = [], []
    for source_id, structure, label in entries:
        try:
            row = describe(structure, symprec)
        except Exception as exc:  # noqa: BLE001 - spglib fails on some cells: that record is a reject, not a crash
            rejects.append({"origin": origin, "source_id": source_id, "reason": f"symmetry: {type(exc).__name__}: {exc}"[:200]})
            continue
        if row["atoms"] > max_atoms:
            rejects.append({"origin": origin, "source_id": source_id,
                            "reason": f"primitive cell of {row['atoms']} atoms, more than {max_atoms}"})
            continue
        rows.append({"origin": origin, "source_id": source_id, "prototype": label, **row})
    return rows, rejects


def group_duplicates(rows: Sequence[Mapping[str, Any]], matcher: Mapping[str, float]) -> list[list[dict[str, Any]]]:
    """Rows of one anonymous formula grouped into templates: a row joins the first group whose first member has its
    space group and Wyckoff letters and which pymatgen's StructureMatcher fits with elements swapped (the same
    prototype). A labelled prototype leads its group; every member stays, so a search can substitute from the member
    whose elements are nearest the target's (and leave out a member of the target's own formula)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    order = {"aflow": 0, "mineral": 1}
    fitter = StructureMatcher(**matcher)
    groups: list[list[dict[str, Any]]] = []
    for row in sorted(rows, key=lambda r: (r["prototype"] is None, order.get(r["origin"], 2), str(r["source_id"]))):
        for group in groups:
            first = group[0]
            if (first["space_group"], first["wyckoff"]) == (row["space_group"], row["wyckoff"]) and \
                    fitter.fit_anonymous(first["structure"], row["structure"]):
                group.append(dict(row))
                break
        else:
            groups.append([dict(row)])
    return groups


def library_table(groups: Sequence[Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """Every member of every template as one row (structures as JSON), templates numbered t00001… in a stable order;
    `members` counts a template's rows, `representative` marks its first."""
    groups = sorted(groups, key=lambda g: (g[0]["anonymous_formula"], g[0]["space_group"], g[0]["wyckoff"],
                                           g[0]["origin"], str(g[0]["source_id"])))
    rows = []
    for number, group in enumerate(groups, 1):
        for rank, member in enumerate(group):
            rows.append({"template_id": f"t{number:05d}", **{k: member[k] for k in MEMBER_COLUMNS},
                         "members": len(group), "representative": rank == 0,
                         "structure": json.dumps(member["structure"].as_dict())})
    return pd.DataFrame(rows, columns=LIBRARY_COLUMNS)


@lru_cache(maxsize=1)
def _element_properties() -> np.ndarray:
    """[Z, property]: the scaled element properties the prototype neighbours compare sites by."""
    from xtalml.models.neighbours import _site_table

    return _site_table()


def element_distance(a: str, b: str) -> float:
    """How unalike two elements are on a site: the distance of their scaled properties (electronegativity, covalent
    radius, Mendeleev number, row, column; one unit is one spread of a property)."""
    from xtalml.chemistry import ATOMIC_NUMBER

    table = _element_properties()
    return float(np.sqrt(((table[ATOMIC_NUMBER[a]] - table[ATOMIC_NUMBER[b]]) ** 2).sum()))


def periodic_distance(a: str, b: str) -> float:
    """How far apart two elements are in Pettifor's chemical scale (the Mendeleev number, in spreads of 15): the
    neighbours PNcsp+ substitutes."""
    from xtalml.chemistry import ATOMIC_NUMBER
    from xtalml.models.neighbours import SITE_PROPERTIES

    column = list(SITE_PROPERTIES).index("MendeleevNumber")
    table = _element_properties()
    return float(abs(table[ATOMIC_NUMBER[a], column] - table[ATOMIC_NUMBER[b], column]))


@lru_cache(maxsize=4096)
def _oxidation_states(amounts: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    from pymatgen.core import Composition

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guesses = Composition(dict(amounts)).oxi_state_guesses(max_sites=-1)
    return tuple(sorted(guesses[0].items())) if guesses else ()


def oxidation_states(amounts: Mapping[str, float]) -> dict[str, float]:
    """Each element's oxidation state in the most likely charge-balanced guess of pymatgen (ICSD frequencies), {}
    where none balances (intermetallics): what TCSPV3 matches a template's sites by."""
    return dict(_oxidation_states(tuple(sorted((str(k), float(v)) for k, v in amounts.items()))))


MAPPING_WEIGHTS = {"properties": 1.0, "periodic": 0.0, "oxidation": 0.0}


def mapping_distance(mapping: Mapping[str, str], member_states: Mapping[str, float],
                     target_states: Mapping[str, float], weights: Mapping[str, float] = MAPPING_WEIGHTS) -> float:
    """How poorly the target's elements fit a member's sites ({member element: target element}), the mean over sites of
    w_properties x element_distance + w_periodic x periodic_distance + w_oxidation x |oxidation-state difference|
    (one where only one of the two formulas balances charges, zero where neither does)."""
    scales = {"properties": element_distance, "periodic": periodic_distance}
    total = 0.0
    for mine, theirs in mapping.items():
        total += sum(float(weights[name]) * distance(mine, theirs) for name, distance in scales.items()
                     if weights.get(name))
        if weights.get("oxidation"):
            if member_states and target_states:
                total += float(weights["oxidation"]) * abs(member_states[mine] - target_states[theirs])
            else:
                total += float(weights["oxidation"]) * float(bool(member_states) != bool(target_states))
    return total / max(1, len(mapping))


def reduced_amounts(formula: str) -> dict[str, float]:
    """Elements and amounts of a formula's reduced composition ('Mg2Al4O8' → {Mg: 1, Al: 2, O: 4})."""
    from pymatgen.core import Composition

    return {str(el): float(n) for el, n in Composition(formula).reduced_composition.items()}


def site_assignments(target: Mapping[str, float], member: Mapping[str, float], limit: int = 24, *,
                     weights: Mapping[str, float] = MAPPING_WEIGHTS) -> list[tuple[dict[str, str], float]]:
    """Ways to put the target's elements on a member's sites ({member element: target element}), each with its
    mapping_distance, nearest first: elements trade places only with elements of the same reduced amount (KBr on
    NaCl: K on Na and Br on Cl, or K on Cl and Br on Na). Empty where the amounts differ."""
    from itertools import permutations, product

    def levels(amounts: Mapping[str, float]) -> dict[float, list[str]]:
        out: dict[float, list[str]] = {}
        for element, amount in amounts.items():
            out.setdefault(round(float(amount), 6), []).append(element)
        return out

    mine, theirs = levels(member), levels(target)
    if {k: len(v) for k, v in mine.items()} != {k: len(v) for k, v in theirs.items()}:
        return []
    uses_oxidation = bool(weights.get("oxidation"))
    member_states = oxidation_states(member) if uses_oxidation else {}
    target_states = oxidation_states(target) if uses_oxidation else {}
    keys = sorted(mine)
    options = []
    for perms in product(*(permutations(theirs[k]) for k in keys)):
        mapping = {m: t for k, perm in zip(keys, perms) for m, t in zip(mine[k], perm)}
        options.append((mapping, mapping_distance(mapping, member_states, target_states, weights)))
        if len(options) >= 50 * limit:
            break
    options.sort(key=lambda mt: (mt[1], sorted(mt[0].items())))
    return options[:limit]


def template_options(formula: str, library: pd.DataFrame, *, exclude_formula: str | None = None,
                     per_template: int = 1, mapping_weights: Mapping[str, float] = MAPPING_WEIGHTS
                     ) -> list[dict[str, Any]]:
    """Every template of the formula's anonymous formula with the member and element assignment nearest the formula
    (per_template best assignments of that member, by mapping_distance with mapping_weights), as {template_id, prototype,
    space_group, wyckoff, members, member, mapping, distance, known}; exclude_formula leaves out the members of that
    reduced formula (a benchmark's target). known: a member has the formula's own reduced formula."""
    from pymatgen.core import Composition

    composition = Composition(formula)
    target, own = reduced_amounts(formula), composition.reduced_formula
    rows = library[library["anonymous_formula"] == composition.anonymized_formula]
    if exclude_formula is not None:
        rows = rows[rows["reduced_formula"] != Composition(exclude_formula).reduced_formula]
    out = []
    for template_id, members in rows.groupby("template_id", sort=True):
        nearest = None  # (its assignments, source id, member): the member whose best assignment is nearest
        for member in members.itertuples(index=False):
            assignments = site_assignments(target, reduced_amounts(member.reduced_formula), per_template,
                                           weights=mapping_weights)
            if assignments and (nearest is None or (assignments[0][1], str(member.source_id)) <
                                (nearest[0][0][1], nearest[1])):
                nearest = (assignments, str(member.source_id), member)
        if nearest is None:
            continue
        assignments, _, member = nearest
        first = members.iloc[0]
        for mapping, distance in assignments:
            out.append({"template_id": template_id, "prototype": first["prototype"] or f"{first['reduced_formula']} "
                        f"({first['origin']} {first['source_id']})", "space_group": int(first["space_group"]),
                        "wyckoff": first["wyckoff"], "members": int(first["members"]),
                        "member": f"{member.reduced_formula} ({member.origin} {member.source_id})",
                        "structure": member.structure, "mapping": mapping, "distance": distance,
                        "known": bool((members["reduced_formula"] == own).any())})
    return out


def template_structure(option: Mapping[str, Any], volume_per_atom: float):
    """The option's member structure with the target's elements on its sites, scaled to the predicted volume."""
    from pymatgen.core import Structure

    structure = Structure.from_dict(json.loads(option["structure"]) if isinstance(option["structure"], str)
                                    else option["structure"])
    structure.replace_species(dict(option["mapping"]))
    structure.scale_lattice(volume_per_atom * len(structure))
    return structure
