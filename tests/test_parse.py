import math
import os
import time
import warnings
from pathlib import Path

import pytest
from pymatgen.core import Composition
from pymatgen.io.cif import CifParser
from pymatgen.symmetry.groups import SpaceGroup

from xtalml.cif.dataset import cif_structures, summarise_rejects
from xtalml.cif.parse import parse_cif
from xtalml.cif.pool import map_with_timeout


def _pymatgen_reading(path: Path):
    """Cell, volume, declared space-group number and formula as pymatgen reads them (None where it cannot)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser = CifParser(path, check_cif=False)
        block = next(iter(parser.as_dict().values()))
        try:
            structure = parser.parse_structures(primitive=False, check_occu=False, on_error="ignore")
        except ValueError:
            structure = []
    lattice = structure[0].lattice if structure else None
    symbol = next((block[k] for k in ("_space_group_name_H-M_alt", "_symmetry_space_group_name_H-M") if k in block), None)
    number = next((block[k] for k in ("_space_group_IT_number", "_symmetry_Int_Tables_number") if k in block), None)
    sg = int(number) if number else SpaceGroup(symbol.replace(" ", "")).int_number
    return lattice, sg, Composition(block["_chemical_formula_sum"])


def test_all_shared_cod_cifs_parse_as_pymatgen_reads_them(cod_cif_dir):
    files = sorted(cod_cif_dir.glob("*.cif"))
    assert len(files) == 140
    compared = 0
    for path in files:
        rows, rejects = parse_cif(path)
        assert rejects == [] and len(rows) == 1, (path.name, rejects)
        row = rows[0]
        lattice, sg, composition = _pymatgen_reading(path)
        assert row["sg_number"] == sg, path.name
        assert Composition(row["formula"]).almost_equals(composition), path.name
        assert row["volume_cell"] == pytest.approx(row["volume_given"], rel=2e-3), path.name
        if lattice is not None:  # pymatgen gives up on a few real files; our cell must still match the rest
            assert [row[k] for k in ("a", "b", "c", "alpha", "beta", "gamma")] == pytest.approx(list(lattice.parameters), rel=1e-9)
            assert row["volume_cell"] == pytest.approx(lattice.volume, rel=1e-9)
            compared += 1
        assert row["z"] >= 1 and not math.isnan(row["year"])
    assert compared >= 135


def test_every_edge_case_ends_as_a_row_or_a_reject(edge_case_dir):
    files = sorted(p for p in edge_case_dir.iterdir() if p.is_file())
    assert len(files) > 200
    structures, rejects = cif_structures({p.name: p for p in files}, workers=2, timeout_s=20)
    accounted = {i.split("/")[0] for i in structures["id"]} | {i.split("/")[0] for i in rejects["id"]}
    assert accounted == {p.name for p in files}
    assert rejects["reason"].str.len().gt(5).all()
    top = summarise_rejects(rejects.assign(stage="parse"), top=3)["top_reasons"]  # file names and positions fold, so reasons group
    assert not any(".cif" in reason for reason in top) and sum(top.values()) > len(rejects) / 2
    assert len(structures) > 10  # the valid COD entries among them still parse


def test_rejects_say_why(tmp_path):
    cases = {
        "empty.cif": "",
        "nocell.cif": "data_x\n_chemical_formula_sum 'Si O2'\n",
        "badcell.cif": "data_x\n_cell_length_a 5\n_cell_length_b -1\n_cell_length_c 5\n"
                       "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n",
        "nosym.cif": "data_x\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n_cell_angle_alpha 90\n"
                     "_cell_angle_beta 90\n_cell_angle_gamma 90\n_chemical_formula_sum 'Na Cl'\n",
        "syntax.cif": "data_x\n_cell_length_a 'unterminated\n",
    }
    expected = {"empty.cif": "empty file", "nocell.cif": "no data block with a unit cell",
                "badcell.cif": "impossible cell", "nosym.cif": "no space-group information",
                "syntax.cif": "not valid CIF"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        rows, rejects = parse_cif(tmp_path / name)
        assert rows == [] and expected[name] in rejects[0]["reason"], (name, rejects)


def _slow_or_crash(item):
    if item == "hang":
        time.sleep(60)
    if item == "crash":
        os._exit(3)
    if item == "raise":
        raise ValueError("bad item")
    return item.upper()


def test_pool_survives_hangs_crashes_and_errors():
    started = time.monotonic()
    results = {item: (status, result) for item, status, result in
               map_with_timeout(_slow_or_crash, ["a", "hang", "b", "crash", "raise", "c"], workers=2, timeout_s=2)}
    assert time.monotonic() - started < 20
    assert results["a"] == ("ok", "A") and results["c"] == ("ok", "C")
    assert results["hang"][0] == "timeout"
    assert results["crash"][0] == "crash" and "exit code 3" in results["crash"][1]
    assert results["raise"] == ("error", "ValueError: bad item")
