"""Command line: `xtalml predict` for formulas, files of formulas and CIF files."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from xtalml.chemistry import shorten
from xtalml.cif.parse import MAX_FILE_BYTES
from xtalml.champions import registered_champions
from xtalml.predict import (PREDICT_TASKS, answers_table, calibration_for, default_timeout, load_predictor, predict_cifs,
                            predict_formulas)


def _coverage(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"coverage must lie strictly between 0 and 1, got {text}")
    return value


FILE_SUFFIXES = (".cif", ".txt", ".csv")


def _is_path(item: str) -> bool:
    # formulas never hold a path separator or end in a file suffix ("Fe0.5O" has the suffix ".5O")
    return Path(item).suffix.lower() in FILE_SUFFIXES or os.sep in item or "/" in item


def _formula_lines(path: Path) -> list[str]:
    """Formulas of a .txt file (one a line) or a .csv file (first column; a 'formula' header is skipped)."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"file larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not a UTF-8 text file (byte {exc.start} cannot be decoded)") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if path.suffix.lower() == ".csv":
        lines = [line.split(",")[0].strip() for line in lines]
        if lines and lines[0].lower() == "formula":
            lines = lines[1:]
    return lines


def _read_inputs(items: list[str]) -> tuple[list[str], list[Path], dict[str, str]]:
    """(formulas, CIF paths, {input: problem}); every argument ends in one of the three."""
    formulas, cifs, errors = [], [], {}
    for item in items:
        if not _is_path(item):
            formulas.append(item)
            continue
        path = Path(item)
        suffix = path.suffix.lower()
        try:
            if not path.exists():
                errors[item] = f"{'CIF' if suffix == '.cif' else 'file'} file not found"
            elif path.is_dir():
                errors[item] = "is a directory: give CIF files (.cif) or formula files (.txt, .csv)"
            elif suffix == ".cif":
                cifs.append(path)
            elif suffix in (".txt", ".csv"):
                formulas += _formula_lines(path)
            else:
                errors[item] = f"unsupported file type {suffix or '(none)'!r}: give .cif, .txt or .csv files"
        except OSError as exc:
            errors[item] = f"cannot read: {exc.strerror or exc}"
        except ValueError as exc:
            errors[item] = str(exc)
    return formulas, cifs, errors


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `xtalml` command."""
    parser = argparse.ArgumentParser(prog="xtalml", description="Crystal symmetry and volume from formulas or CIFs.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="top-3 Bravais lattices, top-5 space groups, volume per atom")
    p.add_argument("inputs", nargs="+", help="formulas, .txt/.csv files of formulas (first column), or .cif files")
    p.add_argument("--models", type=Path, default=Path("models"), help="folder that `dvc repro` wrote (default: models)")
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
    g.add_argument("--models", type=Path, default=Path("models"), help="folder that `dvc repro` wrote (default: models)")
    g.add_argument("--templates", type=Path, default=Path("data/templates/library.parquet"),
                   help="the template library of known structures (default: the templates stage's)")
    g.add_argument("--references", type=Path, default=Path("data/references/references.parquet"),
                   help="elemental reference energies for formation energies (default: the references stage's)")
    g.add_argument("--png", action="store_true", help="also write a ball-and-stick picture (PNG) beside each CIF")
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="a running Dask scheduler (default: generate.scheduler, else a local cluster)")
    g.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    args = parser.parse_args(argv)
    if args.command == "generate":
        return _generate(args)

    formulas, cifs, errors = _read_inputs(args.inputs)
    if args.model_uri:
        return _predict_with_model_uri(args, formulas, cifs, errors)
    named = {task: getattr(args, task) for task in PREDICT_TASKS if getattr(args, task)}
    try:
        choice = registered_champions([t for t in PREDICT_TASKS if t not in named]) | named
        predictor = load_predictor(args.models, choice, args.mlflow_run, args.tracking_uri, serving=True)
        if args.coverage is not None:  # fail before any work when the sets cannot be made
            calibration_for(predictor)
    except (FileNotFoundError, ValueError) as exc:
        print(f"xtalml predict: {exc}", file=sys.stderr)
        return 2
    answers, formula_errors = predict_formulas(predictor, formulas, args.coverage)
    cif_answers, cif_errors = predict_cifs(predictor, cifs, args.coverage,
                                           args.timeout if args.timeout is not None else default_timeout())
    answers += cif_answers
    errors |= formula_errors | cif_errors
    errors = {shorten(item, 200): reason for item, reason in errors.items()}
    if args.format == "json":
        print(json.dumps({"predictions": answers, "errors": errors}, indent=2))
    elif answers:
        table = answers_table(answers)
        print(table.to_csv(index=False) if args.format == "csv" else table.to_string(index=False), end="")
        print()
    if args.format != "json":
        for item, reason in errors.items():
            print(f"xtalml predict: {item}: {reason}", file=sys.stderr)
    return 1 if errors else 0


def _predict_with_model_uri(args, formulas: list[str], cifs: list[Path], errors: dict[str, str]) -> int:
    """Answers from an MLflow pyfunc predictor (models:/..., runs:/... or a folder), in the same formats."""
    import mlflow
    import pandas as pd

    from xtalml.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(args.tracking_uri))
    try:
        model = mlflow.pyfunc.load_model(args.model_uri)
    except Exception as exc:  # MLflow raises several types for a missing model, alias or store
        print(f"xtalml predict: cannot load {args.model_uri}: {exc}", file=sys.stderr)
        return 2
    texts, labels = [], [*formulas]
    for path in cifs:
        try:
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
            labels.append(str(path))
        except OSError as exc:
            errors[str(path)] = f"cannot read: {exc.strerror or exc}"
    frame = pd.DataFrame({"formula": [*formulas, *[""] * len(texts)], "cif": [*[""] * len(formulas), *texts]})
    rows = model.predict(frame) if len(frame) else pd.DataFrame(columns=["input", "error"])
    rows["input"] = labels[:len(rows)]
    for label, reason in zip(rows["input"], rows["error"]):
        if isinstance(reason, str) and reason:
            errors[label] = reason
    answered = rows[rows["error"].isna() | (rows["error"] == "")].drop(columns="error").dropna(axis=1, how="all")
    errors = {shorten(item, 200): reason for item, reason in errors.items()}
    if args.format == "json":
        print(json.dumps({"predictions": answered.to_dict("records"), "errors": errors}, indent=2, default=str))
    elif len(answered):
        print(answered.to_csv(index=False) if args.format == "csv" else answered.to_string(index=False))
    if args.format != "json":
        for item, reason in errors.items():
            print(f"xtalml predict: {item}: {reason}", file=sys.stderr)
    return 1 if errors else 0


def _generate(args) -> int:
    """`xtalml generate`: ranked candidate structures per formula, CIFs under --out, one table, JSON or CSV."""
    import joblib

    from xtalml.config import load_params
    from xtalml.structures.search import SearchSettings, dask_client, generate_structures

    formulas, cifs, errors = _read_inputs(args.inputs)
    errors |= {str(path): "generate takes formulas; for a CIF's formula use `xtalml predict`" for path in cifs}
    try:
        cfg = load_params()["generate"]
        settings = SearchSettings.from_params(cfg["search"])
    except (FileNotFoundError, KeyError):
        print("xtalml generate: no `generate` section in params.yaml; run it from the project folder", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"xtalml generate: params.yaml: {exc}", file=sys.stderr)
        return 2
    if args.candidates is not None:
        if args.candidates < 1:
            print("xtalml generate: --candidates must be at least 1", file=sys.stderr)
            return 2
        settings.candidates = args.candidates
    tasks = ("sg_from_composition", "volume_per_atom_from_composition")
    try:
        predictor = load_predictor(args.models, registered_champions(tasks), serving=True)
    except (FileNotFoundError, ValueError) as exc:
        print(f"xtalml generate: {exc}", file=sys.stderr)
        return 2
    lattice_path = args.models / "lattice" / "lattice.pkl"
    lattice = joblib.load(lattice_path) if lattice_path.exists() else None
    if lattice is None:
        print(f"xtalml generate: {lattice_path} is missing (`dvc repro lattice`): PyXtal's own cell shapes are used",
              file=sys.stderr)
    library = None
    if args.templates.exists():
        import pandas as pd

        library = pd.read_parquet(args.templates)
    else:
        print(f"xtalml generate: {args.templates} is missing (`dvc repro templates`): PyXtal candidates only",
              file=sys.stderr)
    references = {}
    if args.references.exists():
        import pandas as pd

        references = pd.read_parquet(args.references).set_index("element").to_dict("index")
    else:
        print(f"xtalml generate: {args.references} is missing (`dvc repro references`): no formation energies",
              file=sys.stderr)
    answer = {"structures": [], "errors": {}}
    if formulas:
        with dask_client(args.scheduler or cfg.get("scheduler"), args.workers or cfg.get("n_workers")) as client:
            answer = generate_structures(formulas, predictor, lattice, settings, client, args.out, library, references,
                                         pictures=args.png)
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


if __name__ == "__main__":
    sys.exit(main())
