"""Train/validation/test splits grouped by reduced formula: one compound never sits in two parts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

PARTS = ("train", "val", "test")


def _one_cut(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of rows held out: about `fraction` of rows, whole groups, stratified where classes allow."""
    if fraction <= 0 or len(labels) == 0:
        return np.zeros(len(labels), dtype=bool)
    n_splits = max(2, int(round(1 / fraction)))
    if len(np.unique(groups)) < n_splits:
        raise ValueError(f"only {len(np.unique(groups))} distinct formulas: too few for a {fraction:.0%} hold-out")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(folds.split(np.zeros(len(labels)), labels, groups))
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return mask


def grouped_split(table: pd.DataFrame, group: str = "reduced_formula", stratify: str | None = "sg_number",
                  test_size: float = 0.15, val_size: float = 0.15, seed: int = 42) -> pd.Series:
    """Part ('train'/'val'/'test') of every row, grouped by `group`, stratified by `stratify`."""
    groups = table[group].astype(str).to_numpy()
    labels = (table[stratify].astype(str).fillna("missing") if stratify else pd.Series("all", index=table.index)).to_numpy()
    part = np.full(len(table), "train", dtype=object)
    test = _one_cut(labels, groups, test_size, seed)
    part[test] = "test"
    rest = np.flatnonzero(~test)
    val = _one_cut(labels[rest], groups[rest], val_size / (1 - test_size), seed + 1)
    part[rest[val]] = "val"
    return pd.Series(part, index=table.index, name="part")


def time_split(table: pd.DataFrame, train_until: int, group: str = "reduced_formula", year: str = "year",
               val_size: float = 0.15, seed: int = 42) -> pd.Series:
    """Train on formulas first published up to `train_until`, test on formulas first published later.

    A formula belongs wholly to the period of its earliest publication, so no compound is in both parts;
    rows without a year are left out ('unused'). Validation is a grouped cut of the training period.
    """
    first_year = table.groupby(group)[year].transform("min")
    part = np.where(first_year.isna(), "unused", np.where(first_year > train_until, "test", "train")).astype(object)
    train = np.flatnonzero(part == "train")
    groups = table[group].astype(str).to_numpy()
    val = _one_cut(np.zeros(len(train)), groups[train], val_size, seed)
    part[train[val]] = "val"
    return pd.Series(part, index=table.index, name="part")


def overlapping_groups(table: pd.DataFrame, part: pd.Series, group: str = "reduced_formula") -> set[str]:
    """Groups that appear in more than one part (should be empty)."""
    used = part.isin(PARTS)
    counts = table.loc[used].assign(part=part[used]).groupby(group)["part"].nunique()
    return set(counts[counts > 1].index)
