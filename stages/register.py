"""Stage register: per task, the champion (xtalml.champions: best on the validation rows) becomes
xtalml-<task>@champion in the MLflow Model Registry; the predictor pyfunc too, its models in compact form."""

import argparse
import json
from functools import partial
from pathlib import Path

from xtalml.champions import choose_champion
from xtalml.config import load_params, section, task_models
from xtalml.models.registry import pip_requirements
from xtalml.predict import PREDICT_TASKS
from xtalml.serving import (PREDICTOR_EXPERIMENT, mark_model_training, model_requirements, register_champion,
                            register_predictor, validation_example)
from xtalml.tasks import DataDirs, model_config, read_table, task_sources
from xtalml.experiments import describe_experiment, task_description

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--models", type=Path, nargs="+", required=True, help="models/<task> of every task")
parser.add_argument("--train-metrics", type=Path, nargs="+", required=True, help="metrics/<task> of every task")
parser.add_argument("--conformal", type=Path, required=True, help="the conformal stage's calibrations")
parser.add_argument("--features", type=Path, required=True, help="the featurize stages' folder (input examples)")
parser.add_argument("--split", type=Path, required=True, help="the split stage's folder (input examples)")
parser.add_argument("--predictor", type=Path, required=True, help="models/predictor: the predictor's compact models")
parser.add_argument("--record", type=Path, required=True, help="metrics/register.json: champions and versions")
parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
args = parser.parse_args()

params = load_params(args.params)
tasks = section(params, "tasks")
models_of, metrics_of = {p.name: p for p in args.models}, {p.name: p for p in args.train_metrics}
trained = [task for task in tasks if task_models(params, task)]
missing = sorted(set(trained) - (set(models_of) & set(metrics_of)))
if missing:
    raise SystemExit(f"register: no --models or --train-metrics folder for {', '.join(missing)}")
data = DataDirs(args.features, args.split)
result, model_uris = {"chosen_on": "validation rows (never test)", "tasks": {}}, {}
for task_name in trained:
    task_cfg = tasks[task_name]
    chosen = choose_champion(params, task_name, metrics_of[task_name])
    champion, metric, score = chosen["champion"], chosen["metric"], chosen["validation"]
    needs = pip_requirements(champion, model_config(task_cfg, champion, params["models"]))
    registered = register_champion(task_name, champion, models_of[task_name] / f"{champion}.pkl",
                                   partial(validation_example, task_name, task_cfg, champion, data=data), score, metric,
                                   needs, args.tracking_uri)
    model_uris[task_name] = registered["model_uri"]
    result["tasks"][task_name] = {**chosen, "registered": registered["name"], "version": registered["version"]}
    print(f"register: {registered['name']}@champion = {champion} (validation {metric} {score:.4f}, "
          f"version {registered['version']}{', new' if registered['new_version'] else ''})")
served = {task: (result["tasks"][task]["champion"], models_of[task] / f"{result['tasks'][task]['champion']}.pkl")
          for task in PREDICT_TASKS if task in result["tasks"]}
needs = [line for task in served for line in model_requirements(model_uris[task])]
predictor = register_predictor(served, args.predictor, args.conformal, Path(args.params), args.tracking_uri, needs)
result["predictor"] = {"registered": predictor["name"], "version": predictor["version"],
                       "models": {task: model for task, (model, _) in served.items()}}
mark_model_training([*result["tasks"], PREDICTOR_EXPERIMENT], args.tracking_uri)
BASELINES = {"sg_number": "most frequent class, stratified random", "bravais_lattice": "most frequent class, stratified random",
             "volume": "the analytic cell volume", "volume_per_atom": "the fraction-weighted elemental volume"}
for task_name in result["tasks"]:  # what the MLflow experiments list shows as each experiment's description
    cfg = tasks[task_name]
    parts = read_table(task_sources(cfg), ["id"], data)["part"].value_counts().to_dict()
    describe_experiment(task_name, task_description(task_name, cfg, parts, BASELINES.get(cfg["target"], "")),
                        args.tracking_uri)
describe_experiment(PREDICTOR_EXPERIMENT, "The xtalml-predictor pyfunc: what `xtalml predict` answers (Bravais lattice, "
                    "space groups, volume per atom, cell) from each task's champion, in compact form, registered as "
                    "xtalml-predictor@champion.", args.tracking_uri)
describe_experiment("Default", "MLflow's own experiment, which every store has: xtalml logs no run here. Training runs are "
                    "in one experiment per task; seed_spread, lattice_from_composition, crystal_structure_prediction "
                    "and xtalml-predictor hold the other stages' runs.", args.tracking_uri)
print(f"register: {predictor['name']}@champion version {predictor['version']} with "
      + ", ".join(f"{task} {e['model']} ({e['form']})" for task, e in predictor["served"].items()))
args.record.parent.mkdir(parents=True, exist_ok=True)
args.record.write_text(json.dumps(result, indent=2) + "\n")
