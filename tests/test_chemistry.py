import pytest
from pymatgen.core import Composition

from xtalml.chemistry import FormulaError, hill_formula, parse_formula, reduced_formula


def test_amounts_equal_pymatgen_on_every_real_formula(real_formulas):
    checked = 0
    for formula in real_formulas:
        try:
            ours = parse_formula(formula)
        except FormulaError:
            continue
        theirs = Composition(formula).get_el_amt_dict()
        assert ours.keys() == theirs.keys(), formula
        assert all(abs(ours[k] - theirs[k]) < 1e-9 for k in ours), formula
        checked += 1
    assert checked > 70_000


@pytest.mark.parametrize("formula,expected", [
    ("CaMg(SiO3)2", {"Ca": 1, "Mg": 1, "Si": 2, "O": 6}),
    ("Ca2 Al2 Si3 O12 H2", {"Ca": 2, "Al": 2, "Si": 3, "O": 12, "H": 2}),
    ("K[Fe(CN)6]", {"K": 1, "Fe": 1, "C": 6, "N": 6}),
    ("Ca3.48Mg4.52Si8O24", {"Ca": 3.48, "Mg": 4.52, "Si": 8, "O": 24}),
])
def test_parse_formula(formula, expected):
    assert parse_formula(formula) == pytest.approx(expected)


@pytest.mark.parametrize("formula,message", [
    ("", "empty formula"), ("D2O", "hydrogen isotope"), ("Xx2O", "unknown element 'Xx'"),
    ("Fe0O", "zero amount"), ("H2O)", "unbalanced"), ("(H2O", "unclosed"), ("Fe2O3·H2O", "unexpected character"),
    ("2H2O", "does not follow"),
])
def test_bad_formulas_name_the_input_and_problem(formula, message):
    with pytest.raises(FormulaError, match=message) as err:
        parse_formula(formula)
    assert repr(formula) in str(err.value) or formula == ""


def test_reduced_and_hill_formula():
    assert reduced_formula("Ca2 Mg2 Si4 O12") == Composition("CaMgSi2O6").reduced_formula
    assert hill_formula({"O": 2, "H": 6, "C": 2}) == "C2 H6 O2"
    assert hill_formula({"Si": 1, "O": 2}) == "O2 Si"
