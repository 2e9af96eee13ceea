"""The feature-set ablation recomputes features from each row's formula and subsamples rows without misaligning them."""

import numpy as np
import pandas as pd

from xtalml.studies.ablation import subsampled, with_feature_set
from xtalml.features.composition import composition_features
from xtalml.tasks import TaskData


def _task() -> TaskData:
    formulas = {"train": ["NaCl", "Fe2O3", "SiO2", "CaTiO3", "MgO", "Al2O3"], "val": ["ZnS", "KBr"], "test": ["LiF", "TiO2"]}
    task = TaskData(name="t", kind="regression", target="volume_per_atom", feature_names=["x"])
    for part, rows in formulas.items():
        task.frames[part] = pd.DataFrame({"reduced_formula": rows, "row": np.arange(len(rows))})
        task.X[part] = np.arange(len(rows), dtype=float)[:, None]
        task.y[part] = np.arange(len(rows), dtype=float) + 10
    return task


def test_a_feature_set_is_computed_from_each_rows_formula():
    task = _task()
    variant, counts = with_feature_set(task, ["magpie", "stoichiometry"], {})
    expected, _ = composition_features(task.frames["test"]["reduced_formula"].tolist(), ["magpie", "stoichiometry"])
    assert variant.feature_names == list(expected.columns) and len(variant.feature_names) == 138
    assert np.array_equal(variant.X["test"], expected.to_numpy())
    assert counts["rows_with_missing_features"] == {"train": 0, "val": 0, "test": 0}
    assert variant.y is task.y and task.X["test"].shape == (2, 1)  # the task itself is unchanged


def test_subsampling_keeps_features_targets_and_rows_aligned():
    task = _task()
    small = subsampled(task, {"train": 3, "val": None}, seed=0)
    assert len(small.y["train"]) == 3 and len(small.y["val"]) == 2 and len(small.y["test"]) == 2
    rows = small.frames["train"]["row"].to_numpy()
    assert np.array_equal(small.X["train"][:, 0], rows) and np.array_equal(small.y["train"], rows + 10)
    assert np.array_equal(subsampled(task, {"train": 3}, seed=0).frames["train"]["row"], rows)  # seeded
