"""Stage seed_spread@<task>-<model>: a torch model refit at seed_spread.seeds beside its train stage's seed; each test
figure's mean and spread, and whether the ranking against the task's nearest model holds whatever the seed."""

import argparse
import json
from pathlib import Path

from xtalml.config import load_params, section
from xtalml.experiments import describe_experiment
from xtalml.studies.seed_spread import headline_spread, retrain_over_seeds, seed_spread
from xtalml.models.registry import fix_thread_counts
from xtalml.tasks import DataDirs
from xtalml.tracking import flatten, log_results, training_run

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--task", required=True)
parser.add_argument("--model", required=True)
parser.add_argument("--features", type=Path, required=True, help="the featurize stages' folder")
parser.add_argument("--split", type=Path, required=True, help="the split stage's folder")
parser.add_argument("--task-metrics", type=Path, required=True, help="metrics/<task>: every model's test figures")
parser.add_argument("--evaluation", type=Path, required=True, help="each seed's figures, mean, spread (.json)")
parser.add_argument("--metrics", type=Path, required=True, help="mean and spread of the test figures (.json)")
args = parser.parse_args()

params = load_params(args.params)
tasks, models, train = section(params, "tasks"), section(params, "models"), section(params, "train")
seeds = [int(s) for s in section(params, "seed_spread", ["seeds"])["seeds"]]
if args.task not in tasks or args.model not in models:
    raise SystemExit(f"seed_spread: {args.task}-{args.model} is not a task and model of params.yaml")
train_seed = int(train["seed"])
if train_seed in seeds:
    raise SystemExit(f"seed_spread.seeds {seeds} holds train.seed ({train_seed}), whose run the train stage made")
if args.model not in {path.stem for path in args.task_metrics.glob("*.json")}:
    raise SystemExit(f"seed_spread: {args.task_metrics / args.model}.json is missing; train_*@{args.task}-{args.model} "
                     f"is not in train.matrix, or has not run")
fix_thread_counts([args.model], models, train.get("torch_threads", 1))  # as the train stage, so seeds alone differ
per_seed = retrain_over_seeds(args.task, tasks[args.task], args.model, models[args.model], seeds,
                              DataDirs(args.features, args.split))
per_seed[train_seed] = flatten(json.loads((args.task_metrics / f"{args.model}.json").read_text()))
result = {"task": args.task, "model": args.model,
          **seed_spread(per_seed, train_seed, tasks[args.task]["kind"], args.model, args.task_metrics)}
for path in (args.evaluation, args.metrics):
    path.parent.mkdir(parents=True, exist_ok=True)
args.evaluation.write_text(json.dumps(result, indent=2) + "\n")
headline = headline_spread(result)
args.metrics.write_text(json.dumps(headline, indent=2) + "\n")
describe_experiment("seed_spread", "Torch models refit at seed_spread.seeds beside their train stage's seed (train.seed), "
                    "on the same rows, threads and pinned kernels: one run per task and model with each test figure's "
                    "mean and spread over the seeds, the task's nearest other model and whether the ranking against "
                    "every other model holds whatever the seed.")
with training_run("seed_spread", f"{args.task}/{args.model}"):
    log_results(flatten({"seeds": result["seeds"], "train_seed": train_seed}), flatten(headline),
                [], {"task": args.task, "seed_spread_of": args.model}, [args.evaluation])
key = result["nearest_model"]["metric"]
print(f"seed_spread {args.task}-{args.model}: {key} over seeds {result['seeds']}: {result['metrics'][key]}; "
      f"nearest model {result['nearest_model']}")
