"""Template library and template candidates: grouping, rejects, the target's own formula kept out, site assignment,
the Wyckoff prior, scoring, and PyXtal when a formula has no template."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from xtalml.structures.search import (SearchSettings, candidate_specs, dask_client, ranked_templates, relaxation_key,
                                     run_specs)
from xtalml.structures.templates import (describe_all, group_duplicates, library_table, mapping_distance,
                                         oxidation_states, periodic_distance, read_structures, site_assignments,
                                         template_options, template_structure, training_rows)
from xtalml.structures.wyckoff_prior import prior_sites

MATCHER = {"ltol": 0.2, "stol": 0.3, "angle_tol": 5}


def rock_salt(a: str, b: str, edge: float) -> Structure:
    return Structure.from_spacegroup(225, Lattice.cubic(edge), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def caesium_chloride(a: str, b: str, edge: float) -> Structure:
    return Structure.from_spacegroup(221, Lattice.cubic(edge), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def fluorite(a: str, b: str, edge: float) -> Structure:
    return Structure.from_spacegroup(225, Lattice.cubic(edge), [a, b], [[0, 0, 0], [0.25, 0.25, 0.25]])


@pytest.fixture(scope="module")
def library() -> pd.DataFrame:
    """NaCl and KCl (one rock-salt template of two members), CsCl, CaF2; an oversized cell rejected."""
    big = rock_salt("Na", "Cl", 5.6) * (3, 3, 3)
    big.perturb(0.4, min_distance=0.2)  # no longer a rock salt's symmetry: its primitive cell is 216 atoms
    entries = [("a1", rock_salt("Na", "Cl", 5.64), None), ("a2", rock_salt("K", "Cl", 6.29), None),
               ("a3", caesium_chloride("Cs", "Cl", 4.12), "CsCl (B2)"), ("a4", fluorite("Ca", "F", 5.46), "CaF2 (C1)"),
               ("a5", big, None)]
    rows, rejects = describe_all("amcsd", entries, 0.1, max_atoms=40)
    assert [r["source_id"] for r in rejects] == ["a5"] and "more than 40" in rejects[0]["reason"]
    groups = [g for formula in {r["anonymous_formula"] for r in rows}
              for g in group_duplicates([r for r in rows if r["anonymous_formula"] == formula], MATCHER)]
    return library_table(groups)


def test_duplicates_share_one_template_and_every_member_stays(library):
    assert library.groupby("template_id").size().sort_values().tolist() == [1, 1, 2]
    salt = library[library["reduced_formula"].isin(["NaCl", "KCl"])]
    assert salt["template_id"].nunique() == 1 and salt["members"].tolist() == [2, 2]
    assert salt["representative"].sum() == 1 and set(salt["space_group"]) == {225}
    assert library.loc[library["reduced_formula"] == "CsCl", "prototype"].item() == "CsCl (B2)"  # a label leads
    assert (library["wyckoff"] == "4a 4b").sum() == 2 and library["atoms"].max() <= 40


def test_only_ordered_train_structures_become_templates_and_the_rest_are_rejects(tmp_path):
    from pymatgen.io.cif import CifWriter

    disordered = Structure.from_spacegroup(225, Lattice.cubic(6.0), [{"Na": 0.5, "K": 0.5}, "Cl"],
                                           [[0, 0, 0], [0.5, 0.5, 0.5]])
    (tmp_path / "cifs").mkdir()
    for name, structure in (("a", rock_salt("Na", "Cl", 5.64)), ("d", disordered), ("b", rock_salt("K", "Cl", 6.29))):
        CifWriter(structure).write_file(tmp_path / "cifs" / f"{name}.cif")
    (tmp_path / "cifs" / "x.cif").write_text("data_x\n_cell_length_a oops\n")
    ids = ["a", "d", "b", "x", "huge"]
    pd.DataFrame({"id": ids, "path": [f"cifs/{i}.cif" for i in ids]}).to_csv(tmp_path / "manifest.csv", index=False)
    pd.DataFrame({"id": ids, "atoms_in_cell": [8.0, 8.0, 8.0, 8.0, 500.0]}).to_parquet(tmp_path / "s.parquet")
    pd.DataFrame({"id": ids, "part": ["train", "train", "test", "train", "train"]}).to_parquet(tmp_path / "p.parquet")
    rows = training_rows(tmp_path / "s.parquet", tmp_path / "p.parquet")
    assert rows["id"].tolist() == ["a", "d", "x", "huge"]  # b is a test structure: never a template
    found, rejects = read_structures(rows, tmp_path, max_atoms=40)
    assert [f[0] for f in found] == ["a"]
    assert {r["source_id"]: r["reason"] for r in rejects} == {
        "d": "disordered (partial occupancies)", "x": "pymatgen cannot read the CIF", "huge": "more than 80 atoms in the cell"}


def test_the_targets_own_formula_is_never_a_template_for_it(library):
    options = template_options("NaCl", library)
    assert {o["space_group"] for o in options} == {225, 221} and any(o["known"] for o in options)
    held_out = template_options("NaCl", library, exclude_formula="NaCl")
    salt = next(o for o in held_out if o["space_group"] == 225)
    assert salt["member"].startswith("KCl") and salt["mapping"] == {"K": "Na", "Cl": "Cl"}  # substituted from KCl
    assert template_options("LiF", library, exclude_formula="LiF")[0]["known"] is False


def test_elements_go_to_the_sites_of_their_nearest_like(library):
    [(mapping, distance), (swapped, further)] = site_assignments({"K": 1, "Br": 1}, {"Na": 1, "Cl": 1})
    assert mapping == {"Na": "K", "Cl": "Br"} and swapped == {"Na": "Br", "Cl": "K"} and distance < further
    spinel = site_assignments({"Co": 1, "Al": 2, "O": 4}, {"Mg": 1, "Al": 2, "O": 4})
    assert spinel[0][0] == {"Mg": "Co", "Al": "Al", "O": "O"} and len(spinel) == 1  # one element per amount
    assert site_assignments({"K": 1, "Br": 1}, {"Ca": 1, "F": 2}) == []  # other amounts: no assignment
    [option] = [o for o in template_options("Li2O", library) if o["space_group"] == 225]
    assert option["mapping"] == {"Ca": "O", "F": "Li"}  # antifluorite: Li on fluorine's 8c sites
    structure = template_structure(option, volume_per_atom=8.0)
    assert structure.composition.reduced_formula == "Li2O" and structure.volume == pytest.approx(8.0 * len(structure))


def test_oxidation_states_put_cations_on_the_sites_of_their_charge():
    assert oxidation_states({"Ca": 1, "Ti": 1, "O": 3}) == {"Ca": 2.0, "Ti": 4.0, "O": -2.0}
    assert oxidation_states({"Ni": 1, "Al": 1}) == {}  # an intermetallic balances no charges
    by_properties = {"properties": 1.0}
    with_oxidation = {"properties": 1.0, "oxidation": 1.0}
    # LiNbO3 on ilmenite FeTiO3: electronegativity and radius put Nb on Fe's site; charges put Li+ there (Fe2+)
    assert site_assignments({"Li": 1, "Nb": 1, "O": 3}, {"Fe": 1, "Ti": 1, "O": 3}, weights=by_properties)[0][0] == {
        "Fe": "Nb", "Ti": "Li", "O": "O"}
    assert site_assignments({"Li": 1, "Nb": 1, "O": 3}, {"Fe": 1, "Ti": 1, "O": 3}, weights=with_oxidation)[0][0] == {
        "Fe": "Li", "Ti": "Nb", "O": "O"}
    # delafossite CuAlO2 on LiCoO2: Cu+ on Li+'s site, Al3+ on Co3+'s
    assert site_assignments({"Cu": 1, "Al": 1, "O": 2}, {"Li": 1, "Co": 1, "O": 2}, weights=with_oxidation)[0][0] == {
        "Li": "Cu", "Co": "Al", "O": "O"}
    states = oxidation_states({"K": 1, "Br": 1}), oxidation_states({"Na": 1, "Cl": 1})
    only = {"oxidation": 1.0}
    assert mapping_distance({"Na": "K", "Cl": "Br"}, states[1], states[0], only) == 0.0
    assert mapping_distance({"Na": "Br", "Cl": "K"}, states[1], states[0], only) == 2.0  # +1 on -1 and back
    assert mapping_distance({"Ni": "Co", "Al": "Ga"}, {}, {}, only) == 0.0  # neither balances: no evidence
    assert mapping_distance({"Na": "Co", "Cl": "Ga"}, states[1], {}, only) == 1.0  # one ionic, one not


def test_periodic_number_neighbours_are_pettifors():
    assert periodic_distance("Na", "K") < periodic_distance("Na", "Mg") < periodic_distance("Na", "Cl")
    assert periodic_distance("Cl", "Br") == periodic_distance("Br", "Cl") > 0 and periodic_distance("O", "O") == 0.0
    [(near, d_near), (far, d_far)] = site_assignments({"K": 1, "Br": 1}, {"Na": 1, "Cl": 1}, weights={"periodic": 1.0})
    assert near == {"Na": "K", "Cl": "Br"} and d_near < d_far


def test_several_assignments_per_template_are_distinct_ways_onto_one_member(library):
    one = template_options("KBr", library, exclude_formula="KBr")
    two = template_options("KBr", library, exclude_formula="KBr", per_template=2)
    assert len(two) == 2 * len(one) and {o["template_id"] for o in two} == {o["template_id"] for o in one}
    salt = [o for o in two if o["space_group"] == 225]
    assert salt[0]["member"] == salt[1]["member"] and salt[0]["mapping"] != salt[1]["mapping"]
    assert salt[0]["distance"] <= salt[1]["distance"] and salt[0]["mapping"] == one[[o["space_group"] for o in one].index(225)]["mapping"]


def test_wyckoff_prior_draws_positions_that_hold_the_counts():
    rng = np.random.default_rng(0)
    sites = prior_sites(225, [8, 4], rng)  # Li2O-like: 8 + 4 atoms in Fm-3m's conventional cell
    assert sites is not None and sites[0] == ["8c"] and sites[1][0] in ("4a", "4b")
    assert prior_sites(225, [5, 4], rng) is None  # no combination of Fm-3m positions holds 5 atoms
    draws = {tuple(prior_sites(62, [4, 4, 12], np.random.default_rng(seed))[2]) for seed in range(20)}
    assert len(draws) > 1 and all(sum(int(w[:-1]) for w in d) == 12 for d in draws)  # drawn, not fixed


def test_candidates_rank_templates_by_the_space_group_model_and_fill_with_pyxtal(library):
    settings = SearchSettings(candidates=4, templates=4, max_atoms=16, steps=5,
                              template_weights={"space_group": 1.0, "substitution": 1.0, "members": 0.0})
    options = template_options("KBr", library)
    classes, proba = np.array(["221", "225", "62"]), np.array([0.7, 0.2, 0.1])
    ours = candidate_specs("KBr", "ours", settings, volume_per_atom=30.0, proba=proba, classes=classes, templates=options)
    assert [s["source"] for s in ours] == ["template", "template", "pyxtal", "pyxtal"]
    assert [s["group"] for s in ours[:2]] == [221, 225]  # the model's 0.7 for Pm-3m outweighs the nearer rock salt
    assert ours[0]["template_id"] and ours[0]["prototype"] == "CsCl (B2)" and all(s["sites"] for s in ours[2:])
    assert not any(s["fix_symmetry"] for s in ours)
    kept = candidate_specs("KBr", "ours", dataclasses.replace(settings, fix_symmetry_pyxtal=True), volume_per_atom=30.0,
                           proba=proba, classes=classes, templates=options)
    assert [s["fix_symmetry"] for s in kept] == [False, False, True, True]  # random structures keep their group
    no_model = candidate_specs("KBr", "templates_only", settings, volume_per_atom=30.0, proba=proba, classes=classes,
                               templates=options)
    assert no_model[0]["group"] == 225  # without the model, the nearest elements (K, Cl) win
    oracle = candidate_specs("KBr", "oracle", settings, volume_per_atom=30.0, true_group=225, templates=options)
    assert [s["group"] for s in oracle] == [225] * 4 and oracle[0]["source"] == "template"
    scores = [o["score"] for o in ranked_templates(options, {221: 0.7, 225: 0.2}, settings.template_weights)]
    assert scores == sorted(scores, reverse=True)


def test_arms_that_try_the_same_template_share_one_relaxation(library):
    settings = SearchSettings(candidates=2, templates=2, max_atoms=16, steps=3)
    options = template_options("KBr", library)
    classes, proba = np.array(["221", "225"]), np.array([0.3, 0.7])
    ours = candidate_specs("KBr", "ours", settings, volume_per_atom=30.0, proba=proba, classes=classes, templates=options)
    oracle = candidate_specs("KBr", "oracle", settings, volume_per_atom=30.0, true_group=225, templates=options)
    assert ours[0]["template_id"] == oracle[0]["template_id"] and ours[0]["seed"] != oracle[0]["seed"]
    assert relaxation_key(ours[0]) == relaxation_key(oracle[0]) and relaxation_key(oracle[1]) is None  # PyXtal: own
    with dask_client(n_workers=1) as client:
        results = run_specs(client, [*ours, *oracle], 600)
    shared = [r for r in results if r["template_id"] == ours[0]["template_id"]]
    assert [r["arm"] for r in shared] == ["ours", "oracle"] and shared[0]["structure"] == shared[1]["structure"]
    assert shared[0]["seconds"] == shared[1]["seconds"] > 0  # the one relaxation counts for both arms' budgets
    assert [r["index"] for r in results] == [0, 1, 0, 1]


def test_a_formula_without_templates_gets_pyxtal_candidates(library):
    settings = SearchSettings(candidates=3, max_atoms=60)
    assert template_options("MgAl2O4", library) == []
    specs = candidate_specs("MgAl2O4", "ours", settings, volume_per_atom=10.0, proba=np.array([1.0]),
                            classes=np.array(["227"]), templates=[])
    assert [s["source"] for s in specs] == ["pyxtal"] * 3 and {s["group"] for s in specs} == {227}


def test_generate_leaves_out_the_formulas_own_templates_when_a_benchmark_asks(library):
    from xtalml.structures.search import generate_structures

    estimates = {"errors": {}, "features": None, "volume_per_atom": np.array([22.6]),
                 "space_group_proba": np.array([[0.3, 0.7]]), "space_group_classes": np.array(["221", "225"])}
    settings = SearchSettings(candidates=2, templates=2, max_atoms=16, steps=20, short_steps=2, full_relaxations=1)
    with dask_client(n_workers=1) as client:
        own = generate_structures(["NaCl"], estimates, None, settings, client, library=library)
        held_out = generate_structures(["NaCl"], estimates, None, settings, client, library=library,
                                       exclude_own_formula=True)
    assert any(c["known"] for c in own["structures"][0]["candidates"])
    rows = held_out["structures"][0]["candidates"]
    assert rows and not any(c["known"] for c in rows)
    assert [c["relaxation"] for c in rows].count("full") == 1  # staged: the best one relaxed on, the rest marked
    assert {c["relaxation"] for c in rows} <= {"full", "short"}


def test_candidates_span_the_models_most_probable_groups_when_asked(library):
    options = template_options("KBr", library)  # rock salt (225) and CsCl (221): no template in Pnma (62)
    classes, proba = np.array(["62", "225", "221", "216"]), np.array([0.4, 0.3, 0.2, 0.1])
    settings = SearchSettings(candidates=2, templates=2, max_atoms=16)
    crowded = candidate_specs("KBr", "ours", settings, volume_per_atom=30.0, proba=proba, classes=classes,
                              templates=options)
    assert [(s["source"], s["group"]) for s in crowded] == [("template", 225), ("template", 221)]  # 62 never tried
    settings.cover_groups = 2
    covering = candidate_specs("KBr", "ours", settings, volume_per_atom=30.0, proba=proba, classes=classes,
                               templates=options)
    assert sorted((s["source"], s["group"]) for s in covering) == [("pyxtal", 62), ("template", 225)]
    assert next(s for s in covering if s["group"] == 62)["p_group"] == pytest.approx(0.4)
    settings.candidates, settings.cover_groups = 4, 3  # room left: the other templates by score, then PyXtal
    wider = candidate_specs("KBr", "ours", settings, volume_per_atom=30.0, proba=proba, classes=classes,
                            templates=options)
    assert [s["group"] for s in wider if s["source"] == "template"] == [225, 221] and len(wider) == 4
    assert {s["group"] for s in wider} >= {62, 225, 221}
