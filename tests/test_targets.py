"""Atoms per cell from Z or the atom sites, and the plausibility rule of the volume-per-atom target."""

import math

import gemmi
import numpy as np
import pandas as pd

from xtalml.chemistry import parse_formula
from xtalml.cif.parse import _composition_from_sites, atoms_in_cell, parse_cif
from xtalml.features.table import plausible_volume_per_atom


def test_atoms_in_cell_from_z_or_from_the_sites():
    assert atoms_in_cell({"Na": 1, "Cl": 1}, {}, 4.0) == (8.0, None)
    assert atoms_in_cell({"Si": 1, "O": 2}, {"Si": 3, "O": 6}, math.nan) == (9.0, None)
    # H not located by X-rays: added from the formula, per formula unit the heavy sites give
    assert atoms_in_cell({"Ca": 1, "S": 1, "O": 6, "H": 4}, {"Ca": 4, "S": 4, "O": 24}, math.nan) == (48.0, None)
    # H located: its sites count
    assert atoms_in_cell({"Mg": 1, "O": 2, "H": 2}, {"Mg": 1, "O": 2, "H": 2}, math.nan) == (5.0, None)
    assert atoms_in_cell({"H": 1}, {"H": 4}, math.nan) == (4.0, None)
    count, reason = atoms_in_cell({"Fe": 1, "O": 1}, {"Fe": 4, "O": 8}, math.nan)
    assert math.isnan(count) and "formula and atom sites disagree beyond hydrogen" in reason
    assert math.isnan(atoms_in_cell({"Fe": 1}, {}, math.nan)[0])


def test_site_counts_agree_with_z_on_real_cod_cifs(cod_cif_dir):
    """Where a CIF states Z, counting atoms from its sites alone (as for AMCSD) gives the same number."""
    compared = agreeing = 0
    for path in sorted(cod_cif_dir.glob("*.cif")):
        document = gemmi.cif.read(str(path))
        rows = parse_cif(path)[0]
        if len(document) != 1 or len(rows) != 1 or math.isnan(rows[0]["z"]) or rows[0]["formula_error"]:
            continue
        sites, _ = _composition_from_sites(document.sole_block())
        from_sites, _ = atoms_in_cell(parse_formula(rows[0]["formula_sum"]), sites, math.nan)
        compared += 1
        agreeing += bool(abs(from_sites - rows[0]["atoms_in_cell"]) <= 0.05 * rows[0]["atoms_in_cell"])
    assert compared >= 100 and agreeing >= 0.9 * compared, (agreeing, compared)


def test_implausible_volume_per_atom_drops_the_target_with_its_reason():
    rows = pd.DataFrame({"id": ["a", "b", "c", "d"], "source": "t", "atoms_in_cell": [4.0, 4.0, 10.0, np.nan],
                         "atoms_error": [None, None, None, "formula and atom sites disagree beyond hydrogen"]})
    volume = pd.Series([626.3, 40.0, 33.9, 100.0])
    per_atom, rejects = plausible_volume_per_atom(rows, volume, (4.0, 120.0))
    assert per_atom.isna().tolist() == [True, False, True, True] and per_atom[1] == 10.0
    assert rejects["id"].tolist() == ["a", "c", "d"]
    assert rejects["reason"].str.startswith("volume_per_atom target dropped: ").all()
    assert "156.57 Å³/atom outside the plausible range 4-120" in rejects["reason"].iloc[0]
    assert "3.39 Å³/atom" in rejects["reason"].iloc[1] and "disagree" in rejects["reason"].iloc[2]
