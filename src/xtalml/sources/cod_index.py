"""COD index: formula, COD id, space-group number and energy above hull for 62,099 COD entries (dara-xrd wheel)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd

COD_INDEX_MEMBER = "dara/data/cod_filtered_info_2024.json.gz"


def read_cod_index(path: Path) -> pd.DataFrame:
    """Rows of the index: chemsys, formula, cod_id, sg_number, e_above_hull (eV/atom, may be missing)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        by_chemsys = json.load(fh)
    rows = [(chemsys, formula, str(cod_id), sg, e_hull)
            for chemsys, entries in by_chemsys.items()
            for formula, cod_id, sg, e_hull in entries]
    table = pd.DataFrame(rows, columns=["chemsys", "formula", "cod_id", "sg_number", "e_above_hull"])
    table["sg_number"] = pd.to_numeric(table["sg_number"], errors="coerce").astype("Int64")
    table["e_above_hull"] = pd.to_numeric(table["e_above_hull"], errors="coerce")
    return table


def truncate_cod_index(path: Path, limit: int) -> None:
    """Keep the first `limit` entries (in file order) of an index file, in the same format."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        by_chemsys = json.load(fh)
    kept: dict[str, list] = {}
    remaining = int(limit)
    for chemsys, entries in by_chemsys.items():
        if remaining <= 0:
            break
        kept[chemsys] = entries[:remaining]
        remaining -= len(kept[chemsys])
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(kept, fh)
