"""Element-embedding feature sets: equal to CBFV's generate_features on real formulas; rules for gaps."""

import importlib
import io
import sys
import types
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

from xtalml.chemistry import FormulaError, hill_formula, parse_formula
from xtalml.config import compose
from xtalml.features.composition import composition_features, feature_names
from xtalml.features.embeddings import EMBEDDING_STATS, load_element_table, parse_element_table, table_specs
from xtalml.features.table import build_feature_table
from xtalml.sources.wheels import fetch_wheel

DECLARED = compose()["featurize"]["element_tables"]  # as params.yaml holds them
TABLES = table_specs(DECLARED)
CBFV_SETS = [name for name, spec in TABLES.items() if spec["wheel"].startswith("CBFV==")]


@pytest.fixture(scope="module")
def cbfv(tmp_path_factory):
    """CBFV's own code and tables from its pinned wheel, imported from a temporary folder (never installed)."""
    spec = TABLES["oliynyk"]
    folder = tmp_path_factory.mktemp("cbfv")
    with zipfile.ZipFile(fetch_wheel(spec["wheel"], spec["sha256"])) as zf:
        zf.extractall(folder)
    shim = types.ModuleType("pkg_resources")  # CBFV reads its tables through pkg_resources, gone from setuptools
    shim.resource_stream = lambda package, name: io.BytesIO((folder / package.split(".")[0] / name).read_bytes())
    sys.modules.setdefault("pkg_resources", shim)
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("CBFV.composition"), folder
    finally:
        sys.path.remove(str(folder))


def _sample(real_formulas, n=550, seed=3):
    good = []
    for formula in dict.fromkeys(real_formulas):
        try:
            good.append(hill_formula(parse_formula(formula)))
        except FormulaError:
            continue
    rng = np.random.default_rng(seed)
    return list(rng.choice(good, n, replace=False))


@pytest.mark.parametrize("name", CBFV_SETS)
def test_pooled_features_equal_cbfv_generate_features(cbfv, real_formulas, name):
    module, folder = cbfv
    raw = pd.read_csv(folder / "CBFV" / "element_properties" / f"{name}.csv").set_index("element")
    sample = [f for f in _sample(real_formulas) if set(parse_formula(f)) <= set(raw.index)]
    assert len(sample) >= 500
    ours, errors = composition_features(sample, [name], TABLES)
    assert errors == {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, _, formulae, skipped = module.generate_features(pd.DataFrame({"formula": sample, "target": 0.0}),
                                                                 elem_prop=name)
    assert skipped == [] and list(formulae) == sample
    columns = list(raw.columns)
    # CBFV fills a pooled value that touched an empty table cell with the dataset's median; compare the rest
    touched = np.array([raw.loc[list(parse_formula(f))].isna().any().to_numpy() for f in sample])
    compared = 0
    for stat in EMBEDDING_STATS[:-1]:  # std is ours; CBFV has no std
        mine = ours[[f"{name}_{stat}_{c}" for c in columns]].to_numpy()
        cbfv_values = theirs[[f"{stat}_{c}" for c in columns]].to_numpy()
        np.testing.assert_allclose(mine[~touched], cbfv_values[~touched], rtol=1e-9, atol=1e-9)
        compared += (~touched).sum()
    assert compared > 0.9 * len(sample) * len(columns) * 6


def test_std_is_the_fraction_weighted_standard_deviation():
    table = load_element_table("megnet16", TABLES["megnet16"])
    features, _ = composition_features(["Fe2O3", "Si"], ["megnet16"], TABLES)
    frac = np.array([0.4, 0.6])
    vectors = table.values[[26, 8]]
    mean = frac @ vectors
    expected = np.sqrt(frac @ (vectors - mean) ** 2)
    np.testing.assert_allclose(features.iloc[0][[f"megnet16_std_{c}" for c in table.columns]], expected, atol=1e-12)
    single = features.iloc[1]
    assert (single[[f"megnet16_std_{c}" for c in table.columns]] == 0).all()
    np.testing.assert_allclose(single[[f"megnet16_avg_{c}" for c in table.columns]], table.values[14])


def test_empty_cells_take_the_column_mean_and_missing_elements_are_rejected(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("element,p,q\nH,1.0,\nO,3.0,4.0\nFe,5.0,8.0\nNull,9,9\n")
    table = parse_element_table("t", path)
    assert table.values[1].tolist() == [1.0, 6.0] and table.has[[1, 8, 26]].all() and table.has.sum() == 3
    features, errors = composition_features(["H2O", "OgF2", "Fe2O3"], ["megnet16", "skipatom"], TABLES)
    assert errors == {1: "formula OgF2: Og not in the megnet16 element table"}
    assert features.iloc[[0, 2]].notna().all().all() and features.iloc[1].isna().all()
    _, errors = composition_features(["He", "NaCl"], ["skipatom"], TABLES)
    assert errors == {0: "formula He: He not in the skipatom element table"}


def test_sets_are_config_and_the_schema_states_the_rules():
    structures = pd.DataFrame({"id": ["a", "b"], "source": "t", "formula": ["Fe2 O3", "Og"], "formula_sum": ["Fe2 O3", "Og"],
                               "reduced_formula": ["Fe2O3", "Og"], "formula_error": [None, None], "a": 5.0, "b": 5.0,
                               "c": 5.0, "alpha": 90.0, "beta": 90.0, "gamma": 90.0, "volume_given": 125.0,
                               "volume_cell": 125.0, "atoms_in_cell": 10.0, "sg_number": 1, "sg_symbol": "P1",
                               "crystal_system": "triclinic", "bravais_lattice": "aP", "year": 2000.0})
    features, schema, rejects = build_feature_table(structures, ["magpie", "megnet16"], True, TABLES)
    assert len(features) == 1 and rejects["reason"].tolist() == ["formula Og: Og not in the megnet16 element table"]
    assert schema["element_tables"]["sets"] == ["megnet16"] and "mean" in schema["element_tables"]["missing_cells"]
    assert schema["features"]["composition"] == feature_names(["magpie", "megnet16"], TABLES)
    with pytest.raises(ValueError, match="choose from .*oliynyk"):
        feature_names(["magpie", "nonsense"], TABLES)


def test_predict_featurizes_the_element_tables_its_models_were_trained_on(tmp_path, monkeypatch):
    import joblib
    import yaml
    from sklearn.linear_model import Ridge

    from xtalml.predict import feature_groups, load_predictor, predict_formulas

    formulas = ["NaCl", "Fe2O3", "SiO2", "MgO", "CaTiO3", "Al2O3"]
    names = feature_names(["magpie", "megnet16"], TABLES)
    X, _ = composition_features(formulas, ["magpie", "megnet16"], TABLES)
    task = "volume_per_atom_from_composition"
    (tmp_path / task).mkdir()
    joblib.dump({"model": Ridge().fit(X.to_numpy(), range(6)), "feature_names": names, "task": task,
                 "target": "volume_per_atom"}, tmp_path / task / "ridge.pkl")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"featurize": {"element_tables": DECLARED}}))
    monkeypatch.chdir(tmp_path)  # predict reads the tables from ./params.yaml, as the CLI does
    predictor = load_predictor(tmp_path, {task: "ridge"})
    groups, tables = feature_groups(predictor)
    assert groups[-1] == "megnet16" and list(tables) == ["megnet16"]
    answers, errors = predict_formulas(predictor, ["NaCl", "Qq"])
    assert errors and answers[0]["volume_per_atom"] is not None
