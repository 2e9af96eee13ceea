"""Read one CIF file with gemmi into flat rows: cell, volume, symmetry, formula, Z, year, conditions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gemmi

from xtalml.chemistry import FormulaError, hill_formula, parse_formula, reduced_formula
from xtalml.cif.symmetry import SymmetryError, resolve_space_group, space_group_info

CELL_TAGS = ("_cell_length_a", "_cell_length_b", "_cell_length_c",
             "_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma")
SYMOP_TAGS = ("_space_group_symop_operation_xyz", "_symmetry_equiv_pos_as_xyz",
              "_space_group_symop.operation_xyz", "_symmetry_equiv.pos_as_xyz")
HALL_TAGS = ("_space_group_name_Hall", "_symmetry_space_group_name_Hall", "_space_group.name_Hall")
HM_TAGS = ("_space_group_name_H-M_alt", "_symmetry_space_group_name_H-M", "_space_group.name_H-M_alt")
NUMBER_TAGS = ("_space_group_IT_number", "_symmetry_Int_Tables_number", "_space_group.IT_number")
MAX_FILE_BYTES = 64 * 1024 * 1024


class CifError(ValueError):
    """A CIF that cannot give a structure row; the message says why."""


def _value(block: gemmi.cif.Block, tags: tuple[str, ...]) -> str | None:
    for tag in tags:
        raw = block.find_value(tag)
        if raw is not None and raw not in ("?", "."):
            return gemmi.cif.as_string(raw).strip() or None
    return None


def _number(block: gemmi.cif.Block, *tags: str) -> float:
    raw = _value(block, tags)
    if raw is None:
        return math.nan
    value = gemmi.cif.as_number(raw)
    return value if math.isfinite(value) else math.nan


def _loop_values(block: gemmi.cif.Block, tags: tuple[str, ...]) -> list[str]:
    for tag in tags:
        column = block.find_values(tag)
        if len(column):
            return [gemmi.cif.as_string(v) for v in column if v not in ("?", ".")]
    return []


def cell_volume(a: float, b: float, c: float, alpha: float, beta: float, gamma: float) -> float:
    """Volume of a cell from its lengths (Å) and angles (degrees); NaN when the angles are impossible."""
    ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha, beta, gamma))
    inner = 1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg
    return a * b * c * math.sqrt(inner) if inner > 0 else math.nan


def _composition_from_sites(block: gemmi.cif.Block) -> tuple[dict[str, float], float]:
    """(element → atoms in the unit cell, total) from the atom sites expanded by symmetry."""
    small = gemmi.make_small_structure_from_block(block)
    counts: dict[str, float] = {}
    for site in small.get_all_unit_cell_sites():
        symbol = site.element.name
        if symbol in ("X", ""):
            continue
        counts[symbol] = counts.get(symbol, 0.0) + site.occ
    return counts, sum(counts.values())


def parse_block(block: gemmi.cif.Block) -> dict[str, Any]:
    """One structure row from a CIF data block (raises CifError with the reason)."""
    cell_values = [_number(block, tag) for tag in CELL_TAGS]
    missing = [tag for tag, v in zip(CELL_TAGS, cell_values) if math.isnan(v)]
    if missing:
        raise CifError(f"missing or non-numeric {', '.join(missing)}")
    a, b, c, alpha, beta, gamma = cell_values
    if min(a, b, c) <= 0 or not all(0 < x < 180 for x in (alpha, beta, gamma)):
        raise CifError(f"impossible cell {a}, {b}, {c}, {alpha}, {beta}, {gamma}")
    volume_cell = cell_volume(a, b, c, alpha, beta, gamma)
    if math.isnan(volume_cell):
        raise CifError(f"cell angles {alpha}, {beta}, {gamma} do not close a cell")
    cell = gemmi.UnitCell(a, b, c, alpha, beta, gamma)
    try:
        number, sg_source = resolve_space_group(_loop_values(block, SYMOP_TAGS), _value(block, HALL_TAGS),
                                                _value(block, HM_TAGS), _value(block, NUMBER_TAGS), cell)
    except SymmetryError as exc:
        raise CifError(f"space group: {exc}") from exc
    symbol, system, lattice = space_group_info(number)

    formula_sum = _value(block, ("_chemical_formula_sum", "_chemical_formula.sum"))
    z = _number(block, "_cell_formula_units_Z", "_cell.formula_units_Z")
    try:
        site_counts, atoms_in_cell_sites = _composition_from_sites(block)
    except (RuntimeError, ValueError):
        site_counts, atoms_in_cell_sites = {}, math.nan
    formula_error = None
    amounts: dict[str, float] = {}
    if formula_sum:
        try:
            amounts = parse_formula(formula_sum)
        except FormulaError as exc:
            formula_error = str(exc)
    elif site_counts:
        amounts, formula_sum = site_counts, hill_formula(site_counts)
    else:
        raise CifError("no _chemical_formula_sum and no atom sites to derive a composition from")

    z_sites = _z_from_sites(amounts, site_counts)
    atoms, atoms_error = atoms_in_cell(amounts, site_counts, z)
    return {
        "formula_sum": formula_sum,
        "formula": hill_formula(amounts) if amounts else formula_sum,
        "reduced_formula": reduced_formula(hill_formula(amounts)) if amounts else "".join(formula_sum.split()),
        "formula_error": formula_error,
        "elements": sorted(amounts),
        "n_elements": len(amounts),
        "a": a, "b": b, "c": c, "alpha": alpha, "beta": beta, "gamma": gamma,
        "volume_given": _number(block, "_cell_volume", "_cell.volume"),
        "volume_cell": volume_cell,
        "z": z,
        "z_from_sites": z_sites,
        "atoms_in_cell": atoms,
        "atoms_error": atoms_error,
        "atoms_in_cell_sites": atoms_in_cell_sites,
        "sg_number": number,
        "sg_symbol": symbol,
        "sg_source": sg_source,
        "crystal_system": system,
        "bravais_lattice": lattice,
        "year": _number(block, "_journal_year", "_citation_year", "_journal.year"),
        "temperature_k": _number(block, "_cell_measurement_temperature", "_diffrn_ambient_temperature"),
        "pressure_kpa": _number(block, "_cell_measurement_pressure", "_diffrn_ambient_pressure"),
    }


def _z_from_sites(amounts: dict[str, float], site_counts: dict[str, float]) -> float:
    """Formula units per cell from the sites, counting non-hydrogen atoms (H is often not located)."""
    heavy_formula = sum(v for el, v in amounts.items() if el not in ("H", "D"))
    heavy_cell = sum(v for el, v in site_counts.items() if el not in ("H", "D"))
    if heavy_formula <= 0 or heavy_cell <= 0:
        return math.nan
    z = heavy_cell / heavy_formula
    return float(round(z)) if round(z) >= 1 and abs(z - round(z)) < 0.1 * z else math.nan


def atoms_in_cell(amounts: dict[str, float], site_counts: dict[str, float], z: float,
                  max_site_difference: float = 0.05) -> tuple[float, str | None]:
    """(atoms in the unit cell, None) or (NaN, reason): from Z × formula when Z is given, else from the sites.

    From the sites: the non-hydrogen atoms are the site occupancies summed over the expanded cell; hydrogen is
    counted from its sites when the CIF locates any, else added as (non-H atoms / non-H atoms per formula) × H per
    formula, because X-ray structures often leave H out. The sites must give the formula's non-hydrogen
    composition: no atomic fraction may differ by more than max_site_difference.
    """
    if not amounts:
        return math.nan, "no composition"
    if not math.isnan(z) and z > 0:
        return z * sum(amounts.values()), None
    heavy_formula = {el: v for el, v in amounts.items() if el not in ("H", "D")}
    heavy_sites = {el: v for el, v in site_counts.items() if el not in ("H", "D")}
    n_formula, n_sites = sum(heavy_formula.values()), sum(heavy_sites.values())
    hydrogen = site_counts.get("H", 0.0) + site_counts.get("D", 0.0)
    if n_formula <= 0:  # solid hydrogen: only its sites can count it
        return (hydrogen, None) if hydrogen > 0 else (math.nan, "hydrogen only, and no hydrogen sites")
    if n_sites <= 0:
        return math.nan, "no atom sites to count atoms from"
    elements = set(heavy_formula) | set(heavy_sites)
    gap = max(abs(heavy_formula.get(el, 0) / n_formula - heavy_sites.get(el, 0) / n_sites) for el in elements)
    if gap > max_site_difference:
        return math.nan, (f"formula and atom sites disagree beyond hydrogen (atomic fractions differ by up to "
                          f"{gap:.2f})")
    if hydrogen <= 0:
        hydrogen = n_sites / n_formula * (amounts.get("H", 0.0) + amounts.get("D", 0.0))
    return n_sites + hydrogen, None


def parse_cif(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Rows (one per data block with a cell) and rejects ({id, reason}) of one CIF file."""
    path = Path(path)
    stem = path.stem
    try:
        if not path.is_file():
            return [], [{"id": stem, "reason": "not a regular file" if path.exists() else "file not found"}]
        size = path.stat().st_size
    except OSError as exc:
        return [], [{"id": stem, "reason": f"cannot read file: {exc.strerror}"}]
    if size == 0:
        return [], [{"id": stem, "reason": "empty file"}]
    if size > MAX_FILE_BYTES:
        return [], [{"id": stem, "reason": f"file larger than {MAX_FILE_BYTES >> 20} MiB"}]
    try:
        doc = gemmi.cif.read(str(path))
    except (RuntimeError, ValueError, IndexError) as exc:
        return [], [{"id": stem, "reason": f"not valid CIF: {_first_line(exc).replace(str(path), path.name)}"}]
    except OSError as exc:
        return [], [{"id": stem, "reason": f"cannot read file: {exc.strerror or _first_line(exc)}"}]
    blocks = [b for b in doc if b.find_value("_cell_length_a") is not None
              or b.find_value("_cell.length_a") is not None]
    if not blocks:
        return [], [{"id": stem, "reason": "no data block with a unit cell (_cell_length_a)"}]
    rows, rejects = [], []
    for block in blocks:
        key = stem if len(blocks) == 1 else f"{stem}/{block.name}"
        try:
            row = parse_block(block)
        except CifError as exc:
            rejects.append({"id": key, "reason": str(exc)})
            continue
        except Exception as exc:  # noqa: BLE001 - one unreadable block never stops the file's other blocks
            rejects.append({"id": key, "reason": f"unreadable block {block.name!r}: {_first_line(exc)}"})
            continue
        rows.append({"id": key, **row})
    return rows, rejects


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
