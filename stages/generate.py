"""Stage generate: the CSP benchmark. Held-out ordered structures of generate.benchmark.source searched by each arm of generate.arms at the
same candidate budget (ours: templates and PyXtal steered by the space-group model; random search; the oracle, in the
true group), relaxed with CHGNet on Dask; never a template of the target's own formula."""

import argparse
import time
from functools import partial
from pathlib import Path

import joblib
import pandas as pd

from xtalml.champions import registered_champions
from xtalml.config import load_params, section
from xtalml.experiments import describe_experiment
from xtalml.predict import formula_estimates, load_predictor
from xtalml.structures.csp import headline, run_benchmark, write_outputs
from xtalml.tasks import DataDirs
from xtalml.tracking import experiment_id, tracking_uri

EXPERIMENT = "crystal_structure_prediction"

SEARCH_TASKS = ("sg_from_composition", "volume_per_atom_from_composition")


def log_arms(summary, per_formula, cfg, choice, out: Path, started_ms: int) -> None:
    """One MLflow run per arm that spans the benchmark's work (the arms' relaxations share the workers), with the
    benchmark formulas as its input dataset, its figures, and its CIFs (and the pictures) as artifacts."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag, Metric, Param

    describe_experiment(EXPERIMENT, "The CSP benchmark of the generate stage: held-out ordered structures searched from "
                        "their formula by each arm at one budget of relaxed candidates (ours: templates and PyXtal "
                        "steered by the space-group model; random search; the oracle in the true group), scored with "
                        "CSPBench's matcher. One run per arm; its duration is the benchmark's relaxation time.")
    client = mlflow.MlflowClient(tracking_uri())
    exp_id = experiment_id(client, EXPERIMENT)
    formulas = per_formula.drop_duplicates("formula")[["formula", "reduced_formula", "sg_number", "atoms_primitive",
                                                       "atom_bin"]].reset_index(drop=True)
    dataset = mlflow.data.from_pandas(formulas, name=f"benchmark formulas ({len(formulas)}, {cfg['benchmark']['part']})",
                                      targets="sg_number")
    ended_ms = int(time.time() * 1000)
    params = {**cfg["search"], **{f"benchmark_{k}": v for k, v in cfg["benchmark"].items()},
              **{f"model_{t}": m for t, m in choice.items()}}
    for arm, figures in headline(summary).items():
        run = client.create_run(exp_id, start_time=started_ms, run_name=arm, tags={"arm": arm, "task": "csp"})
        run_id = run.info.run_id
        seconds = float(per_formula.loc[per_formula["arm"] == arm, "candidate_seconds"].sum())
        client.log_batch(run_id, metrics=[Metric(k, float(v), ended_ms, 0) for k, v in
                                          {**figures, "relaxation_seconds": seconds}.items() if v is not None],
                         params=[Param(k, str(v)[:500]) for k, v in {**params, "arm": arm}.items()])
        client.log_inputs(run_id, [DatasetInput(dataset._to_mlflow_entity(),
                                                [InputTag("mlflow.data.context", "benchmark")])])
        if (out / "cifs" / arm).exists():
            client.log_artifacts(run_id, str(out / "cifs" / arm), "cifs")
        pictures = [p["path"] for p in summary.get("pictures", [])] if arm == cfg["arms"][0] else []
        for path in pictures:
            client.log_artifact(run_id, path, "pictures")
        client.set_terminated(run_id, end_time=ended_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--register", type=Path, required=True, help="metrics/register.json: the champions that search")
    parser.add_argument("--models", type=Path, nargs="+", required=True, help=f"models/<task> of {', '.join(SEARCH_TASKS)}")
    parser.add_argument("--lattice", type=Path, required=True, help="the lattice stage's folder (lattice.pkl)")
    parser.add_argument("--templates", type=Path, required=True, help="the templates stage's library.parquet")
    parser.add_argument("--references", type=Path, required=True, help="the references stage's folder")
    parser.add_argument("--source", type=Path, required=True, help="data/sources/<generate.benchmark.source>")
    parser.add_argument("--features", type=Path, required=True, help="the featurize stages' folder")
    parser.add_argument("--split", type=Path, required=True, help="the split stage's folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plots", type=Path, required=True)
    args = parser.parse_args()

    params = load_params(args.params)
    cfg = section(params, "generate", ["search", "benchmark", "arms", "space_group_task"])
    if {p.name for p in args.models} != set(SEARCH_TASKS) or len({p.parent for p in args.models}) != 1:
        raise SystemExit(f"generate: --models takes models/<task> of {', '.join(SEARCH_TASKS)}, one folder each")
    choice = registered_champions(SEARCH_TASKS, args.register)
    predictor = load_predictor(args.models[0].parent, choice, calibrations=False, lattice=False)
    lattice_file = args.lattice / "lattice.pkl"
    lattice = joblib.load(lattice_file) if lattice_file.exists() else None
    library = pd.read_parquet(args.templates)
    references = pd.read_parquet(args.references / "references.parquet").set_index("element").to_dict("index")
    started_ms = int(time.time() * 1000)
    start = time.perf_counter()
    candidates, per_formula, summary = run_benchmark(params, partial(formula_estimates, predictor), lattice, args.out, args.source,
                                                     DataDirs(args.features, args.split), library, references)
    summary["seconds"] = time.perf_counter() - start
    summary["models"] = choice
    write_outputs(candidates, per_formula, summary, args.out, args.metrics, args.plots)
    log_arms(summary, per_formula, cfg, choice, args.out, started_ms)
    for arm, figures in headline(summary).items():
        print(f"generate {arm}: top-1 {figures['top1_cspbench']:.3f}, top-5 {figures['top5_cspbench']:.3f} (CSPBench "
              f"tolerances; CDVAE's top-5 {figures['top5_cdvae']:.3f}), space group top-1 {figures['top1_space_group']:.3f}, "
              f"top-5 {figures['top5_space_group']:.3f}, {figures['candidate_seconds_per_formula']:.1f} s/formula")
    print(f"generate: {summary[next(iter(headline(summary)))]['formulas']} formulas in {summary['seconds']:.0f} s")


if __name__ == "__main__":  # Dask's local worker processes re-import this file
    main()
