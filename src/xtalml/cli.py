"""Command line: `xtalml predict` for formulas, files of formulas and CIF files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xtalml.predict import (DEFAULT_MODELS, answers_table, calibration_scores, load_predictor, predict_cifs,
                            predict_formulas)


def _coverage(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"coverage must lie strictly between 0 and 1, got {text}")
    return value


def _read_inputs(items: list[str]) -> tuple[list[str], list[Path], dict[str, str]]:
    formulas, cifs, errors = [], [], {}
    for item in items:
        path = Path(item)
        if path.suffix.lower() == ".cif":
            if path.exists():
                cifs.append(path)
            else:
                errors[item] = "CIF file not found"
        elif path.suffix.lower() in (".csv", ".txt") and path.exists():
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            if path.suffix.lower() == ".csv" and lines and lines[0].lower().split(",")[0] == "formula":
                lines = [line.split(",")[0] for line in lines[1:]]
            formulas += lines
        else:
            formulas.append(item)
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
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for --mlflow-run (default sqlite:///mlflow.db)")
    for task, model in DEFAULT_MODELS.items():
        p.add_argument(f"--{task.replace('_', '-')}", default=model, metavar="MODEL", help=f"model for {task} (default {model})")
    args = parser.parse_args(argv)

    formulas, cifs, errors = _read_inputs(args.inputs)
    choice = {task: getattr(args, task) for task in DEFAULT_MODELS}
    try:
        predictor = load_predictor(args.models, choice, args.mlflow_run, args.tracking_uri)
        if args.coverage is not None:  # fail before any work when the sets cannot be made
            calibration_scores(predictor)
    except (FileNotFoundError, ValueError) as exc:
        print(f"xtalml predict: {exc}", file=sys.stderr)
        return 2
    answers, formula_errors = predict_formulas(predictor, formulas, args.coverage)
    cif_answers, cif_errors = predict_cifs(predictor, cifs, args.coverage)
    answers += cif_answers
    errors |= formula_errors | cif_errors
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


if __name__ == "__main__":
    sys.exit(main())
