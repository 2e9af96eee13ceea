"""One candidate: a random symmetric structure from PyXtal at a space group and formula units, its lattice set to the
predicted shape and volume, relaxed with CHGNet (weights from its wheel). Runs in a Dask worker, one thread each."""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from typing import Any, Mapping

_CALCULATOR: dict[str, Any] = {}
# what a candidate's result carries from its spec: which formula and arm, where it came from, how it was scored
CARRIED = ("input", "arm", "index", "source", "group", "units", "p_group", "score", "template_id", "prototype", "member",
           "known")


def _calculator():
    """CHGNet's pretrained model as an ASE calculator (xtalml.structures.potential), loaded once per worker process."""
    if "chgnet" not in _CALCULATOR:
        from xtalml.numerics import configure_torch

        configure_torch(threads=1)
        from xtalml.structures.potential import chgnet_calculator

        with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints its banner: stdout is the CLI's JSON
            _CALCULATOR["chgnet"] = chgnet_calculator()
    return _CALCULATOR["chgnet"]


def random_structure(group: int, species: list[str], counts: list[int], volume: float, cell: Mapping[str, float] | None,
                     seed: int, attempts: int = 3, sites: list[list[str]] | None = None):
    """A PyXtal random crystal in the group with these atom counts (conventional cell), lattice scaled to `volume`;
    with `cell` (a, b, c, alpha, beta, gamma) its shape is used when PyXtal can place the atoms in it; with `sites`
    (Wyckoff labels per species) the first attempt puts the atoms there."""
    from pyxtal import pyxtal
    from pyxtal.lattice import Lattice

    crystal = None
    for attempt in range(attempts):
        crystal = pyxtal()
        lattice = None
        if cell is not None and attempt == 0:
            try:
                from pyxtal.symmetry import Group

                ltype = Group(group).lattice_type
                lattice = Lattice.from_para(*(cell[k] for k in ("a", "b", "c", "alpha", "beta", "gamma")), ltype=ltype,
                                            random_state=seed)  # its own generator, unseeded by default
            except Exception:  # PyXtal refuses a shape that its lattice type does not allow
                lattice = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crystal.from_random(3, group, species, counts, lattice=lattice, random_state=seed + attempt,
                                    sites=sites if attempt == 0 else None)
        except Exception:  # noqa: BLE001 - PyXtal raises several types when it cannot place atoms
            crystal = None
            continue
        if crystal.valid:
            break
        crystal = None
    if crystal is None:
        raise RuntimeError(f"PyXtal placed no {dict(zip(species, counts))} in group {group} after {attempts} attempts")
    structure = crystal.to_pymatgen()
    structure.scale_lattice(volume)
    try:  # relaxation cost grows with the atoms: a centred cell relaxes as its primitive cell (up to 4x fewer)
        return structure.get_primitive_structure(tolerance=0.01)
    except Exception:  # noqa: BLE001 - a degenerate cell stays as PyXtal made it
        return structure


def relax(structure, fmax: float, steps: int, time_limit_s: float, fix_symmetry: bool = False, fixed_cell: bool = False,
          max_atom_steps: int | None = None) -> tuple[Any, float, int, bool]:
    """(relaxed structure, energy per atom in eV, steps taken, converged) with FIRE on cell and positions
    (FrechetCellFilter), free to leave its space group unless fix_symmetry (ASE FixSymmetry); stops at `steps`, at
    max_atom_steps / atoms steps (a bound in work, the same on every CPU), or after time_limit_s (a safety net)."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor().get_atoms(structure)
    if max_atom_steps:
        steps = min(steps, max(1, int(max_atom_steps) // len(atoms)))
    atoms.calc = _calculator()
    if fix_symmetry:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atoms.set_constraint(FixSymmetry(atoms, symprec=0.01))
    start, taken, converged = time.perf_counter(), 0, False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer = FIRE(atoms if fixed_cell else FrechetCellFilter(atoms), logfile=None)
        for converged in optimizer.irun(fmax=fmax, steps=steps):
            taken += 1
            if converged or time.perf_counter() - start > time_limit_s:
                break
        energy = float(atoms.get_potential_energy()) / len(atoms)
    atoms.set_constraint()  # the structure leaves without ASE's constraint objects
    return AseAtomsAdaptor().get_structure(atoms), energy, taken, bool(converged)


def space_group_number(structure, symprec: float = 0.1) -> int | None:
    """spglib's space group of a structure at symprec, None where spglib fails (a collapsed cell)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        return int(SpacegroupAnalyzer(structure, symprec=symprec).get_space_group_number())
    except Exception:  # noqa: BLE001 - spglib raises several types on a degenerate cell
        return None


def run_candidate(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Make (and unless spec['relax'] is false, relax) one candidate; a failure comes back as its reason, never raised."""
    from xtalml.structures.templates import template_structure

    start = time.perf_counter()
    out = {k: spec.get(k) for k in CARRIED}
    try:
        if spec.get("as_given"):  # a molecule in its box, or a benchmark's true structure: relaxed as it is
            from pymatgen.core import Structure

            structure = Structure.from_dict(json.loads(spec["template"]))
        elif spec.get("template") is not None:
            structure = template_structure({"structure": spec["template"], "mapping": spec["mapping"]},
                                           spec["volume_per_atom"])
        else:
            structure = random_structure(spec["group"], list(spec["species"]),
                                         [spec["units"] * c for c in spec["counts"]],
                                         spec["volume_per_atom"] * spec["units"] * sum(spec["counts"]), spec.get("cell"),
                                         int(spec["seed"]), sites=spec.get("sites"))
        energy, steps, converged = None, 0, None
        if spec.get("relax", True):
            structure, energy, steps, converged = relax(structure, spec["fmax"], spec["steps"], spec["time_limit_s"],
                                                        spec.get("fix_symmetry", False), bool(spec.get("fixed_cell")),
                                                        spec.get("max_atom_steps"))
        group = space_group_number(structure)
        if group is None:  # its energy means nothing: it must never rank first
            raise ValueError("spglib finds no symmetry in the relaxed cell (collapsed, or atoms on top of each other)")
        out |= {"structure": structure.as_dict(), "energy_per_atom": energy, "relax_steps": steps,
                "converged": converged, "space_group_number": group,
                "volume_per_atom": structure.volume / len(structure), "error": None}
    except Exception as exc:  # noqa: BLE001 - one candidate's failure is data for the search, not a crash
        out |= {"structure": None, "energy_per_atom": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
    out["seconds"] = time.perf_counter() - start
    return out
