"""Leakage audit: how label-derived columns and a random row split inflate accuracy, and the polymorph ceiling."""

from __future__ import annotations

from typing import Any, Mapping

import gemmi
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OrdinalEncoder

from xtalml.models.registry import build_model


def hall_symbol(number: int) -> str:
    """Hall symbol of a space group's reference setting."""
    return gemmi.find_spacegroup_by_number(int(number)).hall


def _accuracy(model_cfg: Mapping[str, Any], seed: int, X_train, y_train, X_test, y_test) -> float:
    model = build_model("random_forest", model_cfg, seed).fit(X_train, y_train)
    return float((model.predict(X_test) == y_test).mean())


def leakage_audit(table: pd.DataFrame, part: pd.Series, geometry: list[str], model_cfg: Mapping[str, Any],
                  seed: int, test_size: float) -> dict[str, Any]:
    """Random-forest accuracy on space group from the cell: (a) as the pipeline runs it, (b) with label-encoded
    space-group and Hall symbols added as the earlier work did, (c) with a random row split instead of grouped."""
    y = table["sg_number"].astype(str).to_numpy()
    X = table[geometry].to_numpy(float)
    train, test = (part == "train").to_numpy(), (part == "test").to_numpy()
    leaky_text = pd.DataFrame({"sg_symbol": table["sg_symbol"].astype(str),
                               "hall_symbol": table["sg_number"].map(hall_symbol)})
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(leaky_text[train])
    X_leaky = np.column_stack([X, encoder.transform(leaky_text)])
    rows = np.arange(len(table))
    random_train, random_test = train_test_split(rows, test_size=test_size, random_state=seed)
    shared = set(table["reduced_formula"].iloc[random_train]) & set(table["reduced_formula"].iloc[random_test])
    return {
        "grouped_split_geometry_only": _accuracy(model_cfg, seed, X[train], y[train], X[test], y[test]),
        "grouped_split_with_label_columns": _accuracy(model_cfg, seed, X_leaky[train], y[train], X_leaky[test], y[test]),
        "random_row_split_geometry_only": _accuracy(model_cfg, seed, X[random_train], y[random_train], X[random_test], y[random_test]),
        "random_split_test_rows_whose_formula_is_in_train": float(table["reduced_formula"].iloc[random_test].isin(shared).mean()),
        "rows": {"train": int(train.sum()), "test": int(test.sum()), "random_train": len(random_train), "random_test": len(random_test)},
    }


def polymorph_ceiling(test: pd.DataFrame, target: str, group: str = "reduced_formula") -> float:
    """Best accuracy a composition-only model can reach on these rows: each formula's most frequent label."""
    counts = test.groupby([group, target], observed=True).size()
    return float(counts.groupby(level=0).max().sum() / len(test))
