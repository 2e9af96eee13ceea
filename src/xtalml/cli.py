"""Command line: `xtalml predict` for formulas, files of formulas and CIF files; `generate` for formulas; `discover`
for chemical systems."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from xtalml.api import SEARCH_TASKS, answers_frame, load, read_inputs
from xtalml.chemistry import shorten
from xtalml.predict import PREDICT_TASKS


def _coverage(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"coverage must lie strictly between 0 and 1, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `xtalml` command."""
    parser = argparse.ArgumentParser(prog="xtalml", description="Crystal symmetry and volume from formulas or CIFs.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="top-3 Bravais lattices, top-5 space groups, volume per atom")
    p.add_argument("inputs", nargs="+", help="formulas, .txt/.csv files of formulas (first column), or .cif files")
    p.add_argument("--project", type=Path, default=None, metavar="FOLDER",
                   help="the folder `dvc repro` ran in (default: the current one, or the nearest above it)")
    p.add_argument("--models", type=Path, default=None, help="folder that `dvc repro` wrote (default: the project's models)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--coverage", type=_coverage, metavar="C",
                   help="also return the split-conformal set of space groups that holds the true one with frequency C (e.g. 0.9)")
    p.add_argument("--mlflow-run", action="append", default=[], metavar="RUN_ID",
                   help="use this MLflow run's logged model for its task instead of the file under --models (repeatable)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds one CIF file may take to parse (default: parse.timeout_s of params.yaml, else 30)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI for --mlflow-run and --model-uri (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    p.add_argument("--model-uri", default=None, metavar="URI",
                   help="answer with a registered predictor instead of --models, e.g. models:/xtalml-predictor@champion")
    for task in PREDICT_TASKS:
        p.add_argument(f"--{task.replace('_', '-')}", default=None, metavar="MODEL",
                       help=f"model for {task} (default: its champion in metrics/register.json)")
    g = sub.add_parser("generate", help="candidate crystal structures for formulas, relaxed with CHGNet, ranked by energy")
    g.add_argument("inputs", nargs="+", help="formulas, or .txt/.csv files of formulas (first column)")
    g.add_argument("--candidates", type=int, default=None, metavar="N",
                   help="candidates per formula (default: generate.search.candidates of params.yaml)")
    g.add_argument("--out", type=Path, default=Path("generated"), help="folder for the CIFs (default: generated)")
    g.add_argument("--format", choices=("table", "json", "csv"), default="table")
    g.add_argument("--project", type=Path, default=None, metavar="FOLDER",
                   help="the folder `dvc repro` ran in (default: the current one, or the nearest above it)")
    g.add_argument("--models", type=Path, default=None, help="folder that `dvc repro` wrote (default: the project's models)")
    g.add_argument("--templates", type=Path, default=None,
                   help="the template library of known structures (default: the templates stage's)")
    g.add_argument("--references", type=Path, default=None,
                   help="elemental reference energies for formation energies (default: the references stage's)")
    g.add_argument("--png", action="store_true", help="also write a ball-and-stick picture (PNG) beside each CIF")
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="a running Dask scheduler (default: generate.scheduler, else a local cluster)")
    g.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    d = sub.add_parser("discover", help="new compounds of chemical systems: compositions ranked by the existence model, "
                       "structures searched and relaxed, a convex hull of formation energy")
    d.add_argument("systems", nargs="+", help="chemical systems, elements joined by '-' (Ca-Ti-O Li-Mn-O)")
    d.add_argument("--compositions", type=int, default=None, metavar="N",
                   help="compositions searched per system (default: discover.compositions of params.yaml)")
    d.add_argument("--max-atoms", type=int, default=None, metavar="N",
                   help="atoms per formula unit of an enumerated composition (default: discover.max_atoms)")
    d.add_argument("--max-e-hull", type=float, default=None, metavar="EV",
                   help="keep proposals at most this far above the hull (eV/atom)")
    d.add_argument("--max-formation-energy", type=float, default=None, metavar="EV",
                   help="keep proposals with formation energy at most this (eV/atom)")
    d.add_argument("--prototype", default=None, metavar="NAME",
                   help="keep proposals from templates whose prototype names NAME (perovskite, Heusler, CsCl)")
    d.add_argument("--out", type=Path, default=Path("discovered"),
                   help="folder for the CIFs and hull pictures (default: discovered)")
    d.add_argument("--format", choices=("table", "json", "csv"), default="table")
    d.add_argument("--project", type=Path, default=None, metavar="FOLDER",
                   help="the folder `dvc repro` ran in (default: the current one, or the nearest above it)")
    d.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="a running Dask scheduler (default: generate.scheduler, else a local cluster)")
    d.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    args = parser.parse_args(argv)
    if args.command == "generate":
        return _generate(args)
    if args.command == "discover":
        return _discover(args)

    named = {task: getattr(args, task) for task in PREDICT_TASKS if getattr(args, task)}
    try:
        project = load(args.project, models=named, models_dir=args.models, model_uri=args.model_uri,
                       tracking_uri=args.tracking_uri, mlflow_runs=args.mlflow_run)
        entries = project.answers(args.inputs, args.coverage, timeout=args.timeout)
    except (FileNotFoundError, ValueError) as exc:
        print(f"xtalml predict: {exc}", file=sys.stderr)
        return 2
    answers = [entry for entry in entries if "error" not in entry]
    errors = {shorten(entry["input"], 200): entry["error"] for entry in entries if "error" in entry}
    if args.format == "json":
        print(json.dumps({"predictions": answers, "errors": errors}, indent=2))
    elif answers:
        table = answers_frame(answers).drop(columns="error")
        print(table.to_csv(index=False) if args.format == "csv" else table.to_string(index=False), end="")
        print()
    if args.format != "json":
        for item, reason in errors.items():
            print(f"xtalml predict: {item}: {reason}", file=sys.stderr)
    return 1 if errors else 0


