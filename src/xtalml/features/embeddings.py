"""Element-embedding feature sets (CBFV, elementembeddings tables) pooled per composition, vectorised.

Statistics per table column, as CBFV's generate_features computes them (fractions = amount / total):
avg (fraction-weighted mean), dev (fraction-weighted mean absolute deviation from avg), range, max, min,
mode (the smallest value among the elements of largest fraction), plus std (fraction-weighted standard deviation).
Rules, also written in the feature schema: a table's missing cells are filled with that column's mean over the
table's elements (CBFV instead fills pooled NaNs with the dataset's median, which depends on the data); a formula
with an element the table lacks is rejected with the reason.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from xtalml.chemistry import ATOMIC_NUMBER, ELEMENTS
from xtalml.sources.wheels import default_cache_dir, extract_member, fetch_wheel

EMBEDDING_STATS = ("avg", "dev", "range", "max", "min", "mode", "std")
MISSING_CELLS_RULE = "table cells that are empty are filled with the column's mean over the table's elements"
MISSING_ELEMENT_RULE = "a formula with an element absent from the table is rejected with the reason"
_CHUNK_VALUES = 1 << 22  # rows × elements × columns held at once


@dataclass(frozen=True)
class ElementTable:
    """One element table: values[Z] is element Z's vector (row 0 padding), has[Z] whether the table lists it."""

    name: str
    columns: tuple[str, ...]
    values: np.ndarray
    has: np.ndarray

    def feature_names(self) -> list[str]:
        """Column names of the pooled features, statistic-major as CBFV orders them."""
        return [f"{self.name}_{stat}_{col}" for stat in EMBEDDING_STATS for col in self.columns]


def parse_element_table(name: str, path: Path) -> ElementTable:
    """An ElementTable from a CBFV/elementembeddings file: CSV (element, columns...) or JSON {element: vector}."""
    if path.suffix == ".json":
        raw = json.loads(path.read_text())
        rows = {el: np.atleast_1d(np.asarray(v, float)) for el, v in raw.items()}
        width = max(len(v) for v in rows.values())
        frame = pd.DataFrame.from_dict(rows, orient="index", columns=[str(i) for i in range(width)])
    else:
        frame = pd.read_csv(path).set_index("element")
    frame = frame[frame.index.isin(ELEMENTS)].apply(pd.to_numeric, errors="coerce").astype(float)
    if frame.empty:
        raise ValueError(f"element table {name} ({path.name}) lists no element")
    frame = frame.fillna(frame.mean()).fillna(0.0)  # column mean over the table's elements; all-empty columns 0
    values = np.zeros((len(ELEMENTS) + 1, frame.shape[1]))
    has = np.zeros(len(ELEMENTS) + 1, dtype=bool)
    index = [ATOMIC_NUMBER[el] for el in frame.index]
    values[index], has[index] = frame.to_numpy(), True
    return ElementTable(name, tuple(str(c) for c in frame.columns), values, has)


@lru_cache(maxsize=32)
def _load(name: str, wheel: str, sha256: str, member: str, cache_dir: str | None) -> ElementTable:
    path = fetch_wheel(wheel, sha256, Path(cache_dir) if cache_dir else default_cache_dir())
    with tempfile.TemporaryDirectory() as tmp:
        return parse_element_table(name, extract_member(path, member, Path(tmp) / Path(member).name))


def table_specs(declared: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """featurize.element_tables ({wheels: {key: {wheel, sha256}}, tables: {name: [wheel key, member]}}) as
    {name: {wheel, sha256, member}}, the form load_element_table reads."""
    if not declared:
        return {}
    wheels, specs = declared.get("wheels") or {}, {}
    for name, entry in (declared.get("tables") or {}).items():
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2) or entry[0] not in wheels:
            raise KeyError(f"featurize.element_tables.tables.{name} is {entry!r}: write [<key of featurize.element_tables."
                           f"wheels ({', '.join(wheels) or 'none declared'})>, <file in that wheel>]")
        specs[name] = {**wheels[entry[0]], "member": entry[1]}
    return specs


def load_element_table(name: str, spec: Mapping[str, Any]) -> ElementTable:
    """The table `name` as table_specs gives it (wheel, sha256, member), read from the pinned wheel."""
    missing = [k for k in ("wheel", "sha256", "member") if k not in spec]
    if missing:
        raise KeyError(f"featurize.element_tables.{name} lacks {', '.join(missing)}")
    return _load(name, spec["wheel"], spec["sha256"], spec["member"], spec.get("cache_dir"))


def pooled_features(z: np.ndarray, amount: np.ndarray, table: ElementTable) -> tuple[np.ndarray, np.ndarray]:
    """(rows × 7·columns pooled statistics, rows lacking an element of the table) for padded z/amount arrays."""
    n, width = z.shape
    d = len(table.columns)
    out = np.empty((n, len(EMBEDDING_STATS) * d))
    present = amount > 0
    padded = not present.all()  # composition_features passes buckets of equal element count: no padding
    lacking = (present & ~table.has[z]).any(axis=1)
    step = max(1, _CHUNK_VALUES // max(1, width * d))
    for start in range(0, n, step):
        rows = slice(start, start + step)
        p, a = present[rows], amount[rows]
        v = table.values[z[rows]]  # chunk × k × d
        frac = a / a.sum(axis=1, keepdims=True)
        o = out[rows].reshape(-1, len(EMBEDDING_STATS), d)  # a view: each statistic is written in place
        avg = np.einsum("nk,nkd->nd", frac, v, out=o[:, 0])
        if padded:
            o[:, 3] = np.where(p[..., None], v, -np.inf).max(axis=1)
            o[:, 4] = np.where(p[..., None], v, np.inf).min(axis=1)
        else:
            v.max(axis=1, out=o[:, 3])
            v.min(axis=1, out=o[:, 4])
        np.subtract(o[:, 3], o[:, 4], out=o[:, 2])
        top = frac.max(axis=1, keepdims=True)
        most = p & (np.abs(frac - top) <= 1e-8 + 1e-5 * np.abs(top))  # np.isclose(frac, max(frac))
        o[:, 5] = v[np.arange(len(v)), most.argmax(axis=1)]  # the element of largest fraction ...
        tied = most.sum(axis=1) > 1
        if tied.any():  # ... or the smallest value among tied ones
            o[tied, 5] = np.where(most[tied, :, None], v[tied], np.inf).min(axis=1)
        v -= avg[:, None, :]  # deviations, in place
        np.einsum("nk,nkd->nd", frac, np.abs(v), out=o[:, 1])
        np.einsum("nk,nkd->nd", frac, np.square(v, out=v), out=o[:, 6])
        np.sqrt(o[:, 6], out=o[:, 6])
    out[lacking] = np.nan
    return out, lacking
