"""Discovery: compositions of a chemical system and their charge balance, the existence model's split by chemical
system, the convex hull, the benchmark's held-out systems kept out of the library, and a system that cannot be read."""

import numpy as np
import pandas as pd
import pytest

from xtalml.discovery.benchmark import held_out_systems, library_without, score_systems
from xtalml.discovery.compositions import (ChemicalSystemError, candidate_compositions, charge_balanced,
                                           enumerate_compositions, parse_system)
from xtalml.discovery.existence import (existence_table, formula_key, known_keys, ranking_figures, system_parts,
                                        train_existence)
from xtalml.discovery.hull import HullError, hull_table


def test_a_system_enumerates_every_reduced_composition_and_keeps_the_charge_balanced_ones_where_it_has_an_anion():
    assert enumerate_compositions(("Na", "Cl"), 4, subsystems=False) == ["NaCl", "Na2Cl", "NaCl2", "Na3Cl", "NaCl3"]
    ternary = enumerate_compositions(("Ca", "Ti", "O"), 5)
    assert "Ca2O2" not in ternary and "CaO" in ternary and "CaTiO3" in ternary and "CaTi" in ternary  # subsystems too
    assert len(ternary) == len(set(ternary))
    assert set(candidate_compositions(("Ca", "Ti", "O"), 5)) == {"CaO", "TiO2", "CaTiO3"}
    assert list(charge_balanced(["NaCl", "Na2Cl", "MgAl2O4", "CaTiO3", "Fe3O4"])) == [True, False, True, True, False]
    metals = candidate_compositions(("Ni", "Al"), 4)
    assert "AlNi" in metals and "AlNi3" in metals  # no anion: every composition is kept


@pytest.mark.parametrize("text, problem", [("Ca-Xx-O", "unknown element 'Xx'"), ("Ca", r"1 element\(s\)"),
                                           ("He-O", "He forms too few"), ("Na-Na", "named twice")])
def test_a_system_that_cannot_be_searched_is_named_with_its_problem(text, problem):
    with pytest.raises(ChemicalSystemError, match=problem) as info:
        parse_system(text)
    assert repr(text) in str(info.value)


def test_systems_are_read_in_any_of_the_usual_spellings():
    assert parse_system("Ca-Ti-O") == parse_system("CaTiO") == parse_system("O Ti Ca") == ("O", "Ca", "Ti")


def test_formula_keys_name_a_compound_whatever_its_spelling_and_skip_disordered_ones():
    assert formula_key("CaTiO3") == formula_key("Ca2 Ti2 O6") == formula_key("O3TiCa") == "Ca1-O3-Ti1"
    assert formula_key("Fe0.95O") is None and formula_key("Xx2O") is None
    assert known_keys({"a": ["NaCl", "Na2Cl2"], "b": ["ClNa", "KCl"]}) == {"Cl1-Na1": ["a", "b"], "Cl1-K1": ["b"]}


def _formulas() -> dict[str, list[str]]:
    """Binary halides, oxides and intermetallics of many systems: enough for a small existence model."""
    alkali, halogens = ["Li", "Na", "K", "Rb", "Cs"], ["F", "Cl", "Br", "I"]
    earths, metals = ["Mg", "Ca", "Sr", "Ba"], ["Ni", "Co", "Fe", "Cu", "Pd"]
    formulas = [f"{a}{x}" for a in alkali for x in halogens] + [f"{e}O" for e in earths] + \
               [f"{e}{x}2" for e in earths for x in halogens] + [f"{a}2O" for a in alkali] + \
               [f"{m}Al" for m in metals] + [f"{m}3Al" for m in metals]
    return {"primary": formulas[::2], "cod_index": formulas[1::2]}


def test_the_existence_model_never_trains_on_a_held_out_system_and_ranks_them_all():
    cfg = {"sources": ["primary", "cod_index"], "max_atoms": 4, "max_elements": 2, "negatives_per_system": 3,
           "test_size": 0.25, "val_size": 0.25, "seed": 0,
           "model": {"n_estimators": 20, "learning_rate": 0.3, "min_child_samples": 2, "patience": 5}}
    result = train_existence(cfg, _formulas())
    parts = result["systems"].set_index("system")["part"]
    assert set(parts) == {"train", "val", "test"}
    trained = set(result["train_rows"]["system"])
    assert trained and all(parts[s] == "train" for s in trained)
    held = result["held_out"]
    assert not set(held["system"]) & trained
    # every composition of a held-out system is scored, not a sample
    full = existence_table(result["known"], max_atoms=4, max_elements=2, systems=sorted(set(held["system"])))
    assert len(held) == len(full)
    test = result["metrics"]["test"]
    assert set(test) == {"existence_model", "charge_balance_rule", "random_order"}
    assert 0 < test["existence_model"]["average_precision"] <= 1
    assert result["model"].existence(["NaCl", "Na3Cl"]).shape == (2,)


