"""Chemical formulas: a strict, fast parser whose amounts equal pymatgen's Composition."""

from __future__ import annotations

import math
import re
import warnings
from functools import lru_cache

from pymatgen.core.composition import Composition
from pymatgen.core.periodic_table import Element

ELEMENTS: tuple[str, ...] = tuple(Element.from_Z(z).symbol for z in range(1, 119))
ATOMIC_NUMBER: dict[str, int] = {sym: i + 1 for i, sym in enumerate(ELEMENTS)}
_TOKEN = re.compile(r"([A-Z][a-z]?)|(\d+\.?\d*|\.\d+)|([(\[{])|([)\]}])|(\s+)")
_CLOSE = {"(": ")", "[": "]", "{": "}"}


class FormulaError(ValueError):
    """A formula that cannot be turned into a composition; the message names the formula and the problem."""


def parse_formula(formula: str) -> dict[str, float]:
    """Element amounts of a formula such as 'CaMg(SiO3)2' or 'Ca2 Al2 Si3 O12 H2'."""
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError(f"empty formula {formula!r}")
    stack: list[tuple[dict[str, float], str]] = [({}, "")]
    pos, n = 0, len(formula)
    while pos < n:
        match = _TOKEN.match(formula, pos)
        if match is None:
            raise FormulaError(f"formula {formula!r}: unexpected character {formula[pos]!r} at position {pos}")
        symbol, number, opener, closer, _space = match.groups()
        pos = match.end()
        if symbol or closer:
            if closer:
                group, open_char = stack.pop() if len(stack) > 1 else (None, "")
                if group is None or _CLOSE[open_char] != closer:
                    raise FormulaError(f"formula {formula!r}: unbalanced {closer!r}")
            else:
                if symbol in ("D", "T"):
                    raise FormulaError(f"formula {formula!r}: {symbol} (hydrogen isotope) is not an element; write H")
                if symbol not in ATOMIC_NUMBER:
                    raise FormulaError(f"formula {formula!r}: unknown element {symbol!r}")
                group = {symbol: 1.0}
            amount = 1.0
            num = _TOKEN.match(formula, pos)
            if num is not None and num.group(2):
                amount = float(num.group(2))
                pos = num.end()
            target = stack[-1][0]
            for el, value in group.items():
                target[el] = target.get(el, 0.0) + value * amount
        elif opener:
            stack.append(({}, opener))
        elif number:
            raise FormulaError(f"formula {formula!r}: number {number!r} does not follow an element or group")
    if len(stack) != 1:
        raise FormulaError(f"formula {formula!r}: unclosed {stack[-1][1]!r}")
    amounts = stack[0][0]
    if not amounts:
        raise FormulaError(f"formula {formula!r} names no element")
    zero = [el for el, value in amounts.items() if not value > 0 or not math.isfinite(value)]
    if zero:
        raise FormulaError(f"formula {formula!r}: zero amount for {', '.join(zero)}")
    return amounts


@lru_cache(maxsize=200_000)
def reduced_formula(formula: str) -> str:
    """pymatgen's reduced formula of a formula string (raises FormulaError)."""
    with warnings.catch_warnings():  # pymatgen warns about noble gases lacking an electronegativity
        warnings.simplefilter("ignore", UserWarning)
        return Composition(parse_formula(formula)).reduced_formula


def hill_formula(amounts: dict[str, float]) -> str:
    """Hill-order formula string (C, H first, then alphabetical) with compact amounts."""
    if "C" in amounts:
        order = ["C"] + ["H"] * ("H" in amounts) + sorted(el for el in amounts if el not in ("C", "H"))
    else:
        order = sorted(amounts)
    return " ".join(f"{el}{_fmt(amounts[el])}" for el in order)


def _fmt(value: float) -> str:
    return "" if value == 1 else (f"{value:g}" if value != int(value) else str(int(value)))
