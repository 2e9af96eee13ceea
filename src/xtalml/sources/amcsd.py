"""AMCSD: the American Mineralogist Crystal Structure Database shipped as SQLite in the larixite wheel."""

from __future__ import annotations

import base64
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from pymatgen.core.periodic_table import Element

from xtalml.progress import progress
from xtalml.sources.cif_text import cif_value

COORD_SCALE = 4.0e6  # AMCSD stores fractional values as base64 int32 scaled by 4e6
_ELEMENTS = {el.symbol for el in Element}
_OPTIONAL_SITE_TAGS = {"atoms_occupancy": "_atom_site_occupancy", "atoms_u_iso": "_atom_site_U_iso_or_equiv"}


@dataclass
class AmcsdEntry:
    """One AMCSD structure as stored in the database."""

    amcsd_id: int
    mineral: str
    formula: str
    year: int | None
    journal: str
    title: str
    cell: dict[str, str]
    hm_symbol: str
    symops: list[str]
    labels: list[str]
    columns: dict[str, list[str]]


def decode_array(encoded: str | None) -> list[str] | None:
    """Decode one base64 int32 array; 2 and 3 are AMCSD's markers for '?' and '.'."""
    if encoded in (None, "", "0", 0):
        return None
    values = np.frombuffer(base64.b64decode(encoded), dtype=np.int32) / COORD_SCALE
    out = []
    for value in values:
        if abs(value - 2.0) < 1e-5:
            out.append("?")
        elif abs(value - 3.0) < 1e-5:
            out.append(".")
        else:
            out.append(f"{value:.7f}".rstrip("0").rstrip(".") if value != 0 else "0")
    return out


def element_from_label(label: str) -> str:
    """Best element symbol for an AMCSD site label such as 'Si1', 'O-H' or 'Fe2+'."""
    letters = ""
    for ch in label:
        if not ch.isalpha():
            break
        letters += ch
    if len(letters) >= 2 and letters[1].islower() and letters[:2] in _ELEMENTS:
        return letters[:2]
    if letters[:1].upper() in _ELEMENTS:
        return letters[:1].upper()
    if letters[:2].capitalize() in _ELEMENTS:
        return letters[:2].capitalize()
    return letters[:2].capitalize() or "X"


def iter_amcsd(db_path: Path, limit: int | None = None) -> Iterator[AmcsdEntry]:
    """Yield the database's structures in id order (at most `limit`)."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    query = """
        SELECT c.*, m.name AS mineral_name, s.hm_notation, s.symmetry_xyz,
               p.year AS pub_year, p.journalname AS journal
        FROM cif c
        LEFT JOIN minerals m ON m.id = c.mineral_id
        LEFT JOIN spacegroups s ON s.id = c.spacegroup_id
        LEFT JOIN publications p ON p.id = c.publication_id
        ORDER BY c.id"""
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    try:
        for row in con.execute(query):
            labels = json.loads(row["atoms_sites"]) if row["atoms_sites"] not in (None, "<missing>") else []
            columns = {}
            for key in ("atoms_x", "atoms_y", "atoms_z", "atoms_occupancy", "atoms_u_iso"):
                decoded = decode_array(row[key])
                if decoded is not None and len(decoded) == len(labels):
                    columns[key] = decoded
            hm = (row["hm_notation"] or "").split("%var")[0].strip()
            yield AmcsdEntry(
                amcsd_id=int(row["id"]), mineral=row["mineral_name"] or "", formula=row["formula"] or "",
                year=row["pub_year"], journal=row["journal"] or "", title=(row["pub_title"] or "").strip(),
                cell={k: row[k] for k in ("a", "b", "c", "alpha", "beta", "gamma", "cell_volume")},
                hm_symbol=hm, symops=json.loads(row["symmetry_xyz"] or "[]"), labels=labels, columns=columns)
    finally:
        con.close()


def amcsd_cif_text(entry: AmcsdEntry) -> str:
    """A CIF 1.1 document for one AMCSD entry (cell, symmetry, sites, formula, mineral, year)."""
    lines = [f"data_amcsd_{entry.amcsd_id:07d}", f"_database_code_amcsd {entry.amcsd_id:07d}"]
    if entry.mineral and entry.mineral != "<missing>":
        lines.append(f"_chemical_name_mineral {cif_value(entry.mineral)}")
    lines.append(f"_journal_name_full {cif_value(entry.journal)}")
    if entry.year:
        lines.append(f"_journal_year {int(entry.year)}")
    if entry.title and entry.title != "<missing>":
        lines.append(f"_publ_section_title {cif_value(entry.title)}")
    lines.append(f"_chemical_formula_sum {cif_value(entry.formula)}")
    for tag, key in (("_cell_length_a", "a"), ("_cell_length_b", "b"), ("_cell_length_c", "c"),
                     ("_cell_angle_alpha", "alpha"), ("_cell_angle_beta", "beta"),
                     ("_cell_angle_gamma", "gamma"), ("_cell_volume", "cell_volume")):
        lines.append(f"{tag} {cif_value(entry.cell[key])}")
    lines.append(f"_symmetry_space_group_name_H-M {cif_value(entry.hm_symbol)}")
    lines += ["loop_", "_space_group_symop_operation_xyz"]
    lines += [f"  '{op.replace(' ', '')}'" for op in entry.symops]
    if entry.labels and {"atoms_x", "atoms_y", "atoms_z"} <= entry.columns.keys():
        extra = [k for k in ("atoms_occupancy", "atoms_u_iso") if k in entry.columns]
        lines += ["loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x",
                  "_atom_site_fract_y", "_atom_site_fract_z"]
        lines += [_OPTIONAL_SITE_TAGS[k] for k in extra]
        for i, label in enumerate(entry.labels):
            values = [entry.columns[k][i] for k in ("atoms_x", "atoms_y", "atoms_z", *extra)]
            lines.append(" ".join([cif_value(label.replace(" ", "")), element_from_label(label), *values]))
    return "\n".join(lines) + "\n"


def write_amcsd_cifs(db_path: Path, out_dir: Path, limit: int | None = None) -> dict[str, Path]:
    """Write one CIF per AMCSD entry into out_dir; return {id: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for entry in progress(iter_amcsd(db_path, limit), desc="write AMCSD CIFs", unit="file"):
        key = f"amcsd-{entry.amcsd_id:07d}"
        path = out_dir / f"{key}.cif"
        path.write_text(amcsd_cif_text(entry), encoding="utf-8")
        written[key] = path
    return written
