"""Stage report: reports/report.md, reports/figures/*.png and reports/baselines.json (a DVC metric) from the metrics,
plots and predictions of the pipeline."""

import argparse
import json
from pathlib import Path

from xtalml.config import load_params, section
from xtalml.evaluation.report import ReportInputs, build_report

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--out", default="reports")
parser.add_argument("--baselines", default="reports/baselines.json")
args = parser.parse_args()

params = load_params(args.params)
section(params, "report", ["published"])
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
markdown, derived, baselines = build_report(params, ReportInputs(), out)
Path(args.baselines).write_text(json.dumps(baselines, indent=2) + "\n")  # once per task: every model has the same ones
(out / "report.md").write_text(markdown + "\n")
(out / "derived.json").write_text(json.dumps(derived, indent=2) + "\n")  # numbers the report computed from predictions
print(f"report: {out / 'report.md'} ({len(markdown.splitlines())} lines), figures in {out / 'figures'}")
