"""Answer new formulas and CIFs with the models `dvc repro` trained: Bravais lattice, space group, volumes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import joblib
import numpy as np
import pandas as pd

from xtalml.cif.parse import parse_cif
from xtalml.cif.symmetry import space_group_info
from xtalml.features.composition import composition_features
from xtalml.features.geometry import analytic_volume

DEFAULT_MODELS = {"bravais_from_composition": "random_forest", "sg_from_composition": "random_forest",
                  "volume_per_atom_from_composition": "mlp_regressor"}


@dataclass
class Predictor:
    """The fitted models for each question, loaded once for a whole batch."""

    bundles: dict[str, dict[str, Any]]

    def _proba(self, task: str, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model = self.bundles[task]["model"]
        return model.predict_proba(X), np.asarray(model.classes_).astype(str)


def load_predictor(models_dir: Path = Path("models"), choice: Mapping[str, str] | None = None) -> Predictor:
    """Load models/<task>/<model>.pkl for each task (raises FileNotFoundError naming the missing file)."""
    bundles = {}
    for task, model in (choice or DEFAULT_MODELS).items():
        path = Path(models_dir) / task / f"{model}.pkl"
        if not path.exists():
            raise FileNotFoundError(f"model file {path} is missing: run `dvc repro train@{task}--{model}` first")
        bundles[task] = joblib.load(path)
    return Predictor(bundles)


def _sg_entry(label: str, p: float) -> dict[str, Any]:
    if label.isdigit():
        return {"number": int(label), "symbol": space_group_info(int(label))[0], "p": round(float(p), 4)}
    return {"number": None, "symbol": label, "p": round(float(p), 4)}


def predict_formulas(predictor: Predictor, formulas: Sequence[str]) -> tuple[list[dict], dict[str, str]]:
    """One answer per good formula (in input order) and {formula: problem} for the others."""
    features, errors = composition_features(list(formulas))
    good = [i for i in range(len(formulas)) if i not in errors]
    answers: list[dict] = [{"input": formulas[i], "formula": formulas[i]} for i in good]
    if good:
        frame = features.iloc[good]
        for task, key, k in (("bravais_from_composition", "bravais_top3", 3), ("sg_from_composition", "space_group_top5", 5)):
            if task in predictor.bundles:
                X = frame[predictor.bundles[task]["feature_names"]].to_numpy(float)
                proba, classes = predictor._proba(task, X)
                best = np.argsort(-proba, axis=1, kind="stable")[:, :k]
                for answer, row, idx in zip(answers, proba, best):
                    answer[key] = ([{"lattice": classes[j], "p": round(float(row[j]), 4)} for j in idx]
                                   if key == "bravais_top3" else [_sg_entry(classes[j], row[j]) for j in idx])
        task = "volume_per_atom_from_composition"
        if task in predictor.bundles:
            bundle = predictor.bundles[task]
            volumes = bundle["model"].predict(frame[bundle["feature_names"]].to_numpy(float))
            for answer, v in zip(answers, volumes):
                answer["volume_per_atom"] = round(float(v), 3)
    return answers, {formulas[i]: reason for i, reason in errors.items()}


def predict_cifs(predictor: Predictor, paths: Sequence[Path]) -> tuple[list[dict], dict[str, str]]:
    """Answers for the structures in CIF files: the formula's predictions plus the cell volume from the cell."""
    rows, errors = [], {}
    for path in paths:
        parsed, rejects = parse_cif(path)
        for reject in rejects:
            errors[f"{path}" + (f" ({reject['id']})" if reject["id"] != Path(path).stem else "")] = reject["reason"]
        for row in parsed:
            if row["formula_error"]:
                errors[str(path)] = row["formula_error"]
                continue
            rows.append((str(path), row))
    answers, formula_errors = predict_formulas(predictor, [r["formula"] for _, r in rows])
    by_formula = {a["formula"]: a for a in answers}
    out = []
    for path, row in rows:
        if row["formula"] in formula_errors:
            errors[path] = formula_errors[row["formula"]]
            continue
        answer = {**by_formula[row["formula"]], "input": path}
        answer["cell_volume"] = round(float(analytic_volume(*(row[k] for k in ("a", "b", "c", "alpha", "beta", "gamma")))), 3)
        out.append(answer)
    return out, errors


def answers_table(answers: list[dict]) -> pd.DataFrame:
    """Flat table of answers for the terminal or CSV."""
    rows = []
    for a in answers:
        row = {"input": a["input"], "formula": a["formula"]}
        for i, entry in enumerate(a.get("bravais_top3", []), 1):
            row[f"bravais_{i}"], row[f"p_bravais_{i}"] = entry["lattice"], entry["p"]
        for i, entry in enumerate(a.get("space_group_top5", []), 1):
            row[f"sg_{i}"] = f"{entry['number']} {entry['symbol']}" if entry["number"] else entry["symbol"]
            row[f"p_sg_{i}"] = entry["p"]
        for key in ("volume_per_atom", "cell_volume"):
            if key in a:
                row[key] = a[key]
        rows.append(row)
    return pd.DataFrame(rows)
