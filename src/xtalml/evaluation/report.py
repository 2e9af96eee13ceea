"""The results report: every number read from the files the pipeline wrote, tables in Markdown, figures as PNG."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from xtalml.cif.symmetry import space_group_info
from xtalml.config import training_runs
from xtalml.evaluation import figures
from xtalml.evaluation.metrics import HEADLINE
from xtalml.splitting import near_duplicate_share
from xtalml.champions import choose_champion
from xtalml.tasks import FEATURES_DIR, SPLIT_DIR, UNITS, DataDirs, read_table, table_name, task_sources

CLASSIFICATION_COLUMNS = {"accuracy": "accuracy", "top3_accuracy": "top-3", "top5_accuracy": "top-5",
                          "top10_accuracy": "top-10", "polymorph_accuracy": "any polymorph", "balanced_accuracy": "balanced acc.", "f1_macro": "macro F1", "f1_weighted": "weighted F1"}
REGRESSION_COLUMNS = {"mae": "MAE", "rmse": "RMSE", "r2": "R²", "mape": "MAPE %"}


@dataclass
class ReportInputs:
    """The pipeline's outputs the report reads: each a folder the report stage names on its command line."""

    metrics: Path = Path("metrics")
    evaluation: Path = Path("data/evaluation")
    split_modes: Path = Path("data/split_modes")
    plots: Path = Path("plots")
    predictions: Path = Path("data/predictions")
    split: Path = SPLIT_DIR
    generate: Path = Path("data/generate")
    discover: Path = Path("data/discover")
    features: Path = FEATURES_DIR
    sources: Path = Path("data/sources")

    @property
    def data(self) -> DataDirs:
        return DataDirs(self.features, self.split)


def fmt(value: Any) -> str:
    """A number as the report prints it: 3 decimals, or 3 significant digits when it is tiny."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.2e}" if 0 < abs(value) < 0.001 else f"{value:,.3f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (index not shown)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(fmt(v).replace("|", "\\|") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def load_model_metrics(evaluation_dir: Path, runs: Iterable[Mapping[str, str]] | None = None) -> dict[str, dict[str, dict]]:
    """{task: {model: evaluation}} from data/evaluation/<task>/<model>.json; with `runs` (train.runs), only those: a
    run taken out of the config leaves its old file behind."""
    wanted = None if runs is None else {(r["task"], r["model"]) for r in runs}
    out: dict[str, dict[str, dict]] = {}
    for path in sorted(Path(evaluation_dir).glob("*/*.json")):
        if wanted is not None and (path.parent.name, path.stem) not in wanted:
            continue
        metrics = json.loads(path.read_text())
        if "task" in metrics and "test" in metrics:  # metrics/parse, featurize, split... are not model runs
            out.setdefault(path.parent.name, {})[path.stem] = metrics
    return out


def is_classification(results: Mapping[str, dict]) -> bool:
    """Whether a task's metrics are a classifier's."""
    return "accuracy" in next(iter(results.values()))["test"]


def model_table(results: Mapping[str, dict]) -> pd.DataFrame:
    """Every model and every baseline of one task on its test split, best first, with its validation score (of the fit on
    the train rows: the champion's criterion), the rows its tested fit saw and training time."""
    classification = is_classification(results)
    columns = CLASSIFICATION_COLUMNS if classification else REGRESSION_COLUMNS
    rows = []
    for model, m in results.items():
        row = {"model": model, **{label: m["test"].get(key) for key, label in columns.items()}}
        if classification:
            cv = m.get("cv")
            row["CV accuracy (train)"] = f"{cv['accuracy_mean']:.3f} ± {cv['accuracy_std']:.3f}" if cv else None
        row["val accuracy" if classification else "val MAE"] = m.get("validation", {}).get("accuracy" if classification else "mae")
        row["fitted on"] = "train + val" if m.get("data", {}).get("refitted_on_train_and_val_rows") else "train"
        row["train s"] = m.get("train_seconds")
        rows.append(row)
    first = next(iter(results.values()))
    for name, b in first.get("baselines", {}).items():
        rows.append({"model": f"baseline: {name.replace('_', ' ')}", **{label: b.get(key) for key, label in columns.items()}})
    table = pd.DataFrame(rows)
    key = "accuracy" if classification else "MAE"
    return table.sort_values(key, ascending=not classification, kind="stable").reset_index(drop=True)


def crystal_system_of(label: str) -> str:
    """Crystal system of a space-group label; merged labels stay as they are."""
    return space_group_info(int(label))[1] if str(label).isdigit() else str(label)


def accuracy_by_group(frame: pd.DataFrame, group_of) -> pd.DataFrame:
    """Accuracy of each predictions column, grouped by the true label's group (crystal system or lattice)."""
    groups = frame["true"].astype(str).map(group_of)
    out = pd.DataFrame({"rows": groups.value_counts()})
    for column in [c for c in frame.columns if c.startswith("predicted")]:
        correct = frame[column].astype(str) == frame["true"].astype(str)
        out[column.replace("predicted", "").strip(":") or "model"] = correct.groupby(groups).mean()
    return out.sort_values("rows", ascending=False)


SOURCE_NAMES = {"amcsd": "AMCSD (larixite wheel)", "cod_index": "COD index (dara-xrd wheel)",
                "oqmd_volume": "OQMD volume per atom (crabnet wheel)", "cod": "COD (online)", "local": "local CIFs"}


def data_summary(metrics: Path, sources_cfg: Mapping[str, Any], split: Mapping[str, Any],
                 inputs: ReportInputs = ReportInputs()) -> dict[str, pd.DataFrame]:
    """Rows per source through parse and featurize, rejects by reason (from each stage's rejects.parquet), rows per
    split part and source (split: the split stage's data/split/summary.json)."""
    from xtalml.cif.dataset import summarise_rejects

    rows, reasons = [], []
    for key, cfg in sources_cfg.items():
        parse = json.loads((metrics / "parse" / f"{key}.json").read_text())
        featurize = json.loads((metrics / "featurize" / f"{key}.json").read_text())
        at_parse = sum(parse["rejected"].values())
        rows.append({"source": f"{key}: {SOURCE_NAMES.get(cfg.get('name', ''), cfg.get('name', ''))}",
                     "records": parse["parsed"] + at_parse, "rejected at parse": at_parse,
                     "rejected at featurize": featurize["rejected"], "rows in feature table": featurize["rows"]})
        for stage, path in (("parse", inputs.sources / key / "rejects.parquet"),
                            ("featurize", inputs.features / key / "rejects.parquet")):
            rejects = pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=["stage", "reason"])
            for reason, count in summarise_rejects(rejects)["top_reasons"].items():
                reasons.append({"source": key, "stage": stage, "reason": reason, "rows": count})
    parts = pd.DataFrame([
        {"source": key, **{f"{p} rows": m["rows"].get(p) for p in ("train", "val", "test")},
         **{f"{p} formulas": m["formulas"].get(p) for p in ("train", "val", "test")}}
        for key, m in split["sources"].items()], dtype=object)
    parts.attrs["note"] = (f"One assignment per {split['group'].replace('_', ' ')} for every source "
                           f"({split['groups_in_two_parts_without_published_split']} groups in two parts outside "
                           "published splits). OQMD rows keep their published part. A task stacks sources into one table; "
                           "there a group held out by one source (an OQMD train formula that is an AMCSD test formula, or the "
                           "reverse) is excluded from training, see the table below.")
    reasons = pd.DataFrame(reasons, columns=["source", "stage", "reason", "rows"]).sort_values("rows", ascending=False)
    return {"sources": pd.DataFrame(rows), "reasons": reasons, "parts": parts}


