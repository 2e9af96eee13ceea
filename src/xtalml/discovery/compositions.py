"""The compositions of a chemical system: every reduced formula of its elements (and of its subsystems) up to a number
of atoms per formula unit, charge-balanced where the system has an anion."""

from __future__ import annotations

from functools import reduce
from itertools import combinations
from math import gcd
from typing import Iterable, Sequence

import numpy as np

from xtalml.chemistry import ATOMIC_NUMBER, ELEMENTS

# Elements that take a negative oxidation state in the compounds of our sources (halides, chalcogenides, pnictides):
# a system holding one is ionic, and only its charge-balanced compositions are kept.
ANIONS = frozenset({"N", "P", "As", "O", "S", "Se", "Te", "F", "Cl", "Br", "I"})
# Noble gases and elements past Bi (bar the common actinides) form almost no compounds in our sources.
NOT_SEARCHED = frozenset({"He", "Ne", "Ar", "Kr", "Xe", "Rn", "Po", "At", "Fr", "Ra", "Ac", "Pa", "Np", "Pu",
                          *ELEMENTS[94:]})


class ChemicalSystemError(ValueError):
    """A chemical system that cannot be searched; the message names the input and the problem."""


def parse_system(text: str, *, max_elements: int = 4) -> tuple[str, ...]:
    """The elements of a chemical system written 'Ca-Ti-O' (or 'CaTiO', 'Ca Ti O'), sorted by atomic number."""
    import re

    raw = str(text).strip()
    tokens = [t for t in re.split(r"[-\s,]+", raw) if t]
    if len(tokens) == 1:
        tokens = re.findall(r"[A-Z][a-z]?|[^A-Z]+", tokens[0])
    unknown = [t for t in tokens if t not in ATOMIC_NUMBER]
    if unknown or not tokens:
        raise ChemicalSystemError(f"chemical system {raw!r}: unknown element {', '.join(map(repr, unknown)) or '(none)'}"
                                  f"; write elements joined by '-', e.g. 'Ca-Ti-O'")
    if len(set(tokens)) != len(tokens):
        raise ChemicalSystemError(f"chemical system {raw!r}: an element is named twice")
    if len(tokens) < 2 or len(tokens) > max_elements:
        raise ChemicalSystemError(f"chemical system {raw!r}: {len(tokens)} element(s); give 2 to {max_elements}")
    excluded = [t for t in tokens if t in NOT_SEARCHED]
    if excluded:
        raise ChemicalSystemError(f"chemical system {raw!r}: {', '.join(excluded)} forms too few known compounds to "
                                  f"search (noble gases, elements past Bi bar Th and U)")
    return tuple(sorted(tokens, key=ATOMIC_NUMBER.__getitem__))


def system_name(elements: Iterable[str]) -> str:
    """'Ca-O-Ti': the elements in alphabetical order (pymatgen's chemical system)."""
    return "-".join(sorted(elements))


def formula_of(elements: Sequence[str], counts: Sequence[int]) -> str:
    """pymatgen's reduced formula of integer counts ('Ca', 'Ti', 'O'; 1, 1, 3 → 'CaTiO3')."""
    from pymatgen.core import Composition

    return Composition(dict(zip(elements, counts))).reduced_formula


def exact_counts(n: int, max_atoms: int) -> Iterable[tuple[int, ...]]:
    """Every tuple of n positive integers with sum at most max_atoms and greatest common divisor 1."""
    def rec(prefix: tuple[int, ...], left: int) -> Iterable[tuple[int, ...]]:
        if len(prefix) == n:
            if reduce(gcd, prefix) == 1:
                yield prefix
            return
        for c in range(1, left - (n - len(prefix) - 1) + 1):
            yield from rec(prefix + (c,), left - c)
    return rec((), max_atoms)


def enumerate_compositions(elements: Sequence[str], max_atoms: int, *, subsystems: bool = True) -> list[str]:
    """Reduced formulas with every element of the system (and, with subsystems, of each subsystem of two or more
    elements) and at most max_atoms atoms per formula unit; ordered by number of elements, atoms, then formula."""
    if max_atoms < len(elements):
        raise ValueError(f"max_atoms={max_atoms} is fewer than the {len(elements)} elements of the system")
    sizes = range(2, len(elements) + 1) if subsystems else (len(elements),)
    out = []
    for size in sizes:
        for subset in combinations(elements, size):
            for counts in exact_counts(size, max_atoms):
                out.append((size, sum(counts), formula_of(subset, counts)))
    return [f for _, _, f in sorted(set(out))]


def has_anion(elements: Iterable[str]) -> bool:
    """Whether a system holds an anion former (ANIONS)."""
    return bool(ANIONS & set(elements))


def charge_balanced(formulas: Sequence[str]) -> np.ndarray:
    """Whether one common oxidation state per element makes each formula neutral (matminer's IonProperty rule, as the
    composition features compute it)."""
    from xtalml.features.composition import composition_features

    if not len(formulas):
        return np.zeros(0, dtype=bool)
    table, errors = composition_features(list(formulas), groups=("ion_property",))
    balanced = table["ion_compound_possible"].to_numpy() == 1.0
    balanced[list(errors)] = False
    return balanced


def candidate_compositions(elements: Sequence[str], max_atoms: int, *, subsystems: bool = True) -> list[str]:
    """The compositions a discovery searches: enumerate_compositions, charge-balanced only where the system has an
    anion (an intermetallic system keeps them all)."""
    formulas = enumerate_compositions(elements, max_atoms, subsystems=subsystems)
    if not has_anion(elements):
        return formulas
    keep = charge_balanced(formulas)
    return [f for f, k in zip(formulas, keep) if k]
