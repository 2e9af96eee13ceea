import numpy as np
import pandas as pd
import pytest

from xtalml.splitting import grouped_split, overlapping_groups, time_split


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
