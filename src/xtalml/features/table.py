"""The featurize stage: structures → feature table, schema (features vs targets) and rejects."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xtalml.features.composition import AMOUNTS_GROUP, GROUPS, composition_features, element_tokens, feature_names, formula_arrays
from xtalml.features.embeddings import MISSING_CELLS_RULE, MISSING_ELEMENT_RULE
from xtalml.features.geometry import GEOMETRY_FEATURES, geometry_features

ID_COLUMN = "id"
GROUP_COLUMN = "reduced_formula"
TARGET_COLUMNS = ("sg_number", "sg_symbol", "crystal_system", "bravais_lattice", "volume", "volume_per_atom")
META_COLUMNS = ("source", "formula", "reduced_formula", "year", "atoms_in_cell", "e_above_hull", "published_split")
# Words that mark a column as derived from the symmetry labels; no feature may carry them.
LABEL_WORDS = ("space_group", "spacegroup", "sg_", "hall", "hermann", "h-m", "crystal_system", "bravais",
               "cell_setting", "lattice_type", "int_tables")
# Magpie's SpaceGroupNumber is the space group of each element's ground-state solid: a property of the
# elements, the same for every compound containing them, not of this crystal's label.
ELEMENTAL_EXCEPTIONS = tuple(f"magpie_{s}_SpaceGroupNumber" for s in ("minimum", "maximum", "range", "mean", "avg_dev", "mode"))


def build_feature_table(structures: pd.DataFrame, composition_groups: Sequence[str] = GROUPS,
                        geometry: bool = True, element_tables: Mapping[str, Any] | None = None,
                        volume_per_atom_range: Sequence[float] | None = None,
                        ) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """(features table, schema dict, rejects) from the parse stage's structures table.

    A row whose atoms per cell are unknown (atoms_error) or whose volume per atom falls outside
    volume_per_atom_range keeps its other columns but loses the volume_per_atom target; the rejects list it
    with the reason, prefixed 'volume_per_atom target dropped'. A source that gives the volume per atom itself
    (volume_per_atom_given, e.g. OQMD) keeps its published value: the range guards against wrong atom counts.
    """
    rejected = structures["formula_error"].notna()
    rejects = pd.DataFrame({"id": structures.loc[rejected, "id"], "source": structures.loc[rejected, "source"],
                            "stage": "featurize", "reason": structures.loc[rejected, "formula_error"].astype(str)})
    if AMOUNTS_GROUP in composition_groups:
        raise ValueError(f"featurize.composition lists {AMOUNTS_GROUP!r}, which featurize always writes as its own "
                         f"feature group; a task reads it by naming it in tasks.<task>.features")
    rows = structures.loc[~rejected].reset_index(drop=True)
    formulas = rows["formula"].astype(str)
    unique = formulas.drop_duplicates()
    parsed = formula_arrays(unique.tolist())  # once per formula, for all blocks below
    comp, errors = composition_features(unique.tolist(), [*composition_groups, AMOUNTS_GROUP], element_tables, parsed)
    comp.index = unique.to_numpy()
    if errors:  # the parse stage already flags bad formulas; this catches any it let through
        bad = {unique.iloc[i]: reason for i, reason in errors.items()}
        extra = rows[formulas.isin(bad)]
        rejects = pd.concat([rejects, pd.DataFrame({"id": extra["id"], "source": extra["source"], "stage": "featurize",
                                                    "reason": extra["formula"].map(bad)})])
        rows = rows[~formulas.isin(bad)].reset_index(drop=True)
        formulas = rows["formula"].astype(str)
    comp_rows = comp.loc[formulas.to_numpy()].reset_index(drop=True)
    amount_columns = feature_names([AMOUNTS_GROUP])
    tokens = element_tokens(unique.tolist(), parsed=parsed)  # for models that read a formula element by element, not for the others
    tokens.index = unique.to_numpy()
    token_rows = tokens.loc[formulas.to_numpy()].reset_index(drop=True)

    volume = rows["volume_given"].where(rows["volume_given"] > 0, rows["volume_cell"])
    per_atom, target_rejects = plausible_volume_per_atom(rows, volume, volume_per_atom_range)
    if "volume_per_atom_given" in rows:
        per_atom = rows["volume_per_atom_given"].where(rows["volume_per_atom_given"].notna(), per_atom)
    rejects = pd.concat([rejects, target_rejects])
    table = pd.DataFrame({
        "id": rows["id"], **{c: rows[c] for c in META_COLUMNS if c in rows and c != "atoms_in_cell"},
        "atoms_in_cell": rows["atoms_in_cell"],
        "sg_number": rows["sg_number"], "sg_symbol": rows["sg_symbol"], "crystal_system": rows["crystal_system"],
        "bravais_lattice": rows["bravais_lattice"], "volume": volume,
        "volume_per_atom": per_atom,
    })
    blocks = [table]
    geometry_columns: list[str] = []
    if geometry:
        geom = geometry_features(rows[["a", "b", "c", "alpha", "beta", "gamma"]])
        blocks.append(geom)
        geometry_columns = list(GEOMETRY_FEATURES)
    blocks += [comp_rows, token_rows]
    features = pd.concat(blocks, axis=1)
    features = features.replace([np.inf, -np.inf], np.nan)
    schema = {
        "id": ID_COLUMN, "group": GROUP_COLUMN,
        "targets": list(TARGET_COLUMNS), "meta": [c for c in META_COLUMNS if c in features],
        "features": {"geometry": geometry_columns, "composition": [c for c in comp.columns if c not in amount_columns],
                     AMOUNTS_GROUP: amount_columns, "element_tokens": list(tokens.columns)},
    }
    embedding_sets = [g for g in composition_groups if g not in GROUPS]  # formula_amounts is refused above
    if embedding_sets:
        schema["element_tables"] = {"sets": embedding_sets, "missing_cells": MISSING_CELLS_RULE,
                                    "missing_elements": MISSING_ELEMENT_RULE}
    check_no_label_features(schema)
    return features, schema, rejects.reset_index(drop=True)


def plausible_volume_per_atom(rows: pd.DataFrame, volume: pd.Series, valid_range: Sequence[float] | None,
                              ) -> tuple[pd.Series, pd.DataFrame]:
    """Volume per atom (NaN where the atom count is unknown or the value is implausible) and the target rejects."""
    per_atom = volume / rows["atoms_in_cell"].where(rows["atoms_in_cell"] > 0)
    reason = pd.Series(pd.NA, index=rows.index, dtype="string")
    if "atoms_error" in rows:
        reason = rows["atoms_error"].astype("string").where(volume.notna())
    if valid_range is not None:
        low, high = valid_range
        outside = per_atom.notna() & ~per_atom.between(low, high)
        reason[outside] = [f"{v:.2f} Å³/atom outside the plausible range {low:g}-{high:g}" for v in per_atom[outside]]
    dropped = reason.notna()
    per_atom = per_atom.where(~dropped)
    rejects = pd.DataFrame({"id": rows.loc[dropped, "id"], "source": rows.loc[dropped, "source"], "stage": "featurize",
                            "reason": "volume_per_atom target dropped: " + reason[dropped].astype(str)})
    return per_atom, rejects


def feature_columns(schema: dict, groups: Sequence[str] = ("geometry", "composition")) -> list[str]:
    """Feature column names of the chosen groups."""
    return [c for g in groups for c in schema["features"][g]]


def check_no_label_features(schema: dict) -> None:
    """Raise if a feature column is a target or is named after a symmetry label."""
    features = feature_columns(schema, list(schema["features"]))
    leaking = [c for c in features if c in schema["targets"]
               or (c not in ELEMENTAL_EXCEPTIONS and any(w in c.lower() for w in LABEL_WORDS))]
    if leaking:
        raise ValueError(f"feature columns derived from the targets: {leaking}")