def test_system_parts_keep_each_system_whole_and_are_seeded():
    systems = [f"A{i}-B" for i in range(40)] * 3
    parts = system_parts(systems, test_size=0.2, val_size=0.2, seed=1)
    assert parts.index.is_unique and parts.value_counts().to_dict() == {"train": 24, "test": 8, "val": 8}
    assert parts.equals(system_parts(systems, test_size=0.2, val_size=0.2, seed=1))


def test_ranking_figures_score_a_perfect_and_a_constant_ranking():
    table = pd.DataFrame({"system": ["A-B"] * 4 + ["C-D"] * 4, "known": [True, False, False, False] * 2})
    perfect = ranking_figures(table, table["known"].to_numpy(float))
    assert perfect["average_precision"] == 1.0 and perfect["recall_at_1"] == 1.0
    constant = ranking_figures(table, np.zeros(8))
    assert constant["recall_at_1"] < 1.0 and constant["positive_rate"] == 0.25


def test_the_hull_of_hand_made_energies():
    references = {"Na": {"energy_per_atom": -1.0}, "Cl": {"energy_per_atom": -2.0}}
    entries = pd.DataFrame({"formula": ["NaCl", "NaCl2", "Na2Cl"], "energy_per_atom": [-4.0, -3.0, -2.0],
                            "label": ["proposal"] * 3})
    table, diagram = hull_table(entries, references, ["Na", "Cl"])
    table = table.set_index("formula")
    assert table.loc["NaCl", "formation_energy_per_atom"] == pytest.approx(-2.5)  # -4 - (-1 - 2) / 2
    assert table.loc["NaCl", "e_above_hull"] == pytest.approx(0.0)
    # NaCl2: formation -3 + 5/3 = -4/3; the hull at x(Cl) = 2/3 lies at -2.5 x 2/3 = -5/3 (NaCl to Cl)
    assert table.loc["NaCl2", "e_above_hull"] == pytest.approx(-4 / 3 + 5 / 3)
    assert table.loc["Na2Cl", "formation_energy_per_atom"] == pytest.approx(-2 + 4 / 3)
    assert len(diagram.stable_entries) == 3
    with pytest.raises(HullError, match="no elemental reference energy for Cl"):
        hull_table(entries, {"Na": {"energy_per_atom": -1.0}}, ["Na", "Cl"])


def test_held_out_systems_have_no_compound_in_training_rows_and_leave_the_library():
    known = {formula_key(f): ["primary"] for f in ["NaCl", "Na2Cl", "KCl", "K2Cl", "CsCl", "CsCl3", "LiCl", "Li2Cl"]}
    systems = pd.DataFrame({"system": ["Cl-Na", "Cl-K", "Cl-Cs", "Cl-Li"], "part": ["test", "test", "test", "train"]})
    chosen, dropped = held_out_systems(systems, known, trained={formula_key("KCl")}, max_atoms=4, max_elements=2,
                                       min_known=2, n_systems=5, seed=0)
    assert set(chosen["system"]) == {"Cl-Na", "Cl-Cs"}
    assert dropped["a known compound is a training row of the space-group model"] == 1
    library = pd.DataFrame({"reduced_formula": ["NaCl", "Na", "Cl2", "CsCl", "KCl", "NaClO3"], "template_id": list("abcdef")})
    kept, n = library_without(library, list(chosen["system"]))
    assert n == 2 and list(kept["reduced_formula"]) == ["Na", "Cl2", "KCl", "NaClO3"]


def test_an_arm_rediscovers_a_known_compound_only_on_its_hull():
    chosen = pd.DataFrame({"system": ["Cl-Na"], "n_elements": [2], "known": [[formula_key("NaCl"), formula_key("NaCl3")]]})
    proposals = pd.DataFrame({"formula": ["NaCl", "NaCl3", "Na2Cl"], "e_above_hull": [0.0, 0.3, 0.05],
                              "space_group_number": [225, 62, 12], "new": [False, False, True]})
    from pymatgen.core import Lattice, Structure

    rock_salt = Structure.from_spacegroup(225, Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    caesium_chloride = Structure.from_spacegroup(221, Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    result = {"systems": [{"system": "Cl-Na", "proposals": proposals, "structures": {"NaCl": rock_salt}}], "errors": {}}
    row = score_systems(result, chosen, {formula_key("NaCl"): {225}}, max_atoms=4, subsystems=False,
                        tolerance=0.1, true_structures={formula_key("NaCl"): [rock_salt.copy()]}).iloc[0]
    assert (row["with_structure"], row["structure_matched"]) == (1, 1)
    result["systems"][0]["structures"] = {"NaCl": caesium_chloride}  # the known formula in the wrong structure type
    wrong = score_systems(result, chosen, {formula_key("NaCl"): {225}}, max_atoms=4, subsystems=False,
                          tolerance=0.1, true_structures={formula_key("NaCl"): [rock_salt]}).iloc[0]
    assert (wrong["with_structure"], wrong["structure_matched"]) == (1, 0)
    assert (row["known"], row["proposed"], row["rediscovered"], row["structure_right"], row["new_stable"]) == (2, 2, 1, 1, 1)
    assert row["reachable"] == 1  # NaCl3 (a polyhalide) is not charge-balanced: the enumeration cannot reach it
