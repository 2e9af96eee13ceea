"""The README's results table is the one the committed metrics give (the report stage writes the same table)."""

import json

from xtalml.config import REPO_ROOT, load_params
from xtalml.evaluation.report import markdown_table, results_table


def test_readme_results_table_matches_the_committed_metrics():
    params = load_params(REPO_ROOT / "params.yaml")
    baselines = json.loads((REPO_ROOT / "reports" / "baselines.json").read_text())
    expected = markdown_table(results_table(REPO_ROOT / "metrics", params["tasks"], params["report"]["published"],
                                            baselines))
    readme = (REPO_ROOT / "README.md").read_text()
    assert expected in readme, f"README.md's results table is stale; the metrics give:\n{expected}"
    report = (REPO_ROOT / "reports" / "report.md").read_text()
    assert expected in report, "reports/report.md is older than metrics/: run dvc repro report"


def test_readme_is_for_users():
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert 120 <= len(lines) <= 250, len(lines)  # 220 before its Python section, 230 before Discover
    for command in ("pip install torch==2.13.0", "dvc repro", "python -m pytest", "xtalml predict", "dvc exp show",
                    "mlflow ui", "workflowType=machine_learning", "mlflow models serve", "xtalml.load(",
                    "--project"):
        assert any(command in line for line in lines), command
