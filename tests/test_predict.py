"""The headline answer of `predict`: a Bravais lattice and a space group that never contradict each other."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from xtalml.cif.symmetry import space_group_info
from xtalml.predict import lattice_and_group, load_predictor, predict_formulas

from conftest import CHOICE

GROUPS = np.array(["14", "2", "1", "225", "62", "other"])  # mP, aP, aP, cF, oP, a merged class


def test_the_group_is_the_best_one_of_the_chosen_lattice():
    proba = np.array([0.30, 0.25, 0.25, 0.10, 0.05, 0.05])
    summed = lattice_and_group(proba, GROUPS)  # no Bravais model: aP (0.50) beats mP (0.30)
    assert summed["bravais_lattice"] == "aP" and summed["space_group"]["number"] == 2
    told = lattice_and_group(proba, GROUPS, {"cF": 0.6, "mP": 0.3, "aP": 0.1})  # the Bravais model decides
    assert told["bravais_lattice"] == "cF" and told["space_group"]["number"] == 225


def test_a_lattice_no_group_belongs_to_is_never_named():
    proba = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.5])
    answer = lattice_and_group(proba, GROUPS, {"tI": 0.9, "oP": 0.1})
    assert answer["bravais_lattice"] == "oP" and answer["space_group"]["number"] == 62


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.floats(0, 1), min_size=6, max_size=6), st.lists(st.floats(0, 1), min_size=4, max_size=4),
       st.booleans())
def test_lattice_and_group_always_agree(group_weights, lattice_weights, with_lattice_model):
    proba = np.array(group_weights) + 1e-9
    lattices = dict(zip(["mP", "aP", "cF", "hR"], lattice_weights)) if with_lattice_model else None
    answer = lattice_and_group(proba / proba.sum(), GROUPS, lattices)
    group = answer["space_group"]
    assert group["lattice"] == answer["bravais_lattice"] == space_group_info(group["number"])[2]


def test_predict_gives_every_formula_a_consistent_headline(models_dir):
    predictor = load_predictor(models_dir, CHOICE)
    answers, errors = predict_formulas(predictor, ["NaCl", "Fe2O3", "SiO2", "CaTiO3", "Mg2SiO4"])
    assert not errors
    for answer in answers:
        headline = answer["prediction"]
        assert headline["space_group"]["lattice"] == headline["bravais_lattice"]
        assert headline["space_group"]["p"] <= answer["space_group_top5"][0]["p"]
