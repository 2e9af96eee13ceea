"""Elemental reference energies for formation energies: each element's lowest CHGNet energy per atom among the
template library's elemental structures (relaxed as every candidate is), or, for the diatomic gases, its molecule in a
large box; and a candidate's formation energy per atom against them."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

DIATOMIC = {"H": 0.74, "N": 1.10, "O": 1.21, "F": 1.42, "Cl": 1.99}  # gases at 0 K: X2 molecules (bond length, Å)
BOX = 12.0  # Å: the molecule's cubic box, wide enough that its images do not feel each other


def molecule(element: str) -> Any:
    """An X2 molecule in a BOX Å cubic cell."""
    from pymatgen.core import Lattice, Structure

    bond = DIATOMIC[element] / BOX
    return Structure(Lattice.cubic(BOX), [element, element], [[0.5 - bond / 2, 0.5, 0.5], [0.5 + bond / 2, 0.5, 0.5]])


def reference_specs(elements: Sequence[str], library: pd.DataFrame, *, per_element: int, volume_per_atom: Mapping[str, float],
                    fmax: float, steps: int, time_limit_s: float) -> list[dict[str, Any]]:
    """Candidates for run_specs: per element, its own elemental structures in the library and the most common
    elemental templates (per_element in all), at its elemental volume; the diatomic gases as molecules."""
    from xtalml.structures.templates import template_options

    specs: list[dict[str, Any]] = []
    common = {"arm": "reference", "units": None, "p_group": 0.0, "score": 0.0, "relax": True, "fmax": fmax,
              "steps": steps, "time_limit_s": time_limit_s, "fix_symmetry": False, "cell": None, "sites": None, "seed": 0}
    for element in elements:
        if element in DIATOMIC:
            specs.append({**common, "input": element, "index": 0, "source": "molecule", "group": None,
                          "template_id": None, "prototype": f"{element}2 molecule in a {BOX:g} Å box", "member": None,
                          "known": True, "template": json.dumps(molecule(element).as_dict()), "mapping": {},
                          "species": [element], "counts": [2], "volume_per_atom": None, "as_given": True,
                          "fixed_cell": True})
            continue
        options = template_options(element, library)
        options.sort(key=lambda o: (not o["known"], -o["members"], o["template_id"]))  # its own first, then common ones
        for option in options[:per_element]:
            specs.append({**common, "input": element, "index": len([s for s in specs if s["input"] == element]),
                          "source": "template", "group": option["space_group"], "template_id": option["template_id"],
                          "prototype": option["prototype"], "member": option["member"], "known": option["known"],
                          "template": option["structure"], "mapping": option["mapping"], "species": [element],
                          "counts": [1], "volume_per_atom": float(volume_per_atom[element])})
    return specs


def reference_table(results: Sequence[Mapping[str, Any]], elements: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per element: its lowest energy per atom and the structure that gave it; elements without any relaxed
    structure, with the reason)."""
    rows, missing = [], []
    for element in elements:
        done = [r for r in results if r["input"] == element and r.get("energy_per_atom") is not None]
        if not done:
            reasons = sorted({str(r.get("error")) for r in results if r["input"] == element}) or ["no elemental template"]
            missing.append({"element": element, "reason": "; ".join(reasons)[:300]})
            continue
        best = min(done, key=lambda r: r["energy_per_atom"])
        rows.append({"element": element, "energy_per_atom": float(best["energy_per_atom"]), "source": best["source"],
                     "template_id": best["template_id"], "prototype": best["prototype"],
                     "space_group": best.get("space_group_number"), "tried": len(done),
                     "structure": json.dumps(best["structure"], default=float)})
    return pd.DataFrame(rows), pd.DataFrame(missing, columns=["element", "reason"])


def formation_energy(formula: str, energy_per_atom: float | None,
                     references: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """{formation_energy_per_atom, references: {element: prototype}} of a structure of this formula, or
    {formation_energy_per_atom: None, formation_energy_error: why} where an element has no reference."""
    from pymatgen.core import Composition

    if energy_per_atom is None or not np.isfinite(energy_per_atom):
        return {"formation_energy_per_atom": None, "formation_energy_error": "no energy (not relaxed)"}
    fractions = Composition(formula).fractional_composition
    lacking = sorted(str(el) for el in fractions if str(el) not in references)
    if lacking:
        return {"formation_energy_per_atom": None,
                "formation_energy_error": f"no elemental reference for {', '.join(lacking)} (the references stage "
                                          f"found no relaxed structure of it)"}
    mu = sum(float(x) * float(references[str(el)]["energy_per_atom"]) for el, x in fractions.items())
    return {"formation_energy_per_atom": float(energy_per_atom - mu),
            "references": {str(el): str(references[str(el)]["prototype"]) for el in fractions}}
