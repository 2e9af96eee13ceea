"""Answer new formulas and CIFs with the models `dvc repro` trained: Bravais lattice, space group, volumes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xtalml.cif.pool import DEFAULT_TIMEOUT_S
from xtalml.cif.symmetry import space_group_info
from xtalml.config import load_params
from xtalml.features.composition import AMOUNTS_GROUP, GROUPS, composition_features, element_tokens, formula_arrays
from xtalml.features.embeddings import table_specs

PREDICT_TASKS = ("bravais_from_composition", "sg_from_composition", "volume_per_atom_from_composition")
SERVING_DIR = "predictor"  # models/predictor: the register stage's champions in the form that loads fastest
TASK_COLUMNS = {"bravais_from_composition": "bravais", "sg_from_composition": "space_group",
                "volume_per_atom_from_composition": "volume_per_atom"}


@dataclass
class Predictor:
    """The fitted models for each question, loaded once for a whole batch."""

    bundles: dict[str, dict[str, Any]]
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)
    lattice: dict[str, Any] | None = None  # the lattice stage's model (models/lattice/lattice.pkl), when trained
    params_path: Path = Path("params.yaml")  # where the element tables of the embedding feature sets are declared
    # (params_path, groups, tables) once read: parsing params.yaml cost about half of a one-formula answer
    _groups: tuple | None = field(default=None, repr=False)

    def _proba(self, task: str, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model = self.bundles[task]["model"]
        return model.predict_proba(X), np.asarray(model.classes_).astype(str)


def serving_models(models_dir: Path = Path("models")) -> dict[str, str]:
    """{task: model} of the models the register stage wrote to models/predictor ({} before it has run)."""
    try:
        manifest = json.loads((Path(models_dir) / SERVING_DIR / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {task: entry["model"] for task, entry in manifest.items()}


def load_predictor(models_dir: Path = Path("models"), choice: Mapping[str, str] | None = None,
                   mlflow_runs: Sequence[str] = (), tracking_uri: str | None = None, serving: bool = False, *,
                   calibrations: bool = True, lattice: bool = True) -> Predictor:
    """Load models/<task>/<model>.pkl for each task of `choice` (by default every task, with the champion the register
    stage recorded in metrics/register.json), or a logged
    MLflow run's model in place of its task's file. serving=True reads a model from models/predictor instead where the
    register stage wrote that model there (the compact form: the same answers, memory-mapped, loaded in milliseconds).
    calibrations, lattice: also read models/conformal/*.json and models/lattice/lattice.pkl where they exist (a stage
    that does not declare them turns them off)."""
    import joblib

    from xtalml.features.composition import use_saved_elemental_tables
    from xtalml.models.compact import ELEMENT_TABLES, load_compact

    from xtalml.champions import registered_champions

    bundles, names = {}, dict(choice) if choice else registered_champions(PREDICT_TASKS)
    served = serving_models(models_dir) if serving else {}
    if served and (Path(models_dir) / SERVING_DIR / ELEMENT_TABLES).exists():
        use_saved_elemental_tables(Path(models_dir) / SERVING_DIR / ELEMENT_TABLES)
    for run_id in mlflow_runs:
        task, model, bundle = _bundle_from_mlflow(run_id, tracking_uri)
        bundles[task], names[task] = bundle, model
    for task, model in names.items():
        if task in bundles:
            continue
        if served.get(task) == model:
            bundles[task] = load_compact(Path(models_dir) / SERVING_DIR / f"{task}.joblib")
            continue
        path = Path(models_dir) / task / f"{model}.pkl"
        if not path.exists():
            raise FileNotFoundError(f"model file {path} is missing: run `dvc repro --glob 'train_*@{task}-{model}'` "
                                    f"first")
        bundles[task] = joblib.load(path)
    for task, model in names.items():
        bundles[task]["name"] = model
    calibration = {}
    for path in sorted((Path(models_dir) / "conformal").glob("*.json")) if calibrations else ():
        cal = json.loads(path.read_text())
        calibration[cal["task"]] = cal
    lattice_path = Path(models_dir) / "lattice" / "lattice.pkl"
    cells = (load_compact(lattice_path) if lattice and "sg_from_composition" in bundles and lattice_path.exists()
             else None)
    return Predictor(bundles, calibration, lattice=cells)


def headline_cells(lattice_bundle: Mapping[str, Any], features: pd.DataFrame, formulas: Sequence[str],
                   bravais: Sequence[str | None], volume_per_atom: Sequence[float | None]) -> list[dict[str, Any] | None]:
    """a, b, c, alpha, beta, gamma of each row's headline-lattice conventional cell: the lattice model's shape, the
    volume per atom times the atoms of Z formula units (Z: the lattice's median over the train rows); None where the
    lattice, the volume or an ordered formula is missing. One model call per lattice, not per row."""
    from xtalml.structures.candidates import CandidateError, formula_counts
    from xtalml.structures.lattice import cell_parameters

    atoms: list[int | None] = []
    for formula, lattice, volume in zip(formulas, bravais, volume_per_atom):
        try:
            ok = bool(lattice) and volume is not None and bool(np.isfinite(volume))
            atoms.append(sum(formula_counts(formula, 10_000)[1]) if ok else None)
        except CandidateError:
            atoms.append(None)
    rows = [i for i, n in enumerate(atoms) if n is not None]
    out: list[dict[str, Any] | None] = [None] * len(formulas)
    if not rows:
        return out
    X = features.iloc[rows][lattice_bundle["feature_names"]].to_numpy(float)
    free = lattice_bundle["model"].predict(X, [bravais[i] for i in rows])
    for i, shape in zip(rows, free):
        units = max(1, int(round(lattice_bundle["formula_units"].get(bravais[i], 1.0))))
        cell = cell_parameters(bravais[i], shape, volume_per_atom[i] * units * atoms[i])
        out[i] = {"formula_units": units, **{k: round(float(v), 4) for k, v in cell.items()}}
    return out


def _bundle_from_mlflow(run_id: str, uri: str | None) -> tuple[str, str, dict[str, Any]]:
    """(task, model, bundle) of a training run: its logged MLflow model, feature names from the model's signature."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from xtalml.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(uri))
    client = mlflow.MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise FileNotFoundError(f"MLflow run {run_id} not found in {tracking_uri(uri)}") from exc
    task, model = run.data.tags.get("task"), run.data.tags.get("model")
    if task not in PREDICT_TASKS:
        raise FileNotFoundError(f"MLflow run {run_id} is a {task!r} run; predict uses runs of {', '.join(PREDICT_TASKS)}")
    model_uri = run.data.tags.get("model_uri")
    if not model_uri:
        raise FileNotFoundError(f"MLflow run {run_id} logged no model (tag model_uri); re-run its train stage")
    try:
        estimator = mlflow.sklearn.load_model(model_uri)
        names = mlflow.models.get_model_info(model_uri).signature.inputs.input_names()
    except (MlflowException, OSError) as exc:
        raise FileNotFoundError(f"MLflow run {run_id}: cannot load its model {model_uri}: {exc}") from exc
    return task, model, {"model": estimator, "feature_names": list(names), "task": task}


def feature_groups(predictor: Predictor, params_path: Path = Path("params.yaml")) -> tuple[list[str], dict[str, Any]]:
    """The composition groups the loaded models were trained on, and the element tables those need."""
    tables: dict[str, Any] = {}
    try:
        tables = table_specs(load_params(params_path)["featurize"].get("element_tables"))
    except (FileNotFoundError, KeyError):
        pass
    names = {n for bundle in predictor.bundles.values() for n in bundle["feature_names"]}
    needed = [t for t in tables if any(n.startswith(f"{t}_") for n in names)]
    return [*GROUPS, AMOUNTS_GROUP, *needed], {t: tables[t] for t in needed}


def calibration_for(predictor: Predictor) -> dict[str, Any]:
    """The conformal calibration of the space-group model in use (errors name what to run or choose)."""
    task = "sg_from_composition"
    cal = predictor.calibration.get(task)
    if cal is None:
        raise FileNotFoundError("no conformal calibration (models/conformal/sg_from_composition.json): "
                                "run `dvc repro conformal` first")
    if cal["model"] != predictor.bundles[task].get("name"):
        raise ValueError(f"the conformal calibration is for {cal['model']}, but space groups come from "
                         f"{predictor.bundles[task].get('name')}: use --sg-from-composition {cal['model']}, or "
                         f"`dvc exp run -S conformal.model={predictor.bundles[task].get('name')}`")
    return cal


def space_group_sets(predictor: Predictor, proba: np.ndarray, classes: np.ndarray, coverage: float,
                     formulas: Sequence[str]) -> list[list[dict]]:
    """Split-conformal space-group sets at the given coverage, most probable group first; with a Mondrian
    calibration, each formula gets the threshold of its group (its number of elements)."""
    from xtalml.evaluation.conformal import mondrian_key, mondrian_sets, mondrian_thresholds

    cal = calibration_for(predictor)
    scores = np.asarray(cal["scores"], float)
    keys = np.asarray(cal.get("keys") or np.zeros(len(scores), dtype=int))
    thresholds = mondrian_thresholds(scores, keys, coverage)
    mask = mondrian_sets(proba, mondrian_key(formulas, cal.get("mondrian")), thresholds)
    sets = []
    for row, keep in zip(proba, mask):
        idx = np.flatnonzero(keep)
        sets.append([_sg_entry(classes[j], row[j]) for j in idx[np.argsort(-row[idx], kind="stable")]])
    return sets


def _sg_entry(label: str, p: float) -> dict[str, Any]:
    if label.isdigit():
        symbol, _, lattice = space_group_info(int(label))
        return {"number": int(label), "symbol": symbol, "lattice": lattice, "p": round(float(p), 4)}
    return {"number": None, "symbol": label, "lattice": None, "p": round(float(p), 4)}


@lru_cache(maxsize=16)
def _lattice_members(classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """{Bravais lattice: indices of the space-group classes in it}, lattices sorted; merged classes belong to none."""
    lattice_of = np.array([space_group_info(int(c))[2] if c.isdigit() else "" for c in classes])
    return {lat: np.flatnonzero(lattice_of == lat) for lat in sorted(set(lattice_of) - {""})}


def lattice_and_group(group_proba: np.ndarray, group_classes: np.ndarray,
                      lattice_proba: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The headline answer: a Bravais lattice and the most probable space group of that lattice, never contradicting.

    The lattice is the most probable one (by the Bravais model when given, else by summing the space-group
    probabilities per lattice) among those that some space-group class belongs to.
    """
    members = _lattice_members(tuple(np.asarray(group_classes).astype(str)))
    if not members:  # only merged classes: no lattice can be named
        j = int(np.argmax(group_proba))
        return {"bravais_lattice": None, "space_group": _sg_entry(str(group_classes[j]), group_proba[j])}
    mass = {lat: float(group_proba[idx].sum()) for lat, idx in members.items()}
    score = mass if lattice_proba is None else {lat: float(lattice_proba.get(lat, 0.0)) for lat in members}
    lattice = max(members, key=lambda lat: (score[lat], mass[lat]))
    inside = members[lattice]
    j = int(inside[np.argmax(group_proba[inside])])
    return {"bravais_lattice": lattice, "space_group": _sg_entry(str(group_classes[j]), group_proba[j])}


def _formula_features(predictor: Predictor, formulas: Sequence[str]) -> tuple[pd.DataFrame, dict[int, str]]:
    """Every feature the loaded models read, one row per formula, and {row: problem} for formulas that cannot be read."""
    if predictor._groups is None or predictor._groups[0] != predictor.params_path:
        predictor._groups = (predictor.params_path, *feature_groups(predictor, predictor.params_path))
    _, groups, tables = predictor._groups
    parsed = formula_arrays(list(formulas))
    features, errors = composition_features(list(formulas), groups, tables, parsed)
    features = pd.concat([features.reset_index(drop=True), element_tokens(list(formulas), parsed=parsed)], axis=1)
    return features, errors


def formula_estimates(predictor: Predictor, formulas: Sequence[str]) -> dict[str, Any]:
    """What a structure search needs of each formula: the space-group probabilities (every class), the volume per atom,
    and {formula: problem} for formulas the models cannot read; rows follow `formulas`, NaN where there is a problem."""
    features, errors = _formula_features(predictor, formulas)
    out: dict[str, Any] = {"errors": {formulas[i]: reason for i, reason in errors.items()}, "features": features}
    good = np.array([i not in errors for i in range(len(formulas))], dtype=bool)
    for task, key in (("sg_from_composition", "space_group"), ("volume_per_atom_from_composition", "volume_per_atom")):
        if task not in predictor.bundles:
            continue
        bundle = predictor.bundles[task]
        X = features.loc[good, bundle["feature_names"]].to_numpy(float)
        if key == "space_group":
            proba, classes = predictor._proba(task, X) if good.any() else (np.zeros((0, 0)), np.array([], dtype=str))
            full = np.full((len(formulas), proba.shape[1]), np.nan)
            full[good] = proba
            out["space_group_proba"], out["space_group_classes"] = full, classes
        else:
            full = np.full(len(formulas), np.nan)
            full[good] = bundle["model"].predict(X) if good.any() else []
            out["volume_per_atom"] = full
    return out


def predict_formulas(predictor: Predictor, formulas: Sequence[str],
                     coverage: float | None = None) -> tuple[list[dict], dict[str, str]]:
    """One answer per good formula (in input order) and {formula: problem} for the others; sets when coverage is given."""
    features, errors = _formula_features(predictor, formulas)
    good = [i for i in range(len(formulas)) if i not in errors]
    models = {task: bundle.get("name") for task, bundle in predictor.bundles.items()}
    answers: list[dict] = [{"input": formulas[i], "formula": formulas[i], "models": dict(models)} for i in good]
    if good:
        frame = features.iloc[good]
        probas = {}
        for task, key, k in (("bravais_from_composition", "bravais_top3", 3), ("sg_from_composition", "space_group_top5", 5)):
            if task in predictor.bundles:
                X = frame[predictor.bundles[task]["feature_names"]].to_numpy(float)
                proba, classes = probas[task] = predictor._proba(task, X)
                best = np.argsort(-proba, axis=1, kind="stable")[:, :k]
                for answer, row, idx in zip(answers, proba, best):
                    answer[key] = ([{"lattice": classes[j], "p": round(float(row[j]), 4)} for j in idx]
                                   if key == "bravais_top3" else [_sg_entry(classes[j], row[j]) for j in idx])
                if key == "space_group_top5" and coverage is not None:
                    sets = space_group_sets(predictor, proba, classes, coverage, [formulas[i] for i in good])
                    for answer, groups in zip(answers, sets):
                        answer["space_group_set"] = {"coverage": coverage, "groups": groups}
        if "sg_from_composition" in probas:
            group_proba, group_classes = probas["sg_from_composition"]
            lattice_proba, lattice_classes = probas.get("bravais_from_composition", (None, None))
            for i, answer in enumerate(answers):
                lattices = None if lattice_proba is None else dict(zip(lattice_classes, lattice_proba[i]))
                answer["prediction"] = lattice_and_group(group_proba[i], group_classes, lattices)
        task = "volume_per_atom_from_composition"
        if task in predictor.bundles:
            bundle = predictor.bundles[task]
            volumes = bundle["model"].predict(frame[bundle["feature_names"]].to_numpy(float))
            for answer, v in zip(answers, volumes):  # NaN: the model cannot read this formula (too many elements)
                answer["volume_per_atom"] = None if np.isnan(v) else round(float(v), 3)
        if predictor.lattice is not None:
            cells = headline_cells(predictor.lattice, frame, [a["formula"] for a in answers],
                                   [a.get("prediction", {}).get("bravais_lattice") for a in answers],
                                   [a.get("volume_per_atom") for a in answers])
            for answer, cell in zip(answers, cells):
                if cell:
                    answer["cell"] = cell
    return answers, {formulas[i]: reason for i, reason in errors.items()}


def default_timeout(params_path: Path = Path("params.yaml")) -> float:
    """Seconds one CIF may take to parse: the parse stage's timeout_s from params.yaml, else the pool's default."""
    try:
        return float(load_params(params_path)["parse"]["timeout_s"])
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return DEFAULT_TIMEOUT_S


def predict_cifs(predictor: Predictor, paths: Sequence[Path], coverage: float | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, workers: int = 2) -> tuple[list[dict], dict[str, str]]:
    """Answers for the structures in CIF files: the formula's predictions plus the cell volume from the cell.

    Each file is parsed in a worker process with the parse stage's time limit, so a file that hangs or crashes
    the reader becomes an error for that file only.
    """
    from xtalml.cif.parse import parse_cif
    from xtalml.cif.pool import map_with_timeout
    from xtalml.features.geometry import analytic_volume

    rows, errors = [], {}
    items = list(dict.fromkeys(str(p) for p in paths))
    done = {item: (status, result) for item, status, result in
            (map_with_timeout(parse_cif, items, min(workers, len(items)), timeout_s) if items else ())}
    for item in items:
        path, (status, result) = Path(item), done[item]
        if status != "ok":
            errors[item] = f"{status}: {result}"
            continue
        parsed, rejects = result
        for reject in rejects:
            errors[f"{path}" + (f" ({reject['id']})" if reject["id"] != Path(path).stem else "")] = reject["reason"]
        for row in parsed:
            if row["formula_error"]:
                errors[str(path)] = row["formula_error"]
                continue
            rows.append((str(path), row))
    answers, formula_errors = predict_formulas(predictor, [r["formula"] for _, r in rows], coverage)
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
        if "prediction" in a:
            group = a["prediction"]["space_group"]
            row["bravais"] = a["prediction"]["bravais_lattice"]
            row["space_group"] = f"{group['number']} {group['symbol']}" if group["number"] else group["symbol"]
        for i, entry in enumerate(a.get("bravais_top3", []), 1):
            row[f"bravais_{i}"], row[f"p_bravais_{i}"] = entry["lattice"], entry["p"]
        for i, entry in enumerate(a.get("space_group_top5", []), 1):
            row[f"sg_{i}"] = f"{entry['number']} {entry['symbol']}" if entry["number"] else entry["symbol"]
            row[f"p_sg_{i}"] = entry["p"]
        if "space_group_set" in a:
            row["sg_set_size"] = len(a["space_group_set"]["groups"])
            row["sg_set"] = " ".join(str(e["number"] or e["symbol"]) for e in a["space_group_set"]["groups"])
        for key in ("volume_per_atom", "cell_volume"):
            if key in a:
                row[key] = a[key]
        for key, value in a.get("cell", {}).items():  # the headline lattice's predicted cell
            row[key if key == "formula_units" else f"cell_{key}"] = value
        for task, model in a.get("models", {}).items():  # which model gave each answer
            row[f"model_{TASK_COLUMNS[task]}"] = model
        rows.append(row)
    return pd.DataFrame(rows)
