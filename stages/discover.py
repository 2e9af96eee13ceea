"""Stage discover: the rediscovery benchmark. Held-out chemical systems (test systems of the existence split whose known
compounds no model trained on; left out of the template library) searched by each arm of discover.benchmark.arms at
one budget of relaxations (ours: compositions ranked by the existence model, structures by the generate search;
enumeration: ours without the existence model; random: random compositions, PyXtal in random groups), placed on a
convex hull of CHGNet formation energy; scored by the known compounds put on the hull."""

import argparse
import json
import time
from functools import partial
from pathlib import Path

import joblib
import pandas as pd

from xtalml.champions import registered_champions
from xtalml.config import load_params, section
from xtalml.discovery.benchmark import known_space_groups, primary_structures, run_rediscovery, train_keys
from xtalml.discovery.existence import known_keys
from xtalml.experiments import describe_experiment
from xtalml.predict import formula_estimates, load_predictor
from xtalml.structures.csp import training_frequencies
from xtalml.structures.search import dask_client
from xtalml.tasks import DataDirs
from xtalml.tracking import experiment_id, tracking_uri

EXPERIMENT = "discovery"
SEARCH_TASKS = ("sg_from_composition", "volume_per_atom_from_composition")


def log_arms(summary, per_system, systems, cfg, started_ms: int) -> None:
    """One MLflow run per arm: the held-out systems as its dataset, its figures, the hull pictures as artifacts."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag, Metric, Param

    describe_experiment(EXPERIMENT, "The rediscovery benchmark of the discover stage: held-out chemical systems (test "
                        "systems of the existence split; none of their known compounds a training row or a template) "
                        "searched by each arm at one budget of relaxations and placed on a convex hull of CHGNet "
                        "formation energy. formula_recall: share of the known compounds proposed within hull_tolerance "
                        "of the hull. One run per arm.")
    client = mlflow.MlflowClient(tracking_uri())
    exp_id = experiment_id(client, EXPERIMENT)
    dataset = mlflow.data.from_pandas(systems, name=f"held-out systems ({len(systems)})")
    ended_ms = int(time.time() * 1000)
    params = {k: v for k, v in cfg.items() if k != "benchmark"} | {f"benchmark_{k}": v for k, v in cfg["benchmark"].items()}
    for arm, figures in summary["arms"].items():
        run = client.create_run(exp_id, start_time=started_ms, run_name=arm, tags={"arm": arm, "task": "discovery"})
        run_id = run.info.run_id
        client.log_batch(run_id, metrics=[Metric(k, float(v), ended_ms, 0) for k, v in figures.items()],
                         params=[Param(k, str(v)[:500]) for k, v in {**params, "arm": arm}.items()])
        client.log_inputs(run_id, [DatasetInput(dataset._to_mlflow_entity(),
                                                [InputTag("mlflow.data.context", "benchmark")])])
        for picture in summary["pictures"] if arm == cfg["benchmark"]["arms"][0] else []:
            client.log_artifact(run_id, picture["path"], "hulls")
        client.log_text(run_id, per_system[per_system["arm"] == arm].to_csv(index=False), "per_system.csv")
        client.set_terminated(run_id, end_time=ended_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    for name, what in (("register", "metrics/register.json: the champions that search"),
                       ("lattice", "the lattice stage's folder (lattice.pkl)"),
                       ("existence", "the existence stage's model folder"),
                       ("systems", "the existence stage's systems.parquet (its split)"),
                       ("templates", "the templates stage's library.parquet"),
                       ("references", "the references stage's folder"),
                       ("sources", "data/sources: every source's structures.parquet"),
                       ("features", "the featurize stages' folder"), ("split", "the split stage's folder"),
                       ("out", "the benchmark's folder"), ("metrics", "its figures")):
        parser.add_argument(f"--{name}", type=Path, required=True, help=what)
    parser.add_argument("--models", type=Path, nargs="+", required=True, help=f"models/<task> of {', '.join(SEARCH_TASKS)}")
    args = parser.parse_args()

    params = load_params(args.params)
    cfg = section(params, "discover", ["benchmark", "compositions", "max_atoms"])
    if {p.name for p in args.models} != set(SEARCH_TASKS) or len({p.parent for p in args.models}) != 1:
        raise SystemExit(f"discover: --models takes models/<task> of {', '.join(SEARCH_TASKS)}, one folder each")
    choice = registered_champions(SEARCH_TASKS, args.register)
    predictor = load_predictor(args.models[0].parent, choice, calibrations=False, lattice=False)
    lattice = joblib.load(args.lattice / "lattice.pkl")
    existence = joblib.load(args.existence / "existence.pkl")
    library = pd.read_parquet(args.templates)
    references = pd.read_parquet(args.references / "references.parquet").set_index("element").to_dict("index")
    names = sorted(params["sources"])
    tables = {s: pd.read_parquet(args.sources / s / "structures.parquet", columns=["formula", "sg_number"]) for s in names}
    experimental = known_keys({s: tables[s]["formula"] for s in existence["sources"]})
    every_source = known_keys({s: tables[s]["formula"] for s in names})
    splits = {s: pd.read_parquet(args.split / f"{s}.parquet") for s in names}
    trained_in = lambda task: train_keys({s: splits[s].loc[splits[s]["part"] == "train", "group"]  # noqa: E731
                                          for s in params["tasks"][task]["sources"]})
    data = DataDirs(args.features, args.split)
    frequencies = training_frequencies(params["tasks"][params["generate"]["space_group_task"]], data)
    started_ms = int(time.time() * 1000)
    start = time.perf_counter()
    with dask_client(params["generate"]["scheduler"], params["generate"]["n_workers"]) as client:
        per_system, proposals, summary = run_rediscovery(
            params, estimate=partial(formula_estimates, predictor), existence=existence["model"].existence,
            lattice=lattice, library=library, references=references, systems=pd.read_parquet(args.systems),
            experimental=experimental, every_source=every_source, trained=trained_in(SEARCH_TASKS[0]),
            volume_trained=trained_in(SEARCH_TASKS[1]),
            known_groups=known_space_groups({s: tables[s] for s in existence["sources"]}), frequencies=frequencies,
            client=client, out_dir=args.out, true_structures=primary_structures(args.sources / "primary"))
    summary["seconds"] = time.perf_counter() - start
    summary["models"] = choice
    args.out.mkdir(parents=True, exist_ok=True)
    per_system.to_parquet(args.out / "per_system.parquet", index=False)
    proposals.drop(columns=["cif"], errors="ignore").to_parquet(args.out / "proposals.parquet", index=False)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps({"arms": summary["arms"], "existence_ranking": summary["existence_ranking"],
                                        "seconds": summary["seconds"]}, indent=2) + "\n")
    systems = pd.DataFrame(summary["systems"]).assign(known=lambda t: t["known"].map(", ".join))
    log_arms(summary, per_system, systems, cfg, started_ms)
    for arm, figures in summary["arms"].items():
        print(f"discover {arm}: formula recall {figures['formula_recall']:.3f} ({figures['known_compounds']} known "
              f"compounds in {figures['systems']} systems), known space group {figures['known_space_group_share']:.3f}, "
              f"{figures['new_stable_proposals']} new stable proposals, {figures['seconds_per_system']:.0f} s/system")
    print(f"discover: {len(systems)} held-out systems in {summary['seconds']:.0f} s")


if __name__ == "__main__":  # Dask's local worker processes re-import this file
    main()
