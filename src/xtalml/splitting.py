"""Train/validation/test splits grouped by reduced formula or chemical system, one assignment for all tables."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

import numpy as np
import pandas as pd

from xtalml.chemistry import FormulaError, parse_formula

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


GROUP_KEYS = ("reduced_formula", "chemical_system")


@lru_cache(maxsize=None)
def _elements(formula: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(parse_formula(formula)))
    except FormulaError:
        return ()


def group_labels(table: pd.DataFrame, group: str) -> pd.Series:
    """The grouping key per row: reduced formula, or chemical system (sorted element set, e.g. 'O-Si')."""
    if group == "chemical_system":
        systems = table["formula"].astype(str).map(lambda f: "-".join(_elements(f)))
        return systems.where(systems != "", table["reduced_formula"].astype(str))  # unparsable: its own group
    if group not in table:
        raise ValueError(f"split.group={group!r}: choose one of {', '.join(GROUP_KEYS)}")
    return table[group].astype(str)


def shared_split(tables: Mapping[str, pd.DataFrame], cfg: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """One part per group for every source: all sources' groups are split together, so a formula (or chemical
    system) is in the same part everywhere. Each source's rows need id, formula, reduced_formula, year, label.

    Rows with a published part (column published_split, e.g. the OQMD benchmark) keep it unless
    cfg['keep_published_split'] is false (then they are split like the rest). Returns per source: id, part, group
    (the grouping key, so a task that stacks sources can apply exclude_lesser_parts).
    """
    stacked = pd.concat([t.assign(_table=name, _group=group_labels(t, cfg["group"]).to_numpy())
                         for name, t in tables.items()], ignore_index=True)
    published = stacked["published_split"] if "published_split" in stacked else pd.Series(pd.NA, index=stacked.index)
    fixed = published.isin(PARTS).to_numpy() & bool(cfg.get("keep_published_split", True))
    free = stacked.loc[~fixed].drop_duplicates("id").reset_index(drop=True)  # a row in several sources counts once
    if cfg["method"] == "grouped":
        ours = grouped_split(free, "_group", cfg.get("stratify"), cfg["test_size"], cfg["val_size"], cfg["seed"])
    elif cfg["method"] == "time":
        ours = time_split(free, cfg["train_until"], "_group", "year", cfg["val_size"], cfg["seed"])
    else:
        raise ValueError(f"split.method={cfg['method']!r}: choose grouped or time")
    if overlapping_groups(free, ours, "_group"):
        raise RuntimeError(f"split leaks groups ({cfg['group']}) across parts")
    part = pd.Series("train", index=stacked.index, dtype=object)
    part[~fixed] = stacked.loc[~fixed, "id"].map(pd.Series(ours.to_numpy(), index=free["id"])).to_numpy()
    part[fixed] = published[fixed].astype(str).to_numpy()
    return {name: pd.DataFrame({"id": t["id"].to_numpy(), "part": part[stacked["_table"] == name].to_numpy(),
                                "group": stacked.loc[stacked["_table"] == name, "_group"].to_numpy()})
            for name, t in tables.items()}


def exclude_lesser_parts(part: pd.Series, group: pd.Series) -> pd.Series:
    """Where a published part meets ours in one table, a group keeps only its most held-out part (test, then val);
    its other rows become 'excluded' (never trained on), so the table has no group in two parts."""
    rank = part.map({"train": 0, "val": 1, "test": 2})
    held_out = rank.groupby(group.to_numpy()).transform("max")
    return part.where(~(rank.notna() & (rank < held_out)), "excluded")


def split_summary(sources: Mapping[str, pd.DataFrame], parts: Mapping[str, pd.DataFrame],
                  cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Rows and formulas per part for every source; groups in two parts across sources (0 bar published parts)."""
    summary: dict[str, Any] = {"method": cfg["method"], "group": cfg["group"], "sources": {}}
    for key, table in sources.items():
        part = pd.Series(parts[key]["part"].to_numpy(), index=table.index)
        summary["sources"][key] = {"rows": part.value_counts().to_dict(),
                                   "formulas": table.groupby(part)["reduced_formula"].nunique().to_dict()}
    ours = pd.concat([t.assign(part=parts[k]["part"].to_numpy(), _group=parts[k]["group"].to_numpy())
                      for k, t in sources.items()], ignore_index=True)
    published = ours["published_split"] if "published_split" in ours else pd.Series(pd.NA, index=ours.index)
    summary["groups_in_two_parts_without_published_split"] = len(  # 0 by design
        overlapping_groups(ours[published.isna().to_numpy()], ours.loc[published.isna().to_numpy(), "part"], "_group"))
    summary["near_duplicate_rule"] = "test row with a train row of the same elements, every atomic fraction within 0.02"
    return summary


SPLIT_COLUMNS = ("id", "source", "formula", "reduced_formula", "year", "published_split")


def read_split_columns(path, stratify: str | None) -> pd.DataFrame:
    """The columns shared_split needs from a feature table (published_split only where the table has it)."""
    import pyarrow.parquet as pq

    present = set(pq.read_schema(path).names)
    wanted = [*SPLIT_COLUMNS, *([stratify] if stratify else [])]
    return pd.read_parquet(path, columns=[c for c in wanted if c in present])


def near_duplicate_share(formulas: pd.Series, part: pd.Series, tolerance: float = 0.02) -> float:
    """Share of test rows with a train row of the same elements whose atomic fractions all lie within tolerance."""
    fractions: dict[str, np.ndarray] = {}
    systems: dict[str, str] = {}
    for formula in formulas.unique():  # one parse per formula gives both its elements and its fractions
        try:
            amounts = parse_formula(formula)
        except FormulaError:
            continue
        total, elements = sum(amounts.values()), sorted(amounts)
        fractions[formula] = np.array([amounts[el] / total for el in elements])
        systems[formula] = "-".join(elements)
    train: dict[str, list[np.ndarray]] = {}
    for formula in formulas[part == "train"].unique():
        if formula in fractions:
            train.setdefault(systems[formula], []).append(fractions[formula])
    by_system = {system: np.stack(rows) for system, rows in train.items()}
    near: dict[str, bool] = {}
    for formula in formulas[part == "test"].unique():
        candidates = by_system.get(systems.get(formula, ""))
        near[formula] = bool(candidates is not None and (np.abs(candidates - fractions[formula]).max(axis=1) <= tolerance).any())
    test = formulas[part == "test"]
    return float(test.map(near).mean()) if len(test) else 0.0
