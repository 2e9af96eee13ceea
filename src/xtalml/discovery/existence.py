"""The existence model: a classifier of "a known compound has this composition", trained on the compositions of
chemical systems (positives: formulas our experimental sources hold; negatives: the other compositions of the same
systems), split by chemical system, and scored as a ranking of each held-out system's compositions."""

from __future__ import annotations

from functools import lru_cache, reduce
from math import gcd
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from xtalml.chemistry import FormulaError, parse_formula
from xtalml.discovery.compositions import NOT_SEARCHED, exact_counts, system_name

FEATURE_GROUPS = ("magpie", "stoichiometry", "valence_orbital", "ion_property", "formula_amounts")
RECALL_AT = (1, 5, 10)


@lru_cache(maxsize=1_000_000)
def formula_key(formula: str) -> str | None:
    """A formula's integer reduced composition as 'Ca1-O3-Ti1' (elements alphabetical), or None for a formula with
    non-integer amounts (a disordered site) or one that cannot be read: two formulas of one compound share a key."""
    try:
        amounts = parse_formula(formula)
    except FormulaError:
        return None
    if any(abs(v - round(v)) > 1e-6 for v in amounts.values()):
        return None
    counts = {el: int(round(v)) for el, v in amounts.items()}
    divisor = reduce(gcd, counts.values())
    return "-".join(f"{el}{n // divisor}" for el, n in sorted(counts.items()))


def key_elements(key: str) -> tuple[str, ...]:
    """The elements of a formula_key, alphabetical."""
    return tuple(part.rstrip("0123456789") for part in key.split("-"))


