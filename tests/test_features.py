import warnings

import numpy as np
import pandas as pd
import pytest
from matminer.featurizers.composition import ElementProperty, IonProperty, Stoichiometry, ValenceOrbital
from pymatgen.core import Composition

from xtalml.chemistry import FormulaError, parse_formula
from xtalml.features.composition import composition_features, element_tokens, feature_names, formula_arrays
from xtalml.features.geometry import GEOMETRY_FEATURES, geometry_features
from xtalml.features.table import build_feature_table, check_no_label_features


def _matminer(formulas):
    featurizers = [ElementProperty.from_preset("magpie"), Stoichiometry(), ValenceOrbital(), IonProperty(fast=True)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([[v for f in featurizers for v in f.featurize(Composition(formula))] for formula in formulas], float)


def test_composition_features_equal_matminer_on_real_formulas(real_formulas):
    rng = np.random.default_rng(7)
    good = [f for f in dict.fromkeys(real_formulas) if _parses(f)]
    sample = list(rng.choice(good, 550, replace=False)) + ["Si", "Fe3O4", "NaCl", "XeF2", "HeNe"]
    matminer_groups = ["magpie", "stoichiometry", "valence_orbital", "ion_property"]
    ours, errors = composition_features(sample, matminer_groups)
    assert errors == {}
    assert list(ours.columns) == feature_names(matminer_groups) and ours.shape[1] == 132 + 6 + 8 + 3
    reference = _matminer(sample)
    assert np.isnan(ours.to_numpy()).sum() == np.isnan(reference).sum() == 0
    np.testing.assert_allclose(ours.to_numpy(), reference, rtol=0, atol=1e-9)


def test_formula_amounts_are_those_of_pymatgens_reduced_formula(real_formulas):
    rng = np.random.default_rng(11)
    good = [f for f in dict.fromkeys(real_formulas) if _parses(f)]
    sample = list(rng.choice(good, 300, replace=False)) + ["Fe2O3", "Ca2Ti2O6", "Fe0.94O", "NaCl", "Si"]
    ours, errors = composition_features(sample, ["formula_amounts"])
    assert errors == {} and ours.shape[1] == 1 + 2 * 6
    for formula, row in zip(sample, ours.to_numpy()):
        amounts = sorted(Composition(formula).reduced_composition.values(), reverse=True)
        expected = (amounts + [0.0] * 6)[:6]
        np.testing.assert_allclose(row, [sum(amounts), *expected, *np.array(expected) / sum(amounts)], atol=1e-9,
                                   err_msg=formula)
    named = dict(zip(sample, ours.to_numpy()))
    np.testing.assert_array_equal(named["Ca2Ti2O6"][:4], [5, 3, 1, 1])  # CaTiO3: same fractions, a formula unit of 5
    np.testing.assert_allclose(named["Fe0.94O"][:3], [1.94, 1, 0.94])  # non-integer amounts stay as written


def _parses(formula):
    try:
        parse_formula(formula)
        return True
    except FormulaError:
        return False


def test_bad_formulas_are_reported_not_featurized():
    table, errors = composition_features(["NaCl", "D2O", "Qq", "Fe2O3"])
    assert set(errors) == {1, 2} and "hydrogen isotope" in errors[1]
    assert table.iloc[[0, 3]].notna().all().all() and table.iloc[[1, 2]].isna().all().all()
    with pytest.raises(ValueError, match="unknown composition feature group"):
        composition_features(["NaCl"], ["magpie", "nonsense"])


def test_one_parse_feeds_both_composition_blocks():
    formulas = ["NaCl", "Qq", "Fe2O3", "Ba2YCu3O7"]
    parsed = formula_arrays(formulas)
    parse_errors = dict(parsed[2])
    table, errors = composition_features(formulas, parsed=parsed)
    pd.testing.assert_frame_equal(table, composition_features(formulas)[0])
    pd.testing.assert_frame_equal(element_tokens(formulas, parsed=parsed), element_tokens(formulas))
    assert set(errors) == {1} and parsed[2] == parse_errors  # the caller's parse is not extended


def test_geometry_features():
    cells = pd.DataFrame({"a": [4.0, 5.0], "b": [4.0, 6.0], "c": [4.0, 7.0],
                          "alpha": [90.0, 90.0], "beta": [90.0, 100.0], "gamma": [90.0, 90.0]})
    geom = geometry_features(cells)
    assert list(geom.columns) == list(GEOMETRY_FEATURES)
    assert geom["geom_volume_analytic"].tolist() == pytest.approx([64.0, 5 * 6 * 7 * np.sin(np.radians(100))])
    assert geom.loc[0, "geom_shape_factor"] == pytest.approx(1.0)
    assert geom.loc[1, "geom_anisotropy_ac"] == pytest.approx(2 / 12)
    assert geom.loc[1, "geom_cos_beta"] == pytest.approx(np.cos(np.radians(100)))


def _structures(n=40, seed=0):
    rng = np.random.default_rng(seed)
    formulas = ["Si O2", "Na Cl", "Ca Mg Si2 O6", "Fe2 O3", "Al2 O3", "Mg2 Si O4", "Ca C O3", "Ti O2"]
    rows = []
    for i in range(n):
        sg = int(rng.integers(1, 231))
        rows.append({"id": f"s{i}", "source": "test", "formula_sum": formulas[i % 8], "formula": formulas[i % 8],
                     "reduced_formula": formulas[i % 8].replace(" ", ""), "formula_error": None,
                     "a": rng.uniform(3, 12), "b": rng.uniform(3, 12), "c": rng.uniform(3, 12),
                     "alpha": 90.0, "beta": rng.uniform(90, 120), "gamma": 90.0, "volume_given": rng.uniform(50, 900),
                     "volume_cell": rng.uniform(50, 900), "atoms_in_cell": 12.0, "sg_number": sg,
                     "sg_symbol": f"S{sg}", "crystal_system": "monoclinic", "bravais_lattice": "mP",
                     "year": 2000.0, "e_above_hull": np.nan})
    return pd.DataFrame(rows)


def test_no_feature_is_derived_from_the_targets():
    structures = _structures()
    features, schema, _ = build_feature_table(structures)
    scrambled = structures.copy()
    rng = np.random.default_rng(1)
    scrambled["sg_number"] = rng.permutation(scrambled["sg_number"].to_numpy())
    scrambled["sg_symbol"] = "P 1 hall: P 1"
    scrambled["crystal_system"] = "cubic"
    scrambled["bravais_lattice"] = "cF"
    again, _, _ = build_feature_table(scrambled)
    columns = schema["features"]["geometry"] + schema["features"]["composition"]
    pd.testing.assert_frame_equal(features[columns], again[columns])  # features ignore every label column
    assert not set(columns) & set(schema["targets"])


def test_label_named_columns_are_refused():
    schema = {"targets": ["sg_number"], "features": {"geometry": ["geom_a", "sg_symbol_code"], "composition": []}}
    with pytest.raises(ValueError, match="derived from the targets"):
        check_no_label_features(schema)
    schema["features"]["geometry"] = ["geom_a", "hall_symbol_encoded"]
    with pytest.raises(ValueError, match="hall_symbol_encoded"):
        check_no_label_features(schema)


def test_feature_table_rejects_bad_formulas_with_reason():
    structures = _structures(10)
    structures.loc[3, "formula_error"] = "formula 'D2O': D (hydrogen isotope) is not an element; write H"
    features, schema, rejects = build_feature_table(structures)
    assert len(features) == 9 and rejects["id"].tolist() == ["s3"] and "hydrogen isotope" in rejects["reason"].iloc[0]
    assert features["volume_per_atom"].iloc[0] == pytest.approx(features["volume"].iloc[0] / 12)
