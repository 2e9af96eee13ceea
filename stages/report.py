"""Stage report: reports/report.md, its figures and reports/baselines.json (a DVC metric) from the metrics, plots and
predictions of the pipeline."""

import argparse
import json
from pathlib import Path

from xtalml.config import load_params, section
from xtalml.evaluation.report import ReportInputs, build_report

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
for name, what in (("metrics", "the metrics folder (every stage's figures, metrics/register.json)"),
                   ("evaluation", "data/evaluation: full evaluations"), ("predictions", "data/predictions"),
                   ("plots", "the plots folder"), ("split-modes", "data/split_modes"), ("generate", "data/generate"),
                   ("discover", "data/discover"),
                   ("sources", "data/sources (rejects of parse)"), ("features", "data/features"),
                   ("split", "data/split")):
    parser.add_argument(f"--{name}", type=Path, required=True, help=what)
parser.add_argument("--report", type=Path, required=True, help="the Markdown report")
parser.add_argument("--figures", type=Path, required=True, help="folder of its figures")
parser.add_argument("--derived", type=Path, required=True, help="class counts and per-group accuracies it computed")
parser.add_argument("--baselines", type=Path, required=True, help="each task's baselines (a DVC metric)")
args = parser.parse_args()

params = load_params(args.params)
section(params, "report", ["published"])
inputs = ReportInputs(metrics=args.metrics, evaluation=args.evaluation, split_modes=args.split_modes, plots=args.plots,
                      predictions=args.predictions, split=args.split, generate=args.generate, discover=args.discover, features=args.features,
                      sources=args.sources)
args.report.parent.mkdir(parents=True, exist_ok=True)
markdown, derived, baselines = build_report(params, inputs, args.figures, args.report.parent)
args.baselines.write_text(json.dumps(baselines, indent=2) + "\n")  # once per task: every model has the same ones
args.report.write_text(markdown + "\n")
args.derived.write_text(json.dumps(derived, indent=2) + "\n")  # numbers the report computed from predictions
print(f"report: {args.report} ({len(markdown.splitlines())} lines), figures in {args.figures}")
