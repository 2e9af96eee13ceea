"""The lattice task: fit the per-lattice parameter model on the cells of the train rows, score it on the test rows
beside its baselines (the lattice's median parameters; the elemental volume), per Bravais lattice."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from xtalml.chemistry import FormulaError, parse_formula
from xtalml.features.table import feature_columns
from xtalml.structures.lattice import FREE_PARAMETERS, LatticeParameterRegressor, MedianLatticeParameters, scale_free
from xtalml.tasks import DataDirs, read_table

CELL = ["a", "b", "c", "alpha", "beta", "gamma"]
ELEMENTAL_VOLUME = "magpie_mean_GSvolume_pa"


def formula_units(formula: str, atoms_in_cell: float) -> float:
    """Formula units of the reduced formula in a cell of atoms_in_cell atoms (NaN if the formula cannot be read)."""
    try:
        amounts = parse_formula(formula)
    except FormulaError:
        return float("nan")
    from math import gcd

    ints = [round(v) for v in amounts.values()]
    if any(abs(v - i) > 1e-6 for v, i in zip(amounts.values(), ints)) or not all(ints):
        return float("nan")
    divisor = 0
    for i in ints:
        divisor = gcd(divisor, i)
    return atoms_in_cell / (sum(ints) / divisor)


def lattice_rows(source: str, groups: list[str], structures: Path,
                 data: DataDirs = DataDirs()) -> tuple[pd.DataFrame, list[str]]:
    """The source's rows (its parsed structures file and feature table) with a cell, a Bravais lattice and complete
    features, their free parameters and split part."""
    names = feature_columns(data.schema(source), groups)
    table = read_table([source], ["id", "formula", "reduced_formula", "bravais_lattice", "atoms_in_cell",
                                  ELEMENTAL_VOLUME, *names], data)
    cells = pd.read_parquet(structures, columns=["id", *CELL, "volume_cell"])
    table = table.merge(cells, on="id", how="inner")
    ok = (table["part"].isin(["train", "val", "test"]) & table["bravais_lattice"].isin(list(FREE_PARAMETERS))
          & table[CELL].notna().all(axis=1) & (table[["a", "b", "c"]] > 0).all(axis=1) & table[names].notna().all(axis=1))
    table = table[ok].reset_index(drop=True)
    free = []
    for row in table[["bravais_lattice", *CELL]].itertuples(index=False):
        try:
            free.append(scale_free(row[0], *map(float, row[1:])))
        except (ValueError, ZeroDivisionError):
            free.append(None)
    table["free"] = free
    table = table[table["free"].notna()].reset_index(drop=True)
    table["formula_units"] = [formula_units(f, n) for f, n in zip(table["formula"], table["atoms_in_cell"])]
    return table, names


def _mae(pred: list[dict], true: list[dict], name: str) -> float:
    return float(np.mean([abs(p[name] - t[name]) for p, t in zip(pred, true)]))


def evaluate_lattice(model, baseline, table: pd.DataFrame, names: list[str], volume_per_atom: np.ndarray) -> dict[str, Any]:
    """Per Bravais lattice: MAE of each free parameter for the model and the median baseline, and the cell volume's
    mean absolute percentage error from the volume-per-atom model and from the elemental volume (true atom count)."""
    X, lattices, true = table[names].to_numpy(float), table["bravais_lattice"].to_numpy(str), list(table["free"])
    pred, base = model.predict(X, lattices), baseline.predict(X, lattices)
    true_volume = table["volume_cell"].to_numpy(float)
    model_volume = volume_per_atom * table["atoms_in_cell"].to_numpy(float)
    elemental_volume = table[ELEMENTAL_VOLUME].to_numpy(float) * table["atoms_in_cell"].to_numpy(float)
    out: dict[str, Any] = {}
    for lattice, params in FREE_PARAMETERS.items():
        rows = np.flatnonzero(lattices == lattice)
        if not len(rows):
            continue
        entry: dict[str, Any] = {"rows": int(len(rows))}
        for name in params:
            entry[f"mae_{name}"] = _mae([pred[i] for i in rows], [true[i] for i in rows], name)
            entry[f"baseline_mae_{name}"] = _mae([base[i] for i in rows], [true[i] for i in rows], name)
        ok = rows[np.isfinite(model_volume[rows]) & (true_volume[rows] > 0)]
        entry["volume_mape"] = float(np.mean(np.abs(model_volume[ok] / true_volume[ok] - 1))) if len(ok) else None
        entry["baseline_volume_mape"] = (float(np.mean(np.abs(elemental_volume[ok] / true_volume[ok] - 1)))
                                         if len(ok) else None)
        out[lattice] = entry
    return out


def train_lattice_task(cfg: Mapping[str, Any], volume_per_atom, structures: Path,
                       data: DataDirs = DataDirs()) -> tuple[dict, dict]:
    """(bundle, metrics) of the lattice task on cfg['source'] (its structures file and feature table);
    volume_per_atom(formulas) is the volume-per-atom champion's answer."""
    table, names = lattice_rows(cfg["source"], list(cfg["features"]), structures, data)
    train, test = table[table["part"] == "train"], table[table["part"] == "test"].reset_index(drop=True)
    model = LatticeParameterRegressor(**cfg["model"]).fit(train[names].to_numpy(float), train["bravais_lattice"],
                                                          list(train["free"]))
    baseline = MedianLatticeParameters().fit(None, train["bravais_lattice"], list(train["free"]))
    units = train.dropna(subset=["formula_units"]).groupby("bravais_lattice")["formula_units"].median()
    metrics = {"rows": {part: int((table["part"] == part).sum()) for part in ("train", "val", "test")},
               "test": evaluate_lattice(model, baseline, test, names, volume_per_atom(list(test["formula"])))}
    bundle = {"model": model, "feature_names": names, "formula_units": {k: float(v) for k, v in units.items()},
              "task": "lattice_from_composition"}
    return bundle, metrics


def headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Mean over test rows of every lattice: ratio and angle MAE, volume MAPE, each beside its baseline."""
    per = metrics["test"]
    total = sum(e["rows"] for e in per.values())

    def mean(key: str, kinds: tuple[str, ...]) -> float | None:
        pairs = [(e[f"{key}_{n}"], e["rows"]) for lat, e in per.items() for n in FREE_PARAMETERS[lat]
                 if any(n.endswith(k) for k in kinds)]
        return float(sum(v * w for v, w in pairs) / sum(w for _, w in pairs)) if pairs else None

    vol = [(e["volume_mape"], e["baseline_volume_mape"], e["rows"]) for e in per.values() if e["volume_mape"] is not None]
    weight = sum(w for *_, w in vol)
    return {"rows_test": total, "ratio_mae": mean("mae", ("/a",)), "baseline_ratio_mae": mean("baseline_mae", ("/a",)),
            "angle_mae": mean("mae", ("alpha", "beta", "gamma")),
            "baseline_angle_mae": mean("baseline_mae", ("alpha", "beta", "gamma")),
            "volume_mape": sum(m * w for m, _, w in vol) / weight if weight else None,
            "baseline_volume_mape": sum(b * w for _, b, w in vol) / weight if weight else None}