def task_tables(tasks_cfg: Mapping[str, Any], split: Mapping[str, Any], data: DataDirs = DataDirs()) -> pd.DataFrame:
    """Per table the tasks read (their stacked sources): rows per part, rows excluded, near-duplicate test share."""
    rows = []
    for sources in dict.fromkeys(tuple(task_sources(t)) for t in tasks_cfg.values()):
        table = read_table(sources, ["id", "formula", "source"], data)
        part = table["part"]
        rows.append({"table": table_name(sources),
                     "tasks": ", ".join(n for n, t in tasks_cfg.items() if tuple(task_sources(t)) == sources),
                     **{f"{p} rows": int((part == p).sum()) for p in ("train", "val", "test")},
                     "rows excluded": int((part == "excluded").sum()),
                     "test rows with a near-duplicate in train": round(near_duplicate_share(table["formula"].astype(str), part), 4)})
    frame = pd.DataFrame(rows, dtype=object)
    frame.attrs["note"] = f"Near-duplicate: {split['near_duplicate_rule']}."
    return frame


def by_source_table(all_metrics: Mapping[str, dict[str, dict]], published: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Regression test metrics per source of the test rows (e.g. OQMD test vs AMCSD test), beside published MAEs."""
    rows = []
    for task, results in all_metrics.items():
        for model, r in results.items():
            for subset, m in r.get("test_by_source", {}).items():
                if "mae" not in m:
                    continue
                base = r.get("baselines_by_source", {}).get(subset, {})
                base_name, base_m = next(iter(base.items()), ("–", {}))
                rows.append({"task": task, "test rows": subset, "model": model, "rows": m["n"], "MAE": m["mae"],
                             "R²": m["r2"], "baseline MAE": base_m.get("mae"), "baseline R²": base_m.get("r2"),
                             "baseline": base_name})
    for entry in published:
        if entry.get("test_rows"):
            rows.append({"task": entry["task"], "test rows": entry["test_rows"], "model": f"published: {entry['work']}",
                         "MAE": float(entry["value"]), "baseline": entry["source"]})
    return pd.DataFrame(rows, dtype=object).sort_values(["task", "test rows", "MAE"], kind="stable") if rows else pd.DataFrame()


def merged_classes(all_metrics: Mapping[str, dict[str, dict]]) -> pd.DataFrame:
    """Per classification task: classes kept, rare classes merged (or dropped) and the rows that touched."""
    rows = []
    for task, results in all_metrics.items():
        info = next(iter(results.values()))["data"]
        if "classes" in info:
            rows.append({"task": task, "classes (incl. 'other')": info["classes"], "rare classes": info["rare_classes"],
                         "rows touched": info["rare_rows"], "policy": info["rare_policy"],
                         "test rows": info["rows_test"]})
    return pd.DataFrame(rows)


def published_table(published: list[Mapping[str, Any]], all_metrics: Mapping[str, dict[str, dict]],
                    leakage: Mapping[str, Any] | None, champions: Mapping[str, str]) -> pd.DataFrame:
    """Published figures beside our champions' (chosen on validation rows); theirs come from other data and splits,
    so the columns say which is which."""
    rows = []
    for entry in [e for e in published if not e.get("test_rows")]:  # same-rows figures sit in by_source_table
        results = all_metrics.get(entry["task"], {})
        ours = "–"
        best = champions.get(entry["task"])
        if best in results:
            ours = f"{results[best]['test']['accuracy']:.3f} ({best}, champion, grouped split)"
        if entry["task"] == "sg_from_geometry" and leakage:
            audit = leakage["sg_from_geometry_random_forest"]
            ours += (f"; random forest with label columns {audit['grouped_split_with_label_columns']:.3f}, "
                     f"random row split {audit['random_row_split_geometry_only']:.3f}")
        rows.append({"published work": entry["work"], "task": entry["task"], "metric": entry["metric"],
                     "published value": entry["value"], "their data": entry["data"], "their split": entry["split"],
                     "ours on this data": ours, "source of the figure": entry["source"]})
    return pd.DataFrame(rows)


def leakage_table(leakage: Mapping[str, Any]) -> pd.DataFrame:
    """The audit's settings side by side."""
    audit = leakage["sg_from_geometry_random_forest"]
    ceiling = leakage["polymorph_ceiling"]
    return pd.DataFrame([
        {"setting": "(a) grouped split, geometry features only (our pipeline)", "accuracy": audit["grouped_split_geometry_only"]},
        {"setting": "(b) grouped split + label-encoded space-group text and Hall symbol", "accuracy": audit["grouped_split_with_label_columns"]},
        {"setting": "(c) random row split, geometry features only", "accuracy": audit["random_row_split_geometry_only"]},
        {"setting": "share of (c)'s test rows whose formula is also in its train rows", "accuracy": audit["random_split_test_rows_whose_formula_is_in_train"]},
        {"setting": "polymorph ceiling, space group from composition (test rows)", "accuracy": ceiling["sg_from_composition"]},
        {"setting": "polymorph ceiling, Bravais lattice from composition (test rows)", "accuracy": ceiling["bravais_from_composition"]}])


def conformal_table(conformal: Mapping[str, Any]) -> pd.DataFrame:
    """Per target coverage: coverage reached and set sizes on the test rows of each split."""
    rows = []
    for split, scored in conformal["test"].items():
        for target, s in scored["sets"].items():
            rows.append({"test rows": f"{split.replace('_', ' ')} ({scored['rows']:,})", "target coverage": float(target),
                         "coverage": s["coverage"], "mean set size": s["mean_set_size"],
                         "median set size": s["median_set_size"]})
    return pd.DataFrame(rows, dtype=object)


def split_modes_table(modes: Mapping[str, Any], all_metrics: Mapping[str, dict[str, dict]],
                      tables: Mapping[str, Mapping[str, Any]], tasks_cfg: Mapping[str, Any],
                      main: str = "reduced formula") -> pd.DataFrame:
    """Each composition task's headline model under the main split and under the second split mode."""
    rows = []
    for task, r in modes["tasks"].items():
        metric = "accuracy" if "accuracy" in r["test"] else "mae"
        ours = all_metrics.get(task, {}).get(r["model"], {}).get("test", {})
        baseline = next(iter(r["baselines"].values()), {}).get(metric)
        rows.append({"task": task, "model": r["model"], "metric": "top-1 accuracy" if metric == "accuracy" else "MAE",
                     f"split by {main}": ours.get(metric), f"split by {modes['group'].replace('_', ' ')}": r["test"][metric],
                     "baseline (second split)": baseline, "test rows (second split)": r["data"].get("rows_test"),
                     "near-duplicate test share (its table, main split)": tables.get(
                         table_name(task_sources(tasks_cfg[task])), {}).get("test rows with a near-duplicate in train")})
    return pd.DataFrame(rows, dtype=object)


def ablation_table(ablation: Mapping[str, Any]) -> pd.DataFrame:
    """Test metrics of each task's ablation model per composition feature set (one seed, the same rows per task)."""
    rows = []
    for task, r in ablation["tasks"].items():
        for run in r["runs"]:
            test = run["test"]
            metrics = ({"top-1": test["accuracy"], "top-5": test.get("top5_accuracy")} if "accuracy" in test else
                       {"MAE": test["mae"], "R²": test["r2"],
                        **{f"MAE {s}": m["mae"] for s, m in run.get("test_by_source", {}).items()
                           if not s.endswith("_train")}})
            rows.append({"task": task, "model": r["model"], "feature set": run["feature_set"], "features": run["features"],
                         "train rows": r["rows_train"]["used"], **metrics, "fit (s)": run["train_seconds"]})
    return pd.DataFrame(rows, dtype=object)


def seed_spread_table(spreads: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per seed_spread run: its headline test figure per seed, the spread, the nearest other model and the
    gap to it, and whether no other model's figure falls within the spread."""
    rows = []
    for run in spreads:
        key = run["nearest_model"]["metric"]
        row = run["metrics"][key]
        nearest = run["nearest_model"]
        rows.append({"task": run["task"], "model": run["model"], "metric": key.removeprefix("test."),
                     **{f"seed {s}": v for s, v in row["per_seed"].items()}, "spread": row["spread"],
                     "nearest model": f"{nearest['model']} ({fmt(nearest['test'])})" if "model" in nearest else "",
                     "gap": nearest.get("gap"),
                     "ranking holds": "yes" if run.get("ranking_holds_over_seeds") else
                     "no: " + ", ".join(run.get("models_within_range", []))})
    return pd.DataFrame(rows)


def lattice_table(all_metrics: Mapping[str, dict[str, dict]], lattice_task: str = "bravais_from_composition") -> pd.DataFrame:
    """Bravais-lattice test accuracy of the direct lattice models beside that of each space-group model's summed groups."""
    rows = [{"task": lattice_task, "model": model, "how": "direct Bravais-lattice model", "Bravais accuracy": m["test"]["accuracy"]}
            for model, m in all_metrics.get(lattice_task, {}).items()]
    for task, results in all_metrics.items():
        for model, m in results.items():
            if "bravais_accuracy_from_sg_proba" in m["test"]:
                rows.append({"task": task, "model": model, "how": "sum of its space-group probabilities",
                             "Bravais accuracy": m["test"]["bravais_accuracy_from_sg_proba"]})
            if "stage1_bravais_accuracy" in m["test"]:
                rows.append({"task": task, "model": model, "how": "its own stage 1",
                             "Bravais accuracy": m["test"]["stage1_bravais_accuracy"]})
    table = pd.DataFrame(rows, columns=["task", "model", "how", "Bravais accuracy"])
    return table.sort_values(["task", "Bravais accuracy"], ascending=[True, False], kind="stable").reset_index(drop=True)


def task_baselines(all_metrics: Mapping[str, Mapping[str, Any]], tasks_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """{task: {baseline: {headline metric: value}}}: every model of a task is scored beside the same baselines (fitted
    on its train rows, scored on its test rows), so they are written once (reports/baselines.json, a DVC metric),
    not per model."""
    out = {}
    for task, by_model in all_metrics.items():
        key = HEADLINE[tasks_cfg[task]["kind"]][0]
        first = next(iter(by_model.values()))
        out[task] = {name: {key: b[key]} for name, b in first.get("baselines", {}).items() if key in b}
    return out


def results_table(metrics_dir: Path, tasks_cfg: Mapping[str, Any], published: list[Mapping[str, Any]],
                  baselines: Mapping[str, Any]) -> pd.DataFrame:
    """One row per task: its champion (chosen on the validation rows), the champion's test figure, the best baseline on
    the same test rows, and the published anchors; read from metrics/register.json, the champions' metrics files and
    `baselines` (task_baselines, as reports/baselines.json holds them). The README's results table is this table (a
    test compares them)."""
    register = json.loads((Path(metrics_dir) / "register.json").read_text())
    rows = []
    for task, chosen in register["tasks"].items():
        model = chosen["champion"]
        m = json.loads((Path(metrics_dir) / task / f"{model}.json").read_text())
        classification = tasks_cfg[task]["kind"] == "classification"
        key = "accuracy" if classification else "mae"
        pick = max if classification else min
        name, baseline = pick(((n, b[key]) for n, b in baselines[task].items() if key in b), key=lambda nb: nb[1])
        anchors, by_rows = [], {}
        for entry in (e for e in published if e["task"] == task):
            by_rows.setdefault(entry.get("test_rows"), []).append(f"{entry['work'].split(' (')[0].split(',')[0]} {entry['value']}")
        for test_rows, works in by_rows.items():
            ours = m.get("test_by_source", {}).get(test_rows or "", {}).get(key)
            anchors.append(", ".join(works) + (f" (same {test_rows} test rows; ours {fmt(ours)})" if ours is not None else ""))
        rows.append({"task": task, "champion": model,
                     "test metric": "top-1 accuracy" if classification else "MAE (Å³/atom)" if "per_atom" in task else "MAE (Å³)",
                     "champion": model, "test": m["test"][key],
                     "top-5": m["test"].get("top5_accuracy") if classification else None,
                     "best baseline": f"{fmt(baseline)} ({name.replace('_', ' ')})",
                     "published (other data and splits)": "; ".join(anchors) or "–"})
    return pd.DataFrame(rows, dtype=object)


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


@dataclass
class ReportContext:
    """What every section of the report reads: the config, the loaded evaluations, where figures go."""

    params: Mapping[str, Any]
    inputs: ReportInputs
    figures: Path  # the figures folder
    report_dir: Path  # the folder of report.md: image links are relative to it
    all_metrics: dict[str, dict[str, dict]]
    champions: dict[str, str]  # {task: model chosen on the validation rows}
    baselines: dict[str, Any]
    derived: dict[str, Any]

    @property
    def cfg(self) -> Mapping[str, Any]:
        return self.params["report"]

    @property
    def tasks(self) -> Mapping[str, Any]:
        return self.params.get("tasks", {})

    @property
    def dpi(self) -> int:
        return int(self.cfg.get("figure_dpi", 110))

    @property
    def published(self) -> list[Mapping[str, Any]]:
        return list(self.cfg.get("published", []))

    def image(self, label: str, path: Path) -> str:
        """A Markdown image line for a figure written under self.figures."""
        return f"![{label}]({Path(os.path.relpath(path, self.report_dir)).as_posix()})"

    def json(self, path: Path) -> dict | None:
        return _read_json(path)


def _intro_section(ctx: ReportContext) -> list[str]:
    return ["# xtalml results", "",
            "Written by the `report` stage of `dvc repro`. Every number below is read from a file the pipeline wrote "
            "(`metrics/`, `data/evaluation/`, `plots/`); the class counts and per-group accuracies are computed here from the feature tables "
            "and `data/predictions/` and saved in `reports/derived.json`. All model numbers are on each task's held-out test split, "
            "grouped by reduced formula (one assignment shared by every table) so no compound is in both train and test. "
            "Each task's champion is its model best on the validation rows (never the test rows). Volumes are in Å³.", ""]


def _results_section(ctx: ReportContext) -> list[str]:
    if not (ctx.inputs.metrics / "register.json").exists():
        return []
    return ["## Results", "",
            "Each task's champion (best on the validation rows, registered as `xtalml-<task>@champion`) on its test "
            "rows, beside the best baseline on the same rows; published figures come from other data and splits.", "",
            markdown_table(results_table(ctx.inputs.metrics, ctx.tasks, ctx.published, ctx.baselines)), ""]


def _data_section(ctx: ReportContext) -> list[str]:
    split_info = json.loads((ctx.inputs.split / "summary.json").read_text())
    summary = data_summary(ctx.inputs.metrics, ctx.params.get("sources", {}), split_info, ctx.inputs)
    tables = task_tables(ctx.tasks, split_info, ctx.inputs.data)
    ctx.derived["task_tables"] = tables.set_index("table").to_dict(orient="index")
    md = ["## Data", "", "Rows per source:", "", markdown_table(summary["sources"]), "",
          "Rejected records by reason (each rejected record is kept in a rejects table with its reason):", "",
          markdown_table(summary["reasons"]) if len(summary["reasons"]) else "No record was rejected.", "", "Split:", "",
          markdown_table(summary["parts"]), "", summary["parts"].attrs["note"], "",
          "Tables the tasks read:", "", markdown_table(tables), "", tables.attrs["note"], ""]
    counts = {}
    for sources in dict.fromkeys(tuple(task_sources(t)) for t in ctx.tasks.values() if t["kind"] == "classification"):
        counts[table_name(sources)] = read_table(sources, ["id", "crystal_system"], ctx.inputs.data)["crystal_system"].value_counts()
    if counts:
        ctx.derived["rows_per_crystal_system"] = {label: {k: int(v) for k, v in c.items()} for label, c in counts.items()}
        frame = pd.DataFrame(counts).fillna(0).astype(int)
        path = figures.class_distribution_figure(counts, "Rows per crystal system", ctx.figures / "class_distribution.png",
                                                 ctx.dpi)
        md += ["Class distribution (rows per crystal system):", "",
               markdown_table(frame.reset_index(names="crystal system")), "", ctx.image("class distribution", path), ""]
    merged = merged_classes(ctx.all_metrics)
    if len(merged):
        md += ["Rare classes (fewer train rows than the task's `min_class_count`) merged into 'other':", "",
               markdown_table(merged), ""]
    return md


def _champion_figures(ctx: ReportContext, task: str, champion: str, classification: bool, target: str,
                      unit: str) -> list[str]:
    """The champion's confusion matrix and accuracy per group, or its parity plot, from its test predictions."""
    frame_path = ctx.inputs.predictions / task / f"{champion}.parquet"
    if not frame_path.exists():
        return []
    frame = pd.read_parquet(frame_path)
    if not classification:
        path = figures.parity_figure(frame["true"], frame["predicted"], unit, f"{task}: {champion}",
                                     ctx.figures / f"{task}_parity.png", ctx.dpi)
        return [ctx.image(f"parity {task}", path), ""]
    top = int(ctx.cfg.get("confusion_top_classes", 12))
    path = figures.confusion_figure(frame["true"], frame["predicted"], top,
                                    f"{task}: {champion}, {top} most frequent test classes",
                                    ctx.figures / f"{task}_confusion.png", ctx.dpi)
    md = [ctx.image(f"confusion {task}", path), ""]
    group_of = (lambda v: v) if target == "bravais_lattice" else crystal_system_of
    group_name = "Bravais lattice" if target == "bravais_lattice" else "crystal system"
    by_group = accuracy_by_group(frame.rename(columns={"predicted": f"predicted:{champion}"}), group_of)
    ctx.derived["accuracy_by_group"][task] = {"model": champion, "group": group_name,
                                              "rows": by_group["rows"].astype(int).to_dict(),
                                              "accuracy": by_group[champion].astype(float).to_dict()}
    path = figures.grouped_accuracy_figure(by_group, f"{task}: accuracy per true {group_name}",
                                           ctx.figures / f"{task}_accuracy_by_group.png", ctx.dpi)
    return md + [f"Accuracy of {champion} per true {group_name}:", "",
                 markdown_table(by_group.reset_index(names=group_name)), "",
                 ctx.image(f"accuracy per group {task}", path), ""]


def _training_figures(ctx: ReportContext, task: str, results: Mapping[str, dict]) -> list[str]:
    """Feature importances of every model that has them, and the task's learning curves."""
    md = []
    for model in results:
        importance = ctx.inputs.plots / task / model / "feature_importance.csv"
        if importance.exists():
            path = figures.importance_figure(pd.read_csv(importance), 15, f"{task}: {model} feature importances",
                                             ctx.figures / f"{task}_{model}_importance.png", ctx.dpi)
            md += [ctx.image(f"{model} importances {task}", path), ""]
    histories = {model: pd.read_csv(p) for model in results
                 if (p := ctx.inputs.plots / task / model / "loss.csv").exists()}
    if histories:
        path = figures.learning_curves_figure(histories, f"{task}: learning curves",
                                              ctx.figures / f"{task}_learning_curves.png", ctx.dpi)
        md += [ctx.image(f"learning curves {task}", path), ""]
    return md


def _task_sections(ctx: ReportContext) -> list[str]:
    """Per task: every model beside its baselines, the champion's figures; then the top-k curves of the champions."""
    md = ["## Results per task (test split)", ""]
    curves: dict[str, dict[int, float]] = {}
    for task, results in ctx.all_metrics.items():
        classification = is_classification(results)
        champion = ctx.champions[task]
        target = ctx.tasks.get(task, {}).get("target", "")
        unit = UNITS.get(target, "")
        info = results[champion]["data"]
        md += [f"### {task}", "",
               f"Target `{target}`{f' ({unit})' if unit else ''}; {info.get('rows_train', 0):,} train, "
               f"{info.get('rows_val', 0):,} validation and {info.get('rows_test', 0):,} test rows. "
               f"Champion (best on the validation rows): **{champion}**." + ("" if classification else f" Errors in {unit}."),
               "", markdown_table(model_table(results)), ""]
        md += _champion_figures(ctx, task, champion, classification, target, unit)
        test = results[champion]["test"]
        if classification and "top3_accuracy" in test:
            curves[f"{task}: {champion}"] = {1: test["accuracy"], **{k: test[f"top{k}_accuracy"] for k in (3, 5, 10)
                                                                     if f"top{k}_accuracy" in test}}
        md += _training_figures(ctx, task, results)
    conformal = ctx.json(ctx.inputs.evaluation / "conformal.json")
    if conformal:
        curves[f"{conformal['task']}: {conformal['model']} (k = 1…{len(conformal['top_k_accuracy'])})"] = {
            k + 1: v for k, v in enumerate(conformal["top_k_accuracy"])}
    if curves:
        path = figures.top_k_figure(curves, ctx.figures / "top_k_accuracy.png", ctx.dpi)
        md += ["### Top-k accuracy", "", ctx.image("top-k accuracy", path), ""]
    return md


def _by_source_section(ctx: ReportContext) -> list[str]:
    by_source = by_source_table(ctx.all_metrics, ctx.published)
    if not len(by_source):
        return []
    return ["## Volume per atom by source of the test rows", "",
            "One model scored on each source's test rows apart: OQMD test is the CrabNet benchmark's published test "
            "split (DFT volumes; the published MAEs below are on the same 51,255 formulas), AMCSD test is "
            "experimental mineral structures, and `amcsd_formula_not_in_other_sources_train` keeps the AMCSD test "
            "rows whose formula no OQMD training row has. Errors in Å³/atom; the baseline is the elemental "
            "volume sum with its scale fitted on train.", "", markdown_table(by_source), ""]


def _bravais_section(ctx: ReportContext) -> list[str]:
    lattices = lattice_table(ctx.all_metrics)
    if not (lattices["how"] != "direct Bravais-lattice model").any():
        return []
    return ["## Bravais lattice: direct, or summed from space groups", "",
            "A space-group model also predicts the lattice: P(lattice) is the sum of its groups' probabilities, so "
            "its lattice and group never contradict each other. Rows whose group was merged into `other` count as "
            "wrong. The composition tasks share one table and one split, so their rows compare directly; "
            "sg_from_geometry is on the primary table.", "", markdown_table(lattices), ""]


def _published_section(ctx: ReportContext) -> list[str]:
    leakage = ctx.json(ctx.inputs.metrics / "leakage_audit.json")
    return ["## Beside published figures", "",
            "Published numbers come from other data, other label sets and other (mostly random) splits; they are "
            "not comparable one to one with ours. They are here so a reader sees the comparison and its limits.", "",
            markdown_table(published_table(ctx.published, ctx.all_metrics, leakage, ctx.champions)), ""]


def _split_modes_section(ctx: ReportContext) -> list[str]:
    modes = ctx.json(ctx.inputs.split_modes / "evaluation.json")
    if not modes:
        return []
    return ["## Split by formula and by chemical system", "",
            "Grouping by reduced formula still lets near-duplicates (same elements, fractions within 0.02) sit in "
            "train and test. Splitting by chemical system keeps every test formula's element set out of training, "
            "closer to formulas unlike any seen; the headline model of each composition task refit on that split:",
            "", markdown_table(split_modes_table(modes, ctx.all_metrics, ctx.derived.get("task_tables", {}), ctx.tasks,
                                                 ctx.json(ctx.inputs.split / "summary.json")["group"].replace("_", " "))), ""]


def _ablation_section(ctx: ReportContext) -> list[str]:
    ablation = ctx.json(ctx.inputs.metrics / "ablation.json")
    if not ablation:
        return []
    return ["## Feature-set ablation", "",
            "One model per composition task refit on each set of composition features (`ablation` in params.yaml). "
            "Every set trains on the same seeded subsample of the training rows, early-stops on the same "
            "validation rows and is tested on all test rows, so the sets compare with each other; the full-data "
            "numbers of the default set are in the task tables above. Element-embedding sets are CBFV-style pooled "
            "statistics of the tables in `featurize.element_tables`; a table lacking an element leaves NaN there.",
            "", markdown_table(ablation_table(ablation)), ""]


def _leakage_section(ctx: ReportContext) -> list[str]:
    leakage = ctx.json(ctx.inputs.metrics / "leakage_audit.json")
    if not leakage:
        return []
    return ["## Leakage audit", "",
            "Random forest on `sg_from_geometry` run three ways, and the best accuracy any composition-only model "
            "can reach because one formula can crystallise in several space groups (each test formula's most "
            "frequent group, read off the test rows themselves). The audit keeps every space group as its own class (no "
            "rare-class merge), so (a) differs slightly from the task table above.", "",
            markdown_table(leakage_table(leakage)), ""]


def _conformal_section(ctx: ReportContext) -> list[str]:
    conformal = ctx.json(ctx.inputs.evaluation / "conformal.json")
    if not conformal:
        return []
    how = ("a copy of the model fitted on the chemical-system split's train rows, calibrated on that split's "
           "validation rows (element sets it never saw); the main split's test rows are scored with the deployed "
           "model, the chemical-system split's with the copy" if conformal["calibration"] == "chemical_system"
           else "the model's own validation rows")
    return ["## Calibrated prediction sets", "",
            f"Split-conformal sets for `{conformal['task']}` ({conformal['model']}), calibrated on "
            f"{conformal['calibration_rows']:,} rows: {how}"
            + (f"; one threshold per {conformal['mondrian'].replace('_', ' ')} (Mondrian)" if conformal.get("mondrian") else "")
            + ". A set holds every space group whose 1 − p is within the threshold (and always the top group). "
            "`xtalml predict --coverage 0.9` returns these sets.", "", markdown_table(conformal_table(conformal)), ""]


def _seed_spread_section(ctx: ReportContext) -> list[str]:
    runs = [ctx.json(ctx.inputs.evaluation / "seed_spread" / f"{key}.json")
            for key in ctx.params.get("seed_spread", {}).get("runs", {})]
    runs = [run for run in runs if run]
    if not runs:
        return []
    return ["## Seed spread", "",
            "Test figures of torch models refitted at other seeds (`seed_spread` stages: same rows, threads and "
            "kernels, only the seed differs; the train stage's seed is the committed model). The ranking holds when "
            "no other model's test figure lies within the model's range over seeds.", "",
            markdown_table(seed_spread_table(runs)), ""]


SECTIONS = (_intro_section, _results_section, _data_section, _task_sections, _by_source_section, _bravais_section,
            _published_section, _split_modes_section, _ablation_section, _leakage_section, _conformal_section,
            _seed_spread_section)


def build_report(params: Mapping[str, Any], inputs: ReportInputs, figures_dir: Path,
                 report_dir: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Write the figures under figures_dir; return the Markdown (its image links relative to report_dir), the numbers
    the report computed itself and each task's baselines (task_baselines)."""
    all_metrics = load_model_metrics(inputs.evaluation, training_runs(params))
    if not all_metrics:
        raise FileNotFoundError(f"no model evaluations under {inputs.evaluation}/<task>/<model>.json: run the train stages first")
    champions = {task: choose_champion(params, task, inputs.metrics / task)["champion"] for task in all_metrics}
    ctx = ReportContext(params, inputs, Path(figures_dir), Path(report_dir), all_metrics, champions,
                        task_baselines(all_metrics, params.get("tasks", {})),
                        {"rows_per_crystal_system": {}, "accuracy_by_group": {}})
    md = [line for section in SECTIONS for line in section(ctx)]
    md += structure_sections(ctx)
    md += discovery_sections(ctx)
    return "\n".join(md), ctx.derived, ctx.baselines


def lattice_parameters_table(evaluation: Mapping[str, Any]) -> pd.DataFrame:
    """Per Bravais lattice: test rows, MAE of each free parameter beside the median baseline, cell-volume MAPE."""
    rows = []
    for name, entry in evaluation["test"].items():
        params = [k[4:] for k in entry if k.startswith("mae_")]
        rows.append({"lattice": name, "test rows": entry["rows"],
                     "parameter MAE (model / median)": "; ".join(
                         f"{p} {entry[f'mae_{p}']:.3f} / {entry[f'baseline_mae_{p}']:.3f}" for p in params) or "– (cubic)",
                     "cell volume MAPE (model)": entry["volume_mape"], "MAPE (elemental)": entry["baseline_volume_mape"]})
    return pd.DataFrame(rows)


CSP_ARMS = ("ours", "random", "oracle", "templates_only", "pyxtal_prior", "unrelaxed")


def csp_tables(summary: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per arm, rates by atoms in the primitive cell) of the CSP benchmark."""
    arms = [a for a in CSP_ARMS if a in summary]

    def with_interval(arm: str, key: str) -> str:
        low, high = summary[arm][f"{key}_interval"]
        return f"{summary[arm][key]:.3f} ({low:.2f}–{high:.2f})"

    per_arm = pd.DataFrame([{"arm": a, "formulas": summary[a]["formulas"],
                             "top-1 match (95 % interval)": with_interval(a, "top1_cspbench"),
                             "top-5 match (95 % interval)": with_interval(a, "top5_cspbench"),
                             "top-1 space group": summary[a]["top1_space_group"],
                             "top-5 space group": summary[a]["top5_space_group"],
                             "top-5 (CDVAE tol.)": summary[a]["top5_cdvae"],
                             "first from a template": summary[a]["ranked_first_template"],
                             "formation energy of match / true (eV/atom)": (
                                 f"{summary[a]['matched_formation_energy']:.3f} / {summary[a]['true_formation_energy']:.3f}"
                                 if summary[a].get("matched_formation_energy") is not None else None),
                             "volume error of match": summary[a]["matched_volume_error"],
                             "candidate s / formula": round(summary[a]["candidate_seconds_per_formula"], 1)} for a in arms])
    bins = sorted({b for a in arms for b in summary[a]["by_atoms"]}, key=lambda b: int(b.split("-")[0]))
    by_atoms = pd.DataFrame([{"atoms (primitive)": b, "formulas": summary[arms[0]]["by_atoms"].get(b, {}).get("formulas", 0),
                              **{f"{a} {k}": summary[a]["by_atoms"].get(b, {}).get(key) for a in arms
                                 for k, key in (("top-1", "top1_cspbench"), ("top-5", "top5_cspbench"))}}
                             for b in bins])
    return per_arm, by_atoms


def _csp_pictures(ctx: ReportContext, pictures: list[Mapping[str, str]]) -> list[str]:
    """The generate stage's pictures (true structure beside our top-ranked candidate), copied beside the figures."""
    import shutil

    md = ["The true structure beside our top-ranked candidate, for formulas taken in turn from each atom bin "
          "(ball and stick, the conventional cell):", ""]
    for picture in pictures:
        source = ctx.inputs.generate / "pictures" / Path(picture["path"]).name
        if not source.exists():
            continue
        target = ctx.figures / f"csp_{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        md += [ctx.image(picture["formula"], target), "", f"*{picture['caption']}*", ""]
    return md if len(md) > 2 else []


def structure_sections(ctx: ReportContext) -> list[str]:
    """The lattice-parameter and CSP-benchmark sections, when those stages have run."""
    md: list[str] = []
    lattice = ctx.json(ctx.inputs.evaluation / "lattice.json")
    if lattice:
        md += ["## Lattice parameters from composition", "",
               "Per Bravais lattice, a forest predicts the conventional cell's free ratios and angles from composition "
               "(CRYSPNet's third model, scale-free); the cell volume is the volume-per-atom champion "
               f"({lattice['volume_model']}) times the cell's atoms. Test rows of the primary source; the baselines are "
               "the lattice's median parameters over the train rows and the elemental volume.", "",
               markdown_table(lattice_parameters_table(lattice)), "",
               f"Test rows {lattice['rows']['test']:,}; train rows {lattice['rows']['train']:,}.", ""]
    summary = ctx.json(ctx.inputs.generate / "summary.json")
    if summary:
        per_arm, by_atoms = csp_tables(summary)
        path = figures.match_curve_figure(
            {a: summary[a]["curve_any_cspbench"] for a in per_arm["arm"]}, ctx.figures / "csp_match_curve.png", ctx.dpi)
        first = summary[per_arm["arm"].iloc[0]]
        md += ["## From formula to structure (CSP benchmark)", "",
               "Held-out ordered test structures, each searched with the same budget of relaxed candidates per formula "
               "by every arm: ours (known structures of the formula's anonymous formula as templates, the formula's "
               "elements on the sites of the nearest member, ranked with the space-group champion's probabilities; "
               "PyXtal structures in the champion's groups with Wyckoff positions drawn from Materials Project "
               "frequencies for the rest), random search (PyXtal in groups drawn from the training frequencies) and "
               "the oracle (templates and PyXtal in the true group). Every candidate is scaled to the predicted volume, "
               "relaxed with CHGNet (a short relaxation) and ranked by energy per atom minus `generate.search.score_weight` "
               "times its template score (energy alone reranks templates poorly, measured on validation formulas); "
               "never a template of the target's own formula. Formation energies are against the `references` "
               "stage's elemental structures; the true structure is relaxed the same way. A match is "
               "CSPBench's (StructureMatcher ltol 0.2, stol 0.3, angle 5°, both structures symmetrised at symprec "
               "0.1); the space group is the relaxed candidate's at symprec 0.1. "
               f"Template coverage: {first['has_template']:.3f} of the formulas have a template of their anonymous "
               f"formula, {first['has_template_in_true_group']:.3f} one in their true group.", "",
               markdown_table(per_arm), "", "Match rates by atoms in the primitive cell:", "", markdown_table(by_atoms),
               "", ctx.image("CSP match rate against candidates", path), ""]
        md += _csp_pictures(ctx, summary.get("pictures", []))
    return md


RANKINGS = {"existence_model": "existence model", "charge_balance_rule": "charge-balance rule", "random_order": "random order"}


def existence_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """One row per ranking of held-out compositions (the existence model, the charge-balance rule, random order)."""
    return pd.DataFrame([{"ranking": RANKINGS[key], "average precision": figures["average_precision"],
                          "mean AP per system": figures["mean_system_average_precision"],
                          **{f"recall@{k}": figures[f"recall_at_{k}"] for k in (1, 5, 10)}}
                         for key, figures in metrics.items()])


def discovery_arms_table(arms: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per arm of the rediscovery benchmark."""
    rows = []
    for arm, f in arms.items():
        rows.append({"arm": arm, "systems": f["systems"], "known compounds": f["known_compounds"],
                     "formula recall": f["formula_recall"], "recall, joint hull": f["formula_recall_joint_hull"],
                     "reachable": f["reachable_share"], "proposed": f["proposed_share"],
                     "known space group (of rediscovered)": f["known_space_group_share"],
                     "known structure (of those with one)": (f"{f['known_structure_match_share']:.3f} of "
                                                             f"{f['rediscovered_with_structure']}"
                                                             if f["rediscovered_with_structure"] else "– (none has one)"),
                     "new, on the hull": f["new_stable_proposals"],
                     "new, joint hull": f["new_stable_proposals_joint_hull"], "s / system": int(round(f["seconds_per_system"]))})
    return pd.DataFrame(rows)


def discovery_sections(ctx: ReportContext) -> list[str]:
    """The existence model and the rediscovery benchmark, when those stages have run."""
    import shutil

    md: list[str] = []
    existence = ctx.json(ctx.inputs.metrics / "existence.json")
    if existence:
        rows = existence["rows"]
        md += ["## Which compositions exist (the existence model)", "",
               "A LightGBM classifier of 'a known compound has this composition' from composition features: positives "
               "are the formulas of our experimental sources, negatives the other compositions of the same chemical "
               "systems. Split by chemical system; each held-out system's every composition is ranked. Test systems "
               f"{rows['systems']['test']:,} (train {rows['systems']['train']:,}, {rows['train']:,} training rows of "
               f"which {rows['train_known']:,} known):", "", markdown_table(existence_table(existence["test"])), ""]
    summary = ctx.json(ctx.inputs.discover / "summary.json")
    if summary:
        tolerance = ctx.params["discover"]["hull_tolerance"]
        budget = summary["budget"]
        md += ["## Discovery: rediscovering held-out compounds", "",
               f"Held-out chemical systems (test systems of the existence split with known compounds, none of them a "
               f"training row of the space-group model; {summary['known_compounds_in_volume_training_rows']} are "
               f"training rows of the volume model, which saw their volume only; every member of these systems left "
               f"out of the template library: {summary['library_rows_dropped']} rows) searched by each arm at one budget: "
               f"{budget['compositions_per_system']} compositions per system, {budget['candidates_per_composition']} "
               f"candidates each, relaxed with CHGNet, with the library's known structures of the system (at most "
               f"{budget['known_structures_per_system']}) on a convex hull of formation energy. Formula recall: share "
               f"of the known compounds proposed within {tolerance} eV/atom of the run's hull (joint hull: of the hull "
               "of every arm's entries together, stricter where an arm found only poor structures). New: proposals "
               "on the hull that no source of ours holds. Arms: ours "
               "(compositions ranked by the existence model), enumeration (ours without it: fewest atoms first), "
               "random (random compositions, PyXtal in random groups). Systems dropped: "
               + ", ".join(f"{n} ({why})" for why, n in summary["dropped_systems"].items()) + ".", "",
               markdown_table(discovery_arms_table(summary["arms"])), ""]
        by_n = sorted({k for f in summary["arms"].values() for k in f
                       if k.startswith("formula_recall_") and k.endswith("_elements")})
        if by_n:
            md += ["Formula recall by number of elements:", "",
                   markdown_table(pd.DataFrame([{"arm": arm, **{k.removeprefix("formula_recall_").replace("_", " "):
                                                                 f.get(k) for k in by_n}}
                                                for arm, f in summary["arms"].items()])), ""]
        md += ["The existence ranking of these systems' compositions:", "",
               markdown_table(existence_table(summary["existence_ranking"])), ""]
        for picture in summary.get("pictures", []):
            source = ctx.inputs.discover / Path(picture["path"]).name
            if source.exists():
                target = ctx.figures / f"discover_{source.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                md += [ctx.image(f"hull of {picture['system']}", target), "",
                       f"*{picture['system']}: the hull of the first arm's run; known compounds (held out): "
                       f"{', '.join(picture['marked']) or 'none proposed'}.*", ""]
        proposals_path = ctx.inputs.discover / "proposals.parquet"
        if proposals_path.exists():
            proposals = pd.read_parquet(proposals_path)
            first = next(iter(summary["arms"]))
            new = proposals[(proposals["arm"] == first) & proposals["new"].astype(bool)
                            & (proposals["e_above_hull"].astype(float) <= tolerance)]
            if len(new):
                md += [f"New compositions within {tolerance} eV/atom of the hull ({first} arm; no source of ours "
                       "holds them):", "",
                       markdown_table(new[["system", "formula", "space_group_number", "prototype",
                                           "formation_energy_per_atom", "e_above_hull"]].head(15)), ""]
    return md
