"""Formation energies against elemental references, the references' candidates, and the structure pictures."""

import json

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from xtalml.structures.pictures import structure_figure
from xtalml.structures.references import formation_energy, molecule, reference_specs, reference_table
from xtalml.structures.templates import describe_all, group_duplicates, library_table

REFERENCES = {"Na": {"energy_per_atom": -1.31, "prototype": "bcc Na"},
              "Cl": {"energy_per_atom": -1.80, "prototype": "Cl2 molecule in a 12 Å box"}}


def test_formation_energy_subtracts_the_composition_weighted_references():
    result = formation_energy("NaCl", -3.65, REFERENCES)
    assert result["formation_energy_per_atom"] == pytest.approx(-3.65 - (0.5 * -1.31 + 0.5 * -1.80))
    assert result["references"] == {"Na": "bcc Na", "Cl": "Cl2 molecule in a 12 Å box"}
    assert formation_energy("Na2Cl2", -3.65, REFERENCES)["formation_energy_per_atom"] == pytest.approx(-2.095)


def test_an_element_without_a_reference_gets_a_reason_not_a_number():
    result = formation_energy("NaClO3", -4.0, REFERENCES)
    assert result["formation_energy_per_atom"] is None and "no elemental reference for O" in result["formation_energy_error"]
    assert "not relaxed" in formation_energy("NaCl", None, REFERENCES)["formation_energy_error"]


def test_references_try_the_elements_own_structures_first_and_gases_as_molecules():
    entries = [("cu", Structure.from_spacegroup(225, Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]]), "A1 (Copper)"),
               ("w", Structure.from_spacegroup(229, Lattice.cubic(3.16), ["W"], [[0, 0, 0]]), "A2 (Tungsten)"),
               ("fe", Structure.from_spacegroup(229, Lattice.cubic(2.87), ["Fe"], [[0, 0, 0]]), None)]
    rows, _ = describe_all("test", entries, 0.1, 40)
    library = library_table(group_duplicates(rows, {"ltol": 0.2, "stol": 0.3, "angle_tol": 5}))
    specs = reference_specs(["Fe", "O"], library, per_element=2, volume_per_atom={"Fe": 11.3}, fmax=0.1, steps=10,
                            time_limit_s=5)
    iron = [s for s in specs if s["input"] == "Fe"]
    assert [s["group"] for s in iron] == [229, 225] and iron[0]["known"]  # its own bcc first, then fcc
    [oxygen] = [s for s in specs if s["input"] == "O"]
    assert oxygen["fixed_cell"] and oxygen["as_given"] and len(molecule("O")) == 2
    assert molecule("O").get_distance(0, 1) == pytest.approx(1.21)
    results = [{"input": "Fe", "energy_per_atom": -8.3, "source": "template", "template_id": "t1", "prototype": "bcc",
                "space_group_number": 229, "structure": {"x": 1}},
               {"input": "Fe", "energy_per_atom": -8.1, "source": "template", "template_id": "t2", "prototype": "fcc",
                "space_group_number": 225, "structure": {"x": 2}},
               {"input": "O", "energy_per_atom": None, "error": "RuntimeError: failed"}]
    table, missing = reference_table(results, ["Fe", "O", "Xe"])
    assert table.set_index("element").loc["Fe", "prototype"] == "bcc" and table["tried"].tolist() == [2]
    assert missing.set_index("element")["reason"].to_dict() == {"O": "RuntimeError: failed", "Xe": "no elemental template"}
    assert json.loads(table["structure"][0]) == {"x": 1}


def test_the_picture_writer_draws_both_structures_with_a_legend(tmp_path):
    salt = Structure.from_spacegroup(225, Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    caesium = Structure.from_spacegroup(221, Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    path = structure_figure([(salt, "true"), (caesium, "rank 1")], "rank 1 does not match", tmp_path / "a" / "p.png")
    assert path.exists() and path.stat().st_size > 20_000
    from matplotlib.image import imread

    image = imread(path)
    assert image.shape[1] > image.shape[0] and pd.Series(image[..., :3].ravel()).nunique() > 50  # two panels, drawn
