"""Chemical formulas: a strict, fast parser whose amounts equal pymatgen's Composition."""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

from pymatgen.core.composition import Composition
from pymatgen.core.periodic_table import Element

ELEMENTS: tuple[str, ...] = tuple(Element.from_Z(z).symbol for z in range(1, 119))
ATOMIC_NUMBER: dict[str, int] = {sym: i + 1 for i, sym in enumerate(ELEMENTS)}
_TOKEN = re.compile(r"([A-Z][a-z]?)|(\d+\.?\d*|\.\d+)|([(\[{])|([)\]}])|(\s+)")
_CLOSE = {"(": ")", "[": "]", "{": "}"}
MAX_FORMULA_CHARS = 1000  # longer than any real formula (COD's longest is far shorter); bounds parse time
MAX_AMOUNT = 1e9  # per element; larger amounts are typos or overflow, and their fractions lose all precision
MIN_AMOUNT = 1e-8  # pymatgen's Composition.amount_tolerance: it silently drops smaller amounts; we refuse them


class FormulaError(ValueError):
    """A formula that cannot be turned into a composition; the message names the formula and the problem."""


def shorten(text: str, limit: int = 60) -> str:
    """The text itself, or its start and its length when longer than limit (for error messages)."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def parse_formula(formula: str) -> dict[str, float]:
    """Element amounts of a formula such as 'CaMg(SiO3)2' or 'Ca2 Al2 Si3 O12 H2'."""
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError(f"empty formula {shorten(formula)!r}")
    if len(formula) > MAX_FORMULA_CHARS:
        raise FormulaError(f"formula {shorten(formula)!r} is longer than {MAX_FORMULA_CHARS:,} characters")
    shown = shorten(formula)
    stack: list[tuple[dict[str, float], str]] = [({}, "")]
    pos, n = 0, len(formula)
    while pos < n:
        match = _TOKEN.match(formula, pos)
        if match is None:
            raise FormulaError(f"formula {shown!r}: unexpected character {formula[pos]!r} at position {pos}")
        symbol, number, opener, closer, _space = match.groups()
        pos = match.end()
        if symbol or closer:
            if closer:
                group, open_char = stack.pop() if len(stack) > 1 else (None, "")
                if group is None or _CLOSE[open_char] != closer:
                    raise FormulaError(f"formula {shown!r}: unbalanced {closer!r}")
                if not group:
                    raise FormulaError(f"formula {shown!r}: empty group {open_char + closer!r}")
            else:
                if symbol in ("D", "T"):
                    raise FormulaError(f"formula {shown!r}: {symbol} (hydrogen isotope) is not an element; write H")
                if symbol not in ATOMIC_NUMBER:
                    raise FormulaError(f"formula {shown!r}: unknown element {symbol!r}")
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
            raise FormulaError(f"formula {shown!r}: number {shorten(number, 20)!r} does not follow an element or group")
    if len(stack) != 1:
        raise FormulaError(f"formula {shown!r}: unclosed {stack[-1][1]!r}")
    amounts = stack[0][0]
    if not amounts:
        raise FormulaError(f"formula {shown!r} names no element")
    huge = [el for el, value in amounts.items() if not value <= MAX_AMOUNT]  # inf and NaN included
    if huge:
        raise FormulaError(f"formula {shown!r}: amount of {', '.join(huge)} larger than {MAX_AMOUNT:g}")
    zero = [el for el, value in amounts.items() if not value > 0]
    if zero:
        raise FormulaError(f"formula {shown!r}: zero amount for {', '.join(zero)}")
    tiny = [el for el, value in amounts.items() if value < MIN_AMOUNT]
    if tiny:
        raise FormulaError(f"formula {shown!r}: amount of {', '.join(tiny)} below {MIN_AMOUNT:g}")
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