def _generate(args) -> int:
    """`xtalml generate`: ranked candidate structures per formula, CIFs under --out, one table, JSON or CSV."""
    import warnings

    formulas, errors = [], {}
    for kind, text, label in read_inputs(args.inputs):
        if kind == "formula":
            formulas.append(text)
        else:
            errors[label] = text if kind == "error" else "generate takes formulas; for a CIF's formula use `xtalml predict`"
    if args.candidates is not None and args.candidates < 1:
        print("xtalml generate: --candidates must be at least 1", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            project = load(args.project, models_dir=args.models, scheduler=args.scheduler, workers=args.workers,
                           tasks=SEARCH_TASKS)
            project.templates_path = args.templates or project.templates_path
            project.references_path = args.references or project.references_path
            with project:
                result = project.generate_many(formulas, args.candidates, out=args.out, pictures=args.png)
        except (FileNotFoundError, ValueError) as exc:
            print(f"xtalml generate: {exc}", file=sys.stderr)
            return 2
    for warning in warned:
        print(f"xtalml generate: {warning.message}", file=sys.stderr)
    answer = result.as_dict()
    answer["errors"] = {shorten(k, 200): v for k, v in (errors | answer["errors"]).items()}
    if args.format == "json":
        print(json.dumps(answer, indent=2))
    else:
        import pandas as pd

        rows = [{"input": s["input"], **c} for s in answer["structures"] for c in s["candidates"]]
        columns = ["input", "rank", "space_group_number", "energy_per_atom", "formation_energy_per_atom",
                   "volume_per_atom", "source", "prototype", "known", "p_group", "atoms", "cif"]
        table = pd.DataFrame(rows, columns=columns)
        if len(table):
            print(table.to_csv(index=False) if args.format == "csv" else table.to_string(index=False), end="\n")
        for item, reason in answer["errors"].items():
            print(f"xtalml generate: {item}: {reason}", file=sys.stderr)
    return 1 if answer["errors"] else 0


def _discover(args) -> int:
    """`xtalml discover`: proposals per chemical system, CIFs and hull pictures under --out; table, JSON or CSV."""
    import warnings

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            project = load(args.project, scheduler=args.scheduler, workers=args.workers, tasks=SEARCH_TASKS)
            with project:
                found = project.discover(args.systems, compositions=args.compositions, max_atoms=args.max_atoms,
                                         out=args.out, max_e_hull=args.max_e_hull,
                                         max_formation_energy=args.max_formation_energy, prototype=args.prototype)
        except (FileNotFoundError, ValueError) as exc:
            print(f"xtalml discover: {exc}", file=sys.stderr)
            return 2
    for warning in warned:
        if f"{os.sep}xtalml{os.sep}" not in str(warning.filename):
            continue  # libraries' own warnings (ASE, pymatgen, PyXtal) are not the user's to act on
        print(f"xtalml discover: {warning.message}", file=sys.stderr)
    answer = found.as_dict()
    if args.format == "json":
        print(json.dumps(answer, indent=2))
    else:
        columns = ["system", "formula", "space_group_number", "source", "prototype", "formation_energy_per_atom",
                   "e_above_hull", "new", "known_in", "existence", "cif"]
        table = found.proposals.reindex(columns=columns)
        if len(table):
            print(table.to_csv(index=False) if args.format == "csv" else table.to_string(index=False), end="\n")
        for system, path in found.pictures.items():
            print(f"xtalml discover: {system}: hull picture {path}", file=sys.stderr)
    for item, reason in answer["errors"].items():
        if args.format != "json":
            print(f"xtalml discover: {item}: {reason}", file=sys.stderr)
    return 1 if answer["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