def key_atoms(key: str) -> int:
    """Atoms per formula unit of a formula_key."""
    return sum(int(part.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")) for part in key.split("-"))


def known_keys(formulas_by_source: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """{formula_key: the sources that hold it} over every source's formulas (disordered formulas have no key)."""
    out: dict[str, list[str]] = {}
    for source, formulas in formulas_by_source.items():
        for formula in pd.unique(pd.Series(list(formulas)).dropna()):
            key = formula_key(str(formula))
            if key is not None and source not in out.setdefault(key, []):
                out[key].append(source)
    return out


def searchable(key: str, max_atoms: int, max_elements: int) -> bool:
    """Whether enumerating its system up to max_atoms can reach this compound."""
    elements = key_elements(key)
    return 2 <= len(elements) <= max_elements and key_atoms(key) <= max_atoms and not (set(elements) & NOT_SEARCHED)


def existence_table(known: Mapping[str, Any], *, max_atoms: int, max_elements: int,
                    systems: Sequence[str] | None = None) -> pd.DataFrame:
    """Every composition (of exactly its system's elements, up to max_atoms per formula unit) of every system that holds
    a known searchable compound (or of `systems`, 'Ca-O-Ti' names), with `known` = its key is in `known`."""
    if systems is None:
        systems = sorted({system_name(key_elements(k)) for k in known if searchable(k, max_atoms, max_elements)})
    rows = []
    for system in systems:
        elements = system.split("-")
        for counts in exact_counts(len(elements), max_atoms):
            formula = "".join(f"{el}{n}" for el, n in zip(elements, counts))  # alphabetical: its own formula_key
            key = "-".join(f"{el}{n}" for el, n in zip(elements, counts))
            rows.append((system, len(elements), formula, key, sum(counts), key in known))
    return pd.DataFrame(rows, columns=["system", "n_elements", "formula", "key", "atoms", "known"])


def system_parts(systems: Sequence[str], *, test_size: float, val_size: float, seed: int) -> pd.Series:
    """train / val / test for each chemical system (one random draw, seeded): a system's compositions share a part."""
    unique = np.array(sorted(set(systems)))
    order = np.random.default_rng(seed).permutation(len(unique))
    n_test, n_val = int(round(test_size * len(unique))), int(round(val_size * len(unique)))
    parts = np.full(len(unique), "train", dtype=object)
    parts[order[:n_test]] = "test"
    parts[order[n_test:n_test + n_val]] = "val"
    return pd.Series(parts, index=pd.Index(unique, name="system"), name="part")


def training_rows(table: pd.DataFrame, negatives_per_system: int, seed: int) -> pd.DataFrame:
    """Every known composition and at most negatives_per_system others drawn at random per system."""
    rng = np.random.default_rng(seed)
    known = table[table["known"]]
    others = table[~table["known"]]
    draw = rng.random(len(others))
    rank = pd.Series(draw, index=others.index).groupby(others["system"]).rank(method="first")
    return pd.concat([known, others[rank <= negatives_per_system]]).sort_index()


def composition_matrix(formulas: Sequence[str], groups: Sequence[str] = FEATURE_GROUPS) -> np.ndarray:
    """The composition features of formulas (NaN rows for formulas they cannot read)."""
    from xtalml.features.composition import composition_features

    table, _ = composition_features(list(formulas), groups=tuple(groups))
    return table.to_numpy(float)


class CompositionClassifier(ClassifierMixin, BaseEstimator):
    """A classifier of formulas: their composition features (feature_groups) into a clone of `estimator`."""

    def __init__(self, estimator: Any = None, *, feature_groups: Sequence[str] = FEATURE_GROUPS):
        self.estimator = estimator
        self.feature_groups = feature_groups

    def fit(self, X: Sequence[str], y, *, eval_set=None) -> "CompositionClassifier":
        from xtalml.models.boosting import LightGBMClassifier
        from xtalml.models.conventions import takes_eval_set

        self.estimator_ = clone(self.estimator if self.estimator is not None else LightGBMClassifier())
        features = composition_matrix(X, self.feature_groups)
        kwargs = {}
        if eval_set and takes_eval_set(self.estimator_):
            kwargs["eval_set"] = [(composition_matrix(eval_set[0][0], self.feature_groups), eval_set[0][1])]
        self.estimator_.fit(features, np.asarray(y), **kwargs)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        return self.estimator_.predict_proba(composition_matrix(X, self.feature_groups))

    def predict(self, X: Sequence[str]) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def existence(self, formulas: Sequence[str]) -> np.ndarray:
        """The probability that a known compound has each composition."""
        proba = self.predict_proba(formulas)
        return proba[:, list(self.classes_).index(True)]


def ranking_figures(table: pd.DataFrame, score: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """How well `score` ranks each system's known compositions first: average precision over all rows and its mean
    over systems, and recall at k (share of a system's known compositions among its k best, averaged over systems);
    ties are broken at random (seeded), so a constant score ranks as random order does."""
    from sklearn.metrics import average_precision_score

    frame = table[["system", "known"]].copy()
    frame["score"] = np.asarray(score, float)
    frame["tie"] = np.random.default_rng(seed).random(len(frame))
    frame = frame.sort_values(["system", "score", "tie"], ascending=[True, False, False])
    frame["rank"] = frame.groupby("system").cumcount() + 1
    with_known = frame.groupby("system")["known"].transform("any")
    per_system = frame[with_known]
    figures = {"average_precision": float(average_precision_score(frame["known"], frame["score"] + 1e-9 * frame["tie"])),
               "mean_system_average_precision": float(per_system.groupby("system").apply(
                   lambda g: average_precision_score(g["known"], g["score"] + 1e-9 * g["tie"]),
                   include_groups=False).mean()),
               "positive_rate": float(frame["known"].mean()),
               "systems": int(per_system["system"].nunique()), "compositions": int(len(frame))}
    for k in RECALL_AT:
        hit = per_system.assign(hit=per_system["known"] & (per_system["rank"] <= k))
        sums = hit.groupby("system")[["hit", "known"]].sum()
        figures[f"recall_at_{k}"] = float((sums["hit"] / sums["known"]).mean())
    return figures


def train_existence(cfg: Mapping[str, Any], formulas_by_source: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The existence model of the existence section of params.yaml, fitted on its train systems (known compositions and
    negatives_per_system others each), stopped early on its val systems, and scored on every composition of the val and
    test systems beside the charge-balance rule and random order: {model, systems, held_out, metrics, known,
    train_rows}."""
    from xtalml.discovery.compositions import charge_balanced
    from xtalml.models.boosting import LightGBMClassifier

    known = known_keys({s: formulas_by_source[s] for s in cfg["sources"]})
    table = existence_table(known, max_atoms=cfg["max_atoms"], max_elements=cfg["max_elements"])
    parts = system_parts(table["system"], test_size=cfg["test_size"], val_size=cfg["val_size"], seed=cfg["seed"])
    table["part"] = table["system"].map(parts)
    train = training_rows(table[table["part"] == "train"], cfg["negatives_per_system"], cfg["seed"])
    stopping = training_rows(table[table["part"] == "val"], cfg["negatives_per_system"], cfg["seed"] + 1)
    model = CompositionClassifier(LightGBMClassifier(**cfg["model"], seed=cfg["seed"]))
    model.fit(train["formula"].to_numpy(), train["known"].to_numpy(),
              eval_set=[(stopping["formula"].to_numpy(), stopping["known"].to_numpy())])
    held_out = table[table["part"] != "train"].reset_index(drop=True)
    held_out["existence"] = model.existence(held_out["formula"].to_numpy())
    held_out["charge_balanced"] = charge_balanced(list(held_out["formula"]))
    metrics: dict[str, Any] = {}
    for part in ("val", "test"):
        rows = held_out[held_out["part"] == part]
        metrics[part] = {"existence_model": ranking_figures(rows, rows["existence"].to_numpy()),
                         "charge_balance_rule": ranking_figures(rows, rows["charge_balanced"].to_numpy(float)),
                         "random_order": ranking_figures(rows, np.zeros(len(rows)), seed=cfg["seed"])}
    counts = table.groupby("system").agg(part=("part", "first"), n_elements=("n_elements", "first"),
                                         known=("known", "sum"), compositions=("formula", "size")).reset_index()
    metrics["rows"] = {"train": int(len(train)), "train_known": int(train["known"].sum()),
                       "systems": {p: int((counts["part"] == p).sum()) for p in ("train", "val", "test")},
                       "best_iteration": int(model.estimator_.best_iteration_)}
    return {"model": model, "systems": counts, "held_out": held_out, "metrics": metrics, "known": known,
            "train_rows": train}
