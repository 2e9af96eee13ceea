"""Train/validation/test splits grouped by reduced formula: one compound never sits in two parts."""

from __future__ import annotations

import numpy as np
import pandas as pd

PARTS = ("train", "val", "test")


def _group_positions(labels: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """A number in [0, 1) per row, shared by its group; cutting it at f holds out ~f of every class.

    Groups are stratified by their most frequent label; within each stratum they are shuffled and laid
    end to end (weighted by size) from a random start, so any interval of length f covers about f of the
    stratum's rows, and a stratum with a single group falls in it with probability f.
    """
    rng = np.random.default_rng(seed)
    pairs = pd.DataFrame({"g": groups, "y": labels}).value_counts(["g", "y"], sort=False).reset_index(name="n")
    pairs = pairs.sort_values(["g", "n", "y"], ascending=[True, False, True], kind="stable")
    size = pairs.groupby("g", sort=False)["n"].transform("sum")
    per_group = pairs.assign(size=size).drop_duplicates("g")[["g", "y", "size"]]
    per_group = per_group.iloc[rng.permutation(len(per_group))]
    by_stratum = per_group.groupby("y", sort=False)["size"]
    total = by_stratum.transform("sum").to_numpy(float)
    middle = by_stratum.cumsum().to_numpy(float) - per_group["size"].to_numpy(float) / 2
    strata = per_group["y"].unique()
    offset = per_group["y"].map(dict(zip(strata, rng.uniform(0, 1, len(strata))))).to_numpy(float)
    position = pd.Series((middle / total + offset) % 1.0, index=per_group["g"].to_numpy())
    return position.reindex(groups).to_numpy()  # hash lookup; np.isin on object arrays is quadratic


def _one_cut(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of rows held out: about `fraction` of rows, whole groups, stratified where classes allow."""
    if fraction <= 0 or len(labels) == 0:
        return np.zeros(len(labels), dtype=bool)
    return _group_positions(labels, groups, seed) < fraction


def grouped_kfold(labels, groups, n_folds: int = 5, seed: int = 42) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, validation rows) for k folds, grouped and stratified like the split."""
    fold = np.minimum((_group_positions(np.asarray(labels).astype(str), np.asarray(groups).astype(str), seed) * n_folds).astype(int), n_folds - 1)
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_folds)]


def grouped_split(table: pd.DataFrame, group: str = "reduced_formula", stratify: str | None = "sg_number",
                  test_size: float = 0.15, val_size: float = 0.15, seed: int = 42) -> pd.Series:
    """Part ('train'/'val'/'test') of every row, grouped by `group`, stratified by `stratify`."""
    groups = table[group].astype(str).to_numpy()
    labels = (table[stratify].astype(str).fillna("missing") if stratify else pd.Series("all", index=table.index)).to_numpy()
    part = np.full(len(table), "train", dtype=object)
    test = _one_cut(labels, groups, test_size, seed)
    part[test] = "test"
    rest = np.flatnonzero(~test)
    val = _one_cut(labels[rest], groups[rest], val_size / (1 - test_size), seed + 1) if len(rest) else np.zeros(0, bool)
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
