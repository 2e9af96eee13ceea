"""Which Wyckoff positions a random structure takes: drawn from how often each combination occurs in Materials Project
structures of that space group and atom count (pyxtal's database/spg_num_wps_mp.csv), not uniformly."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd


@lru_cache(maxsize=1)
def wyckoff_prior() -> pd.DataFrame:
    """(spg, n_atoms, wps, count): wps the indices of the positions in pyxtal's Group(spg).Wyckoff_positions."""
    from importlib.resources import files

    table = pd.read_csv(str(files("pyxtal.database") / "spg_num_wps_mp.csv"))
    table["wps"] = [tuple(int(i) for i in str(w).split("-")) for w in table["wps"]]
    return table


def _assign(multiplicities: Sequence[int], counts: Sequence[int]) -> list[list[int]] | None:
    """Positions (by index) split among species so that each species' multiplicities add up to its count; None if no
    split does. Depth-first, largest positions first."""
    order = sorted(range(len(multiplicities)), key=lambda i: -multiplicities[i])
    left = list(counts)
    chosen: list[list[int]] = [[] for _ in counts]

    def place(k: int) -> bool:
        if k == len(order):
            return not any(left)
        i = order[k]
        for s in range(len(left)):
            if left[s] >= multiplicities[i]:
                left[s] -= multiplicities[i]
                chosen[s].append(i)
                if place(k + 1):
                    return True
                chosen[s].pop()
                left[s] += multiplicities[i]
        return False

    return chosen if place(0) else None


def prior_sites(group: int, counts: Sequence[int], rng: np.random.Generator,
                tries: int = 20) -> list[list[str]] | None:
    """Wyckoff labels per species ([['4a'], ['8c']]) for these atom counts in the conventional cell: a combination
    drawn in proportion to its frequency in Materials Project among those that split into the counts; None where the
    prior has no such combination (the caller then lets PyXtal choose)."""
    from xtalml.structures.candidates import _group

    table = wyckoff_prior()
    rows = table[(table["spg"] == int(group)) & (table["n_atoms"] == int(sum(counts)))]
    if rows.empty:
        return None
    positions = _group(int(group)).Wyckoff_positions
    weights = rows["count"].to_numpy(float)
    order = rng.choice(len(rows), size=min(tries, len(rows)), replace=False, p=weights / weights.sum())
    for k in order:
        wps = rows["wps"].iloc[int(k)]
        split = _assign([positions[i].multiplicity for i in wps], counts)
        if split is not None:
            return [[f"{positions[wps[j]].multiplicity}{positions[wps[j]].letter}" for j in members] for members in split]
    return None
