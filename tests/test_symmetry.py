from collections import Counter

import gemmi
import pytest

from xtalml.cif.symmetry import SymmetryError, resolve_space_group, space_group_info

# Number of space groups per Bravais lattice (International Tables, vol. A)
EXPECTED = {"aP": 2, "mP": 8, "mC": 5, "oP": 30, "oC": 15, "oF": 5, "oI": 9, "tP": 49, "tI": 19,
            "hR": 7, "hP": 45, "cP": 15, "cF": 11, "cI": 10}


def test_all_230_groups_map_to_the_14_bravais_lattices():
    lattices = {n: space_group_info(n)[2] for n in range(1, 231)}
    assert Counter(lattices.values()) == EXPECTED
    assert [n for n, lat in lattices.items() if lat == "hR"] == [146, 148, 155, 160, 161, 166, 167]
    assert {lattices[n] for n in (38, 39, 40, 41)} == {"oC"}  # A-centred groups are base-centred


@pytest.mark.parametrize("number,symbol,system", [
    (14, "P21/c", "monoclinic"), (167, "R-3c", "trigonal"), (225, "Fm-3m", "cubic"), (2, "P-1", "triclinic")])
def test_standard_symbols(number, symbol, system):
    assert space_group_info(number)[:2] == (symbol, system)


def test_settings_resolve_to_the_same_number():
    rhombohedral = gemmi.UnitCell(5.4, 5.4, 5.4, 55, 55, 55)
    hexagonal = gemmi.UnitCell(4.76, 4.76, 12.99, 90, 90, 120)
    assert resolve_space_group([], None, "R -3 c", None, hexagonal) == (167, "hm")
    assert resolve_space_group([], None, "R -3 c", None, rhombohedral)[0] == 167
    a_centred_p1bar = [op.triplet() for op in gemmi.find_spacegroup_by_name("A -1").operations()]
    assert resolve_space_group(a_centred_p1bar, None, None, None)[0] == 2
    b112m = [op.triplet() for op in gemmi.find_spacegroup_by_name("B 1 1 2/m").operations()]
    assert resolve_space_group(b112m, None, "B 1 1 2/m", 12)[0] == 12
    assert resolve_space_group([], "-P 2ybc", None, None) == (14, "hall")
    assert resolve_space_group([], None, None, "62") == (62, "number")


def test_missing_or_bad_symmetry_is_an_error():
    with pytest.raises(SymmetryError, match="no space-group information"):
        resolve_space_group([], None, None, None)
    with pytest.raises(SymmetryError, match="not recognised"):
        resolve_space_group([], None, "Q 9 9", None)
    with pytest.raises(SymmetryError):
        space_group_info(231)
