"""Magpie ElementProperty, Stoichiometry, ValenceOrbital and IonProperty, vectorised over many formulas, and the
amounts of the reduced formula.

Values equal matminer's featurizers (ElementProperty.from_preset("magpie"), Stoichiometry(),
ValenceOrbital(), IonProperty(fast=True)); the elemental tables are read from matminer's own data sources.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from xtalml.chemistry import ATOMIC_NUMBER, ELEMENTS, FormulaError, parse_formula, shorten
from xtalml.features.embeddings import EMBEDDING_STATS, ElementTable, load_element_table, pooled_features
from xtalml.progress import progress

MAGPIE_PROPERTIES = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row", "CovalentRadius",
    "Electronegativity", "NsValence", "NpValence", "NdValence", "NfValence", "NValence", "NsUnfilled",
    "NpUnfilled", "NdUnfilled", "NfUnfilled", "NUnfilled", "GSvolume_pa", "GSbandgap", "GSmagmom",
    "SpaceGroupNumber")
MAGPIE_STATS = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
STOICHIOMETRY_P = (0, 2, 3, 5, 7, 10)
ORBITALS = ("s", "p", "d", "f")
GROUPS = ("magpie", "stoichiometry", "valence_orbital", "ion_property")
# Its own feature group in the feature table (the symmetry tasks read it, the volume tasks do not); the ablation
# and predict compute it with the groups above.
AMOUNTS_GROUP = "formula_amounts"
FORMULA_AMOUNTS = 6  # largest amounts of the reduced formula kept as features (97% of COD formulas have at most 6 elements)
_CHARGE_CHUNK = 1 << 16
# Cap of the charge-balance search per half of a formula's elements: bounds featurize time per formula
# (about 0.1 s at the cap); formulas past it are rejected with the reason, never left to run for minutes.
MAX_CHARGE_SUMS = 1 << 17
_POOL_CHUNK = 1 << 19  # rows × elements × features pooled at once: temporaries stay small and warm in cache


def feature_names(groups: Sequence[str] = GROUPS, element_tables: Mapping[str, Any] | None = None) -> list[str]:
    """Column names of the composition features, in matminer's order within each group.

    element_tables (featurize.element_tables) declares the embedding sets a group may also name.
    """
    tables = element_tables or {}
    names: list[str] = []
    for group in groups:
        if group in FEATURE_GROUPS:
            names += FEATURE_GROUPS[group].names
        elif group in tables:
            names += load_element_table(group, tables[group]).feature_names()
        else:
            raise ValueError(f"unknown composition feature group {group!r}; "
                             f"choose from {', '.join((*FEATURE_GROUPS, *tables))}")
    return names


_saved_tables: Path | None = None  # a file save_elemental_tables wrote, read instead of matminer's tables


def save_elemental_tables(path: Path) -> None:
    """Write elemental_tables() to a JSON file (a predictor ships it: the same numbers, read without matminer)."""
    import json

    table, electroneg, oxidation = elemental_tables()
    Path(path).write_text(json.dumps({"table": table.tolist(), "electroneg": electroneg.tolist(),
                                      "oxidation": [list(states) for states in oxidation]}))


def use_saved_elemental_tables(path: Path) -> None:
    """Read elemental_tables() from a file save_elemental_tables wrote: importing matminer costs ~0.7 s."""
    global _saved_tables
    if _saved_tables != Path(path):
        _saved_tables = Path(path)
        elemental_tables.cache_clear()


@lru_cache(maxsize=1)
def elemental_tables() -> tuple[np.ndarray, np.ndarray, tuple[tuple[int, ...], ...]]:
    """(Magpie table [Z, property], Pauling X [Z], common oxidation states per Z) from matminer, row 0 = padding."""
    if _saved_tables is not None:
        import json

        saved = json.loads(_saved_tables.read_text())
        return (np.array(saved["table"], float), np.array(saved["electroneg"], float),
                tuple(tuple(states) for states in saved["oxidation"]))
    from matminer.utils.data import MagpieData, PymatgenData
    from pymatgen.core.periodic_table import Element

    magpie = MagpieData(impute_nan=True)
    table = np.zeros((len(ELEMENTS) + 1, len(MAGPIE_PROPERTIES)))
    pmg = PymatgenData(impute_nan=True)
    electroneg = np.zeros(len(ELEMENTS) + 1)
    oxidation: list[tuple[int, ...]] = [()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z, symbol in enumerate(ELEMENTS, start=1):
            table[z] = [magpie.all_elemental_props[p][symbol] for p in MAGPIE_PROPERTIES]
            element = Element(symbol)
            electroneg[z] = pmg.get_elemental_property(element, "X")
            oxidation.append(tuple(int(o) for o in pmg.get_oxidation_states(element)))
    return table, electroneg, tuple(oxidation)


Parsed = tuple[np.ndarray, np.ndarray, dict[int, str]]


def formula_arrays(formulas: Sequence[str]) -> Parsed:
    """Padded atomic numbers and amounts (rows × max elements, sorted by Z) and {row: error} for bad formulas."""
    parsed: list[dict[str, float]] = []
    errors: dict[int, str] = {}
    for i, formula in enumerate(formulas):
        try:
            parsed.append(parse_formula(formula))
        except FormulaError as exc:
            errors[i] = str(exc)
            parsed.append({})
    width = max((len(p) for p in parsed), default=1) or 1
    z = np.zeros((len(parsed), width), dtype=np.int64)
    amount = np.zeros((len(parsed), width))
    for i, amounts in enumerate(parsed):
        pairs = sorted((ATOMIC_NUMBER[el], v) for el, v in amounts.items())
        for j, (atomic_number, value) in enumerate(pairs):
            z[i, j], amount[i, j] = atomic_number, value
    return z, amount, errors


TOKEN_WIDTH = 16  # element tokens per formula: AMCSD and OQMD formulas have at most 9 elements, COD's up to 27


def element_token_names(width: int = TOKEN_WIDTH) -> list[str]:
    """Columns of the element_tokens group: atomic numbers, then atomic fractions, sorted by Z, zero-padded."""
    return [f"element_z_{i}" for i in range(width)] + [f"element_fraction_{i}" for i in range(width)]


def element_tokens(formulas: Sequence[str], width: int = TOKEN_WIDTH, parsed: Parsed | None = None) -> pd.DataFrame:
    """A formula's elements as tokens for models that read a composition element by element; NaN where the formula
    does not parse or has more than `width` elements. `parsed`: formula_arrays(formulas), when the caller has it."""
    z, amount, errors = parsed or formula_arrays(formulas)
    values = np.full((len(z), 2 * width), np.nan)
    fits = np.ones(len(z), dtype=bool) if z.shape[1] <= width else ~(amount[:, width:] > 0).any(axis=1)
    fits[list(errors)] = False
    k = min(width, z.shape[1])
    total = amount.sum(axis=1, keepdims=True)
    tokens = np.zeros((len(z), 2 * width))
    tokens[:, :k] = z[:, :k]
    tokens[:, width:width + k] = amount[:, :k] / np.where(total > 0, total, 1.0)
    values[fits] = tokens[fits]
    return pd.DataFrame(values, columns=element_token_names(width))


def _weighted_mean(values: np.ndarray, amount: np.ndarray) -> np.ndarray:
    # np.average's arithmetic (sum(w·v) / sum(w)) so results match matminer to the last bits
    total = amount.sum(axis=1)
    if values.ndim == 3:
        return np.einsum("nk,nkp->np", amount, values) / total[:, None]
    return (amount * values).sum(axis=1) / total


def _magpie(z: np.ndarray, amount: np.ndarray, table: np.ndarray) -> np.ndarray:
    present = amount > 0
    values = table[z]  # n × k × properties; padding rows are zero and masked below
    big = np.where(present[..., None], values, np.inf).min(axis=1)
    small = np.where(present[..., None], values, -np.inf).max(axis=1)
    mean = _weighted_mean(values, amount)
    avg_dev = _weighted_mean(np.abs(values - mean[:, None, :]), amount)
    top = amount.max(axis=1, keepdims=True)
    most = present & (np.abs(amount - top) <= 1e-8 + 1e-5 * np.abs(top))  # np.isclose(weights, max)
    mode = np.where(most[..., None], values, np.inf).min(axis=1)
    stats = np.stack([big, small, small - big, mean, avg_dev, mode], axis=2)  # n × properties × stats
    return stats.reshape(len(z), -1)


def _stoichiometry(amount: np.ndarray) -> np.ndarray:
    present = amount > 0
    frac = amount / amount.sum(axis=1, keepdims=True)
    cols = [present.sum(axis=1).astype(float)]
    for p in STOICHIOMETRY_P[1:]:
        cols.append(np.where(present, frac, 0.0).__pow__(p).sum(axis=1) ** (1.0 / p))
    return np.stack(cols, axis=1)


def _formula_amounts(amount: np.ndarray) -> np.ndarray:
    """Atoms in the reduced formula, its largest amounts and their fractions, largest first (zero-padded).

    The reduced formula is pymatgen's: integer amounts divided by their gcd, non-integer ones as written. Magpie's
    fraction statistics cannot tell AB from A2B2 nor see how many atoms a formula unit holds; space groups can.
    """
    integer = np.all(np.abs(amount - np.round(amount)) < 1e-8, axis=1)
    whole = np.round(amount).astype(np.int64)
    divisor = np.where(integer, np.gcd.reduce(whole, axis=1), 1).astype(float)
    reduced = amount / np.where(divisor > 0, divisor, 1.0)[:, None]
    largest = -np.sort(-reduced, axis=1)[:, :FORMULA_AMOUNTS]
    padded = np.zeros((len(amount), FORMULA_AMOUNTS))
    padded[:, :largest.shape[1]] = largest
    total = reduced.sum(axis=1, keepdims=True)
    return np.column_stack([total[:, 0], padded, padded / total])


def _valence(z: np.ndarray, amount: np.ndarray, table: np.ndarray) -> np.ndarray:
    idx = [MAGPIE_PROPERTIES.index(f"N{o}Valence") for o in ORBITALS]
    avg = np.stack([_weighted_mean(table[z, i], amount) for i in idx], axis=1)
    total = _weighted_mean(table[z, MAGPIE_PROPERTIES.index("NValence")], amount)
    return np.concatenate([avg, avg / total[:, None]], axis=1)


def _compound_possible(z: np.ndarray, amount: np.ndarray,
                       oxidation: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, dict[int, str]]:
    """Whether some choice of one common oxidation state per element gives zero charge (IonProperty fast=True),
    and {row: reason} for rows whose search would exceed MAX_CHARGE_SUMS.

    Rows must all have the same number of elements (one bucket of `composition_features`).
    """
    n, width = z.shape
    possible = np.ones(n, dtype=bool)
    too_large: dict[int, str] = {}
    if width < 2:
        return possible, too_large
    counts_of = np.array([len(s) for s in oxidation])
    states = np.zeros((len(oxidation), counts_of.max()))
    for atomic_number, ox in enumerate(oxidation):
        states[atomic_number, : len(ox)] = ox
    counts = counts_of[z]
    order = np.argsort(-counts, axis=1, kind="stable")  # rows with the same sorted counts share one enumeration
    z, amount, counts = (np.take_along_axis(x, order, axis=1) for x in (z, amount, counts))
    shapes, group_of = np.unique(counts, axis=0, return_inverse=True)
    for g, shape in enumerate(shapes):
        rows = np.flatnonzero(group_of.ravel() == g)
        if shape.min() == 0:  # an element without oxidation states: no neutral compound
            possible[rows] = False
            continue
        combos = int(np.prod(shape))
        if combos > _CHARGE_CHUNK:
            for row in rows:
                try:
                    possible[row] = charge_balanced(amount[row], [oxidation[el] for el in z[row]])
                except ChargeSearchTooLarge as exc:
                    too_large[int(row)] = str(exc)
            continue
        step = max(1, (1 << 22) // combos)
        for start in range(0, len(rows), step):
            chunk = rows[start:start + step]
            charge = np.zeros((len(chunk), 1))
            for j in range(width):
                term = amount[chunk, j, None] * states[z[chunk, j], : shape[j]]
                charge = (charge[:, :, None] + term[:, None, :]).reshape(len(chunk), -1)
            possible[chunk] = (np.abs(charge) <= 1e-8).any(axis=1)  # np.isclose(charge, 0)
    return possible, too_large


class ChargeSearchTooLarge(ValueError):
    """The charge-balance search of one formula would keep more than MAX_CHARGE_SUMS partial charges."""


def charge_balanced(amounts: Sequence[float], states: Sequence[Sequence[int]]) -> bool:
    """Exact |sum of amount x state| <= 1e-8 for some choice of one state per element, in bounded time.

    Meet in the middle: each half of the elements enumerates its distinct partial charges (rounded to 1e-9),
    dropping any that the remaining elements cannot bring back to zero; the halves are then matched by a sorted
    search. Cost grows with the number of distinct partial charges, not with the product of the state counts;
    past MAX_CHARGE_SUMS per half it raises ChargeSearchTooLarge instead of running on.
    """
    lows = np.array([a * min(s) for a, s in zip(amounts, states)])
    highs = np.array([a * max(s) for a, s in zip(amounts, states)])
    halves: tuple[list[int], list[int]] = ([], [])
    weight = [0.0, 0.0]
    for j in sorted(range(len(states)), key=lambda j: -len(states[j])):  # balance the log-products of the halves
        side = int(weight[1] < weight[0])
        halves[side].append(j)
        weight[side] += np.log(len(states[j]))
    sums = []
    for side, members in enumerate(halves):
        rest = set(range(len(states)))  # elements not yet added on this side (the other half included)
        partial = np.zeros(1)
        for j in members:
            rest.discard(j)
            partial = (partial[:, None] + amounts[j] * np.asarray(states[j], float)[None, :]).ravel()
            partial = np.unique(np.round(partial, 9))
            idx = list(rest)
            low, high = lows[idx].sum(), highs[idx].sum()
            partial = partial[(partial + low <= 1e-8) & (partial + high >= -1e-8)]
            if partial.size > MAX_CHARGE_SUMS:
                raise ChargeSearchTooLarge(
                    f"charge-balance search needs more than {MAX_CHARGE_SUMS:,} distinct partial charges "
                    f"({len(states)} elements with many-decimal amounts); not featurized")
            if partial.size == 0:
                return False
        sums.append(partial)
    left, right = sums
    at = np.searchsorted(right, -left - 1e-8)
    inside = at < right.size
    return bool(np.any(right[at[inside]] <= -left[inside] + 1e-8))


def _ionic(z: np.ndarray, amount: np.ndarray, electroneg: np.ndarray) -> np.ndarray:
    present = amount > 0
    frac = amount / amount.sum(axis=1, keepdims=True)
    x = electroneg[z]
    ionic = 1.0 - np.exp(-0.25 * (x[:, :, None] - x[:, None, :]) ** 2)
    k = z.shape[1]
    pairs = present[:, :, None] & present[:, None, :] & np.triu(np.ones((k, k), dtype=bool), 1)[None]
    max_ionic = np.where(pairs, ionic, -np.inf).max(axis=(1, 2))
    avg_ionic = np.where(pairs, frac[:, :, None] * frac[:, None, :] * ionic, 0.0).sum(axis=(1, 2))
    single = present.sum(axis=1) < 2
    max_ionic[single] = 0.0
    avg_ionic[single] = 0.0
    return np.stack([max_ionic, avg_ionic], axis=1)


Elemental = tuple[np.ndarray, np.ndarray, tuple[tuple[int, ...], ...]]  # elemental_tables()


@dataclass(frozen=True)
class FeatureGroup:
    """A composition feature group: its columns, and how a bucket of formulas with the same element count gets them."""

    names: list[str]
    # (atomic numbers, amounts, elemental_tables()) → (block of values, {row in the bucket: why it has none})
    compute: Callable[[np.ndarray, np.ndarray, Elemental], tuple[np.ndarray, dict[int, str]]]


def _ion_property(z: np.ndarray, amount: np.ndarray, elemental: Elemental) -> tuple[np.ndarray, dict[int, str]]:
    _, electroneg, oxidation = elemental
    possible, too_large = _compound_possible(z, amount, oxidation)
    return np.column_stack([possible, _ionic(z, amount, electroneg)]), too_large


FEATURE_GROUPS: dict[str, FeatureGroup] = {
    "magpie": FeatureGroup([f"magpie_{stat}_{prop}" for prop in MAGPIE_PROPERTIES for stat in MAGPIE_STATS],
                           lambda z, a, e: (_magpie(z, a, e[0]), {})),
    "stoichiometry": FeatureGroup([f"stoich_{p}_norm" for p in STOICHIOMETRY_P], lambda z, a, e: (_stoichiometry(a), {})),
    "valence_orbital": FeatureGroup([f"valence_avg_{o}" for o in ORBITALS] + [f"valence_frac_{o}" for o in ORBITALS],
                                    lambda z, a, e: (_valence(z, a, e[0]), {})),
    "ion_property": FeatureGroup(["ion_compound_possible", "ion_max_ionic_char", "ion_avg_ionic_char"], _ion_property),
    AMOUNTS_GROUP: FeatureGroup(["reduced_atoms", *(f"reduced_amount_{i}" for i in range(FORMULA_AMOUNTS)),
                                 *(f"sorted_fraction_{i}" for i in range(FORMULA_AMOUNTS))],
                                lambda z, a, e: (_formula_amounts(a), {})),
}


def composition_features(formulas: Sequence[str], groups: Sequence[str] = GROUPS,
                         element_tables: Mapping[str, Any] | None = None,
                         parsed: Parsed | None = None) -> tuple[pd.DataFrame, dict[int, str]]:
    """Feature table (one row per formula, NaN rows for bad ones) and {row position: reason} of bad formulas.
    `parsed`: formula_arrays(formulas), when the caller has it."""
    names = feature_names(groups, element_tables)  # validates the group names
    tables = {g: load_element_table(g, element_tables[g]) for g in groups if g not in FEATURE_GROUPS}
    elemental = elemental_tables()
    z, amount, errors = parsed or formula_arrays(formulas)
    errors = dict(errors)  # extended below; the caller's stays as parsed
    n_el = (amount > 0).sum(axis=1)
    values = np.empty((len(z), len(names)))  # every row is written below or set to NaN
    values[n_el == 0] = np.nan
    bar = progress(total=int((n_el > 0).sum()), desc="featurize compositions", unit="formula")
    for width in np.unique(n_el[n_el > 0]):
        rows = np.flatnonzero(n_el == width)  # one bucket per element count keeps the arrays dense
        zb, ab = z[rows, :width], amount[rows, :width]
        column = 0
        for group in groups:  # each block straight into its own columns
            if group in tables:
                column += _write_pooled(values, column, rows, zb, ab, tables[group], formulas, errors)
                continue
            block, problems = FEATURE_GROUPS[group].compute(zb, ab, elemental)
            errors |= {int(rows[i]): f"formula {shorten(formulas[rows[i]])!s}: {reason}" for i, reason in problems.items()}
            values[rows, column:column + block.shape[1]] = block
            column += block.shape[1]
        bar.update(len(rows))
    bar.close()
    if errors:
        values[sorted(errors)] = np.nan
    return pd.DataFrame(values, columns=names), errors


def _write_pooled(values: np.ndarray, column: int, rows: np.ndarray, z: np.ndarray, amount: np.ndarray,
                  table: ElementTable, formulas: Sequence[str], errors: dict[int, str]) -> int:
    """Pool one element table over a bucket in row chunks (small, cache-sized temporaries); return its width."""
    width = len(EMBEDDING_STATS) * len(table.columns)
    step = max(1, _POOL_CHUNK // (z.shape[1] * width))
    for start in range(0, len(rows), step):
        part = slice(start, start + step)
        pooled, lacking = pooled_features(z[part], amount[part], table)
        values[rows[part], column:column + width] = pooled
        for i in np.flatnonzero(lacking):
            absent = [ELEMENTS[el - 1] for el in z[part][i] if el and not table.has[el]]
            errors.setdefault(int(rows[part][i]), f"formula {shorten(formulas[rows[part][i]])!s}: "
                                                  f"{', '.join(absent)} not in the {table.name} element table")
    return width
