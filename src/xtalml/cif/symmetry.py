"""Space groups from any CIF description, normalised to number, standard symbol, crystal system, Bravais lattice."""

from __future__ import annotations

from functools import lru_cache

import gemmi
import numpy as np

BRAVAIS_LATTICES = ("aP", "mP", "mC", "oP", "oC", "oI", "oF", "tP", "tI", "hR", "hP", "cP", "cI", "cF")
_SYSTEM_LETTER = {"triclinic": "a", "monoclinic": "m", "orthorhombic": "o", "tetragonal": "t",
                  "trigonal": "h", "hexagonal": "h", "cubic": "c"}


class SymmetryError(ValueError):
    """The symmetry given in a CIF cannot be resolved to one of the 230 space groups."""


@lru_cache(maxsize=None)
def space_group_info(number: int) -> tuple[str, str, str]:
    """(standard short symbol, crystal system, Bravais lattice) of a space-group number 1–230."""
    if not 1 <= int(number) <= 230:
        raise SymmetryError(f"space-group number {number} is outside 1–230")
    sg = gemmi.find_spacegroup_by_number(int(number))
    system = sg.crystal_system_str()
    centring = sg.hm[0]  # reference setting: A-centred orthorhombic groups (38–41) count as C
    if system == "triclinic":
        lattice = "aP"
    elif system == "trigonal" and centring == "R":
        lattice = "hR"
    elif system in ("trigonal", "hexagonal"):
        lattice = "hP"
    else:
        lattice = _SYSTEM_LETTER[system] + ("C" if centring in "ABC" else centring)
    symbol = sg.short_name()
    if symbol.startswith("H"):  # gemmi names the hexagonal setting of R groups "H3"; the symbol is R3
        symbol = "R" + symbol[1:]
    return symbol, system, lattice


def number_from_symops(symops: list[str], cell: gemmi.UnitCell | None = None) -> int:
    """Space-group number of a list of x,y,z operations, in any setting (gemmi tables, then spglib)."""
    try:
        ops = gemmi.GroupOps([gemmi.Op(s.replace(" ", "")) for s in symops])
    except (RuntimeError, ValueError) as exc:
        raise SymmetryError(f"unreadable symmetry operation: {exc}") from exc
    sg = gemmi.find_spacegroup_by_ops(ops)
    if sg is not None:
        return sg.number
    import spglib  # only for settings gemmi does not tabulate

    all_ops = list(ops)
    rotations = np.array([op.rot for op in all_ops], dtype=int) // gemmi.Op.DEN
    translations = np.array([op.tran for op in all_ops], dtype=float) / gemmi.Op.DEN
    lattice = np.array(cell.orth.mat.tolist()).T if cell is not None else None
    found = spglib.get_spacegroup_type_from_symmetry(rotations, translations, lattice=lattice)
    if found is None:
        raise SymmetryError(f"the {len(all_ops)} symmetry operations do not form a known space group")
    return int(found.number)


def resolve_space_group(symops: list[str], hall: str | None, hm: str | None, number: str | int | None,
                        cell: gemmi.UnitCell | None = None) -> tuple[int, str]:
    """(number, which CIF item decided it): symmetry operations, then Hall, then H-M symbol, then number."""
    errors = []
    if symops:
        try:
            return number_from_symops(symops, cell), "symops"
        except SymmetryError as exc:
            errors.append(str(exc))
    if hall:
        try:
            sg = gemmi.find_spacegroup_by_ops(gemmi.symops_from_hall(hall))
            if sg is not None:
                return sg.number, "hall"
        except (RuntimeError, ValueError):
            pass
        errors.append(f"Hall symbol {hall!r} not recognised")
    if hm:
        alpha, gamma = (cell.alpha, cell.gamma) if cell is not None else (0.0, 0.0)
        try:
            sg = gemmi.find_spacegroup_by_name(hm, alpha, gamma)
        except (RuntimeError, ValueError):
            sg = None
        if sg is not None:
            return sg.number, "hm"
        errors.append(f"H-M symbol {hm!r} not recognised")
    if number is not None:
        try:
            value = int(float(number))
            space_group_info(value)
            return value, "number"
        except (ValueError, SymmetryError):
            errors.append(f"space-group number {number!r} not valid")
    if not errors:
        raise SymmetryError("no space-group information (no symmetry operations, Hall or H-M symbol, or number)")
    raise SymmetryError("; ".join(errors))
