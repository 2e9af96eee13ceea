"""Each task's champion: the trained model best on the task's validation rows, never on its test rows.

Chosen here and nowhere else. The register stage records the choice in metrics/register.json; conformal, lattice and
the report choose with the same functions from the train stages' metrics files; predict and generate read the record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from xtalml.config import task_models

REGISTER_FILE = Path("metrics/register.json")


class NoChampion(FileNotFoundError):
    """No champion recorded for a task; the message names the stage to run."""


def validation_metric(kind: str) -> str:
    """The champion's criterion: validation accuracy for a classifier, MAE for a regressor."""
    return "accuracy" if kind == "classification" else "mae"


def validation_scores(task_metrics: Path, models: Sequence[str]) -> dict[str, float]:
    """Each model's score on a task's validation rows, as its train stage wrote it to <task_metrics>/<model>.json
    (task_metrics: metrics/<task>)."""
    scores = {}
    task = Path(task_metrics).name
    for model in models:
        path = Path(task_metrics) / f"{model}.json"
        if not path.exists():
            raise NoChampion(f"{path} is missing: run `dvc repro` for the train stage of {task} and {model}")
        recorded = json.loads(path.read_text()).get("validation")
        if not recorded:
            raise ValueError(f"{path} holds no validation score: task {task} has no validation rows (the champion is "
                             f"chosen on them, never on test), or its train stage predates them; re-run it")
        scores[model] = float(recorded["accuracy" if "accuracy" in recorded else "mae"])
    return scores


def pick_champion(scores: Mapping[str, float], kind: str) -> str:
    """Best validation score (highest accuracy, lowest MAE); ties go to the first name in sorted order."""
    if not scores:
        raise NoChampion("no trained model to choose a champion from")
    sign = -1.0 if kind == "classification" else 1.0
    return min(sorted(scores), key=lambda m: sign * scores[m])


def choose_champion(params: Mapping[str, Any], task: str, task_metrics: Path) -> dict[str, Any]:
    """{champion, metric, validation} of one task among the models the train stages fit on it, from their metrics
    files in task_metrics (metrics/<task>)."""
    kind = params["tasks"][task]["kind"]
    models = task_models(dict(params), task)
    if not models:
        raise NoChampion(f"no model trains on {task}: add one to a group of train.matrix")
    scores = validation_scores(task_metrics, models)
    champion = pick_champion(scores, kind)
    return {"champion": champion, "metric": validation_metric(kind), "validation": scores[champion]}


def registered_champions(tasks: Sequence[str], register_file: Path = REGISTER_FILE) -> dict[str, str]:
    """{task: champion} as the register stage recorded it, for each task asked; an error names the stage to run."""
    if not tasks:
        return {}
    try:
        recorded = json.loads(Path(register_file).read_text())["tasks"]
    except FileNotFoundError:
        raise NoChampion(f"{register_file} is missing: run `dvc repro register` to choose the champions (or name a "
                         f"model for each task)") from None
    except (KeyError, json.JSONDecodeError):
        raise NoChampion(f"{register_file} holds no champions: run `dvc repro register` again") from None
    missing = [task for task in tasks if not recorded.get(task, {}).get("champion")]
    if missing:
        raise NoChampion(f"{register_file} names no champion for {', '.join(missing)}: train a model on it and run "
                         f"`dvc repro register` (or name a model for it)")
    return {task: recorded[task]["champion"] for task in tasks}
