import numpy as np
import pandas as pd
import pytest

from xtalml.chemistry import reduced_formula
from xtalml.splitting import (exclude_lesser_parts, group_labels, grouped_split, near_duplicate_share, overlapping_groups,
                              shared_split, time_split)


def _table(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 900, n)
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "reduced_formula": [f"F{g}" for g in groups],
                         "sg_number": np.where(groups % 7 == 0, 225, groups % 5 + 1),
                         "year": 1950 + groups % 70})


def test_grouped_split_has_no_overlap_and_keeps_proportions():
    table = _table()
    part = grouped_split(table, test_size=0.2, val_size=0.1, seed=3)
    assert overlapping_groups(table, part) == set()
    shares = part.value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.2, abs=0.05) and shares["val"] == pytest.approx(0.1, abs=0.04)
    per_class = pd.crosstab(table["sg_number"], part, normalize="index")
    assert per_class["test"].between(0.1, 0.3).all()  # stratified: every class gets its share


def test_grouped_split_is_seeded():
    table = _table()
    assert grouped_split(table, seed=5).equals(grouped_split(table, seed=5))
    assert not grouped_split(table, seed=5).equals(grouped_split(table, seed=6))


def test_overlap_is_detected():
    table = pd.DataFrame({"reduced_formula": ["A", "A", "B"]})
    assert overlapping_groups(table, pd.Series(["train", "test", "train"])) == {"A"}


def test_time_split_trains_on_the_past():
    table = _table()
    part = time_split(table, train_until=2000, seed=1)
    assert overlapping_groups(table, part) == set()
    first = table.groupby("reduced_formula")["year"].transform("min")
    assert (first[part == "test"] > 2000).all() and (first[part.isin(["train", "val"])] <= 2000).all()


def _tables(seed=0):
    rng = np.random.default_rng(seed)
    formulas = [f"Fe{a}O{b}" for a in range(1, 5) for b in range(1, 5)] + [f"Na{a}Cl{b}" for a in range(1, 4) for b in range(1, 4)]
    formulas += [f"Si{a}O{b}" for a in range(1, 5) for b in range(1, 5)] + ["Cu", "Zn", "Mg2Si", "CaTiO3", "BaTiO3"]

    def table(n, prefix):
        picks = rng.choice(formulas, n)
        return pd.DataFrame({"id": [f"{prefix}{i}" for i in range(n)], "formula": picks,
                             "reduced_formula": [reduced_formula(f) for f in picks], "year": 2000.0,
                             "sg_number": rng.integers(1, 6, n)})
    return {"primary": table(300, "p"), "composition": table(900, "c")}


@pytest.mark.parametrize("group", ["reduced_formula", "chemical_system"])
def test_one_assignment_per_group_in_every_table(group):
    tables = _tables()
    cfg = {"method": "grouped", "group": group, "stratify": "sg_number", "test_size": 0.2, "val_size": 0.2, "seed": 1}
    parts = shared_split(tables, cfg)
    stacked = pd.concat([t.assign(part=parts[n]["part"].to_numpy(), key=group_labels(t, group).to_numpy()) for n, t in tables.items()])
    assert all((parts[n]["id"] == t["id"]).all() and (parts[n]["group"] == group_labels(t, group)).all() for n, t in tables.items())
    assert stacked.groupby("key")["part"].nunique().max() == 1
    assert stacked.groupby("reduced_formula")["part"].nunique().max() == 1
    assert set(stacked["part"]) == {"train", "val", "test"}
    if group == "chemical_system":
        systems = stacked.groupby("part")["key"].agg(set)
        assert not systems["train"] & systems["test"] and set(stacked["key"]) >= {"Fe-O", "Cl-Na", "O-Si"}
    assert shared_split(tables, cfg)["primary"].equals(parts["primary"])  # seeded


def test_near_duplicates_are_counted_only_within_the_tolerance():
    formulas = pd.Series(["Fe2O3", "Fe0.41O0.59", "Fe0.45O0.55", "NaCl", "KCl"])
    part = pd.Series(["train", "test", "test", "train", "test"])
    # Fe0.41O0.59 is within 0.02 of Fe2O3 (0.4, 0.6); Fe0.45O0.55 is not; KCl has no train row of its elements
    assert near_duplicate_share(formulas, part) == pytest.approx(1 / 3)


@pytest.mark.parametrize("group", ["reduced_formula", "chemical_system"])
def test_published_split_is_kept_and_rows_of_held_out_groups_never_train(group):
    tables = _tables()
    published = tables["primary"].iloc[:150].assign(id=lambda t: "pub" + t["id"],
                                                   published_split=np.resize(["train", "val", "test"], 150))
    tables["published"] = published  # like the OQMD benchmark
    cfg = {"method": "grouped", "group": group, "stratify": "sg_number", "test_size": 0.2, "val_size": 0.2, "seed": 1}
    parts = shared_split(tables, cfg)
    # a task stacking the published source with the primary one (like OQMD + AMCSD rows), as tasks.read_table does
    mixed = pd.concat([tables[k].merge(parts[k], on="id") for k in ("published", "primary")], ignore_index=True)
    mixed = mixed.assign(part=exclude_lesser_parts(mixed["part"], mixed["group"]), key=mixed["group"])
    kept = mixed[mixed["published_split"].notna() & (mixed["part"] != "excluded")]
    assert (kept["part"] == kept["published_split"]).all()  # a published part is never changed, only excluded
    assert (mixed["part"] == "excluded").sum() > 0
    used = mixed[mixed["part"] != "excluded"]
    assert used.groupby("key")["part"].nunique().max() == 1  # no group in two parts of one table
    held_out = set(used.loc[used["part"].isin(["val", "test"]), "key"])
    assert set(mixed.loc[mixed["part"] == "excluded", "key"]) <= held_out  # excluded: its group is held out there
    assert (parts["primary"] == shared_split({k: tables[k] for k in ("primary", "composition")}, cfg)["primary"]).all().all()


def test_published_split_can_be_replaced_by_ours():
    tables = _tables()
    tables["published"] = tables["primary"].assign(id=lambda t: "pub" + t["id"], published_split="train")
    cfg = {"method": "grouped", "group": "chemical_system", "stratify": "sg_number", "test_size": 0.2, "val_size": 0.2,
           "seed": 1, "keep_published_split": False}
    parts = shared_split(tables, cfg)
    assert set(parts["published"]["part"]) == {"train", "val", "test"}  # all rows published as train, now split by our groups
    stacked = pd.concat([t.assign(part=parts[n]["part"].to_numpy(), key=group_labels(t, "chemical_system").to_numpy())
                         for n, t in tables.items()])
    assert stacked.groupby("key")["part"].nunique().max() == 1
