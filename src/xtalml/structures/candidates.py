"""Candidate (space group, formula units) pairs for a formula: the groups a search tries, in an order whose every
prefix is a smaller budget of the same search, and only cells whose atom counts the group's Wyckoff positions allow."""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import gcd
from typing import Sequence

import numpy as np

from xtalml.chemistry import FormulaError, parse_formula


class CandidateError(ValueError):
    """A formula that no candidate can be made for; the message says why."""


def formula_counts(formula: str, max_atoms: int) -> tuple[list[str], list[int]]:
    """Elements and integer atom counts of the smallest ordered cell content (one formula unit) of a formula.

    A fractional amount is scaled up to integers when the result still fits max_atoms; otherwise the formula is
    disordered for this search and raises CandidateError, as does an unknown element.
    """
    try:
        amounts = parse_formula(formula)
    except FormulaError as exc:
        raise CandidateError(str(exc)) from None
    if not amounts:
        raise CandidateError(f"formula {formula!r} names no element")
    fractions = [Fraction(v).limit_denominator(1000) for v in amounts.values()]
    if any(abs(float(f) - v) > 1e-4 for f, v in zip(fractions, amounts.values())):
        raise CandidateError(f"formula {formula!r}: amounts are not ratios of small integers")
    scale = 1
    for f in fractions:
        scale = scale * f.denominator // gcd(scale, f.denominator)
    counts = [int(f * scale) for f in fractions]
    divisor = 0
    for c in counts:
        divisor = gcd(divisor, c)
    counts = [c // divisor for c in counts]
    if sum(counts) > max_atoms:
        why = ("a fractional or disordered formula needs a supercell: no ordered cell within max_atoms holds it"
               if scale > 1 else "one formula unit is larger than the search's cells")
        raise CandidateError(f"formula {formula!r}: its smallest ordered cell holds {sum(counts)} atoms, more than "
                             f"max_atoms={max_atoms} ({why})")
    return list(amounts), counts


@lru_cache(maxsize=None)
def _group(number: int):
    from pyxtal.symmetry import Group

    return Group(int(number))


CENTRING = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "F": 4, "R": 3}  # lattice points per conventional cell (R: hexagonal)


def lattice_points(number: int) -> int:
    """Lattice points in the group's conventional cell (PyXtal's setting): its atoms over its primitive cell's."""
    return CENTRING[_group(number).symbol[0]]


@lru_cache(maxsize=100_000)
def compatible_units(number: int, counts: tuple[int, ...], max_atoms: int) -> tuple[int, ...]:
    """Formula units Z (of the conventional cell) for which the group's Wyckoff multiplicities can hold Z * counts
    atoms, with at most max_atoms atoms in the primitive cell (the cell that is relaxed), smallest first."""
    per_unit = sum(counts)
    out = []
    for z in range(1, max_atoms * lattice_points(number) // per_unit + 1):
        compatible, _ = _group(number).check_compatible([z * c for c in counts])
        if compatible:
            out.append(z)
    return tuple(out)


def allocate(weights: dict[int, float], budget: int) -> list[int]:
    """Groups for `budget` candidates in proportion to their weights, in an order whose prefixes are proportional too
    (D'Hondt: each next candidate goes to the group with the largest weight / (candidates so far + 1))."""
    given = {g: 0 for g in weights}
    order = []
    for _ in range(budget):
        group = max(weights, key=lambda g: (weights[g] / (given[g] + 1), -g))
        given[group] += 1
        order.append(group)
    return order


def top_groups(proba: np.ndarray, classes: Sequence[str], mass: float, top_k: int) -> dict[int, float]:
    """The most probable space groups until their probabilities add up to `mass`, at most top_k ('other' skipped)."""
    numbered = [(float(p), int(c)) for p, c in zip(proba, classes) if str(c).isdigit() and p > 0]
    numbered.sort(key=lambda pc: (-pc[0], pc[1]))
    chosen, total = {}, 0.0
    for p, c in numbered[:top_k]:
        chosen[c] = p
        total += p
        if total >= mass:
            break
    return chosen


def plan_candidates(counts: Sequence[int], weights: dict[int, float], budget: int, max_atoms: int,
                    units_per_group: int = 2) -> list[tuple[int, int]]:
    """(space group, Z) for each of `budget` candidates: groups with no compatible Z are dropped, the others share
    the budget by weight, and each group cycles through its units_per_group smallest compatible Z values."""
    usable = {g: w for g, w in weights.items() if compatible_units(g, tuple(counts), max_atoms)}
    if not usable:
        raise CandidateError(f"no group among {sorted(weights)} has Wyckoff positions for these atom counts within "
                             f"max_atoms={max_atoms}")
    seen: dict[int, int] = {}
    plan = []
    for group in allocate(usable, budget):
        units = compatible_units(group, tuple(counts), max_atoms)[:units_per_group]
        plan.append((group, units[seen.get(group, 0) % len(units)]))
        seen[group] = seen.get(group, 0) + 1
    return plan


def random_groups(frequencies: dict[int, float], counts: Sequence[int], budget: int, max_atoms: int,
                  rng: np.random.Generator, units_per_group: int = 2) -> list[tuple[int, int]]:
    """Random search: each candidate's group drawn from the training rows' space-group frequencies (groups that cannot
    hold the atom counts are drawn again), its Z drawn among the units_per_group smallest compatible ones."""
    groups = np.array(sorted(frequencies))
    p = np.array([frequencies[g] for g in groups], float)
    usable = np.array([bool(compatible_units(int(g), tuple(counts), max_atoms)) for g in groups])
    if not usable.any():
        raise CandidateError(f"no space group has Wyckoff positions for these atom counts within max_atoms={max_atoms}")
    p = np.where(usable, p, 0.0)
    p /= p.sum()
    plan = []
    for group in rng.choice(groups, size=budget, p=p):
        units = compatible_units(int(group), tuple(counts), max_atoms)[:units_per_group]
        plan.append((int(group), int(rng.choice(units))))
    return plan


