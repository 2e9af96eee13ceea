"""End to end: the whole `dvc repro` on the tiny config, then what users do with its results (MLflow, registry, predict)."""

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest
import yaml
from tiny_pipeline import TINY, TINY_MATRIX, tiny_repo
from tiny_pipeline import run as _run

from xtalml.config import REPO_ROOT, compose, training_runs
from xtalml.evaluation.metrics import headline_metrics
from xtalml.models.registry import REGISTRY, task_inputs, writes_loss_history
from xtalml.serving import model_requirements
from xtalml.tasks import DataDirs, load_task
from xtalml.training import validation_score


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The tiny pipeline after one `dvc repro`: every test of this module reads its outputs, in any order."""
    root, env = tiny_repo(tmp_path_factory)
    _run([sys.executable, "-m", "dvc", "repro"], root, env)
    return root, env


def test_dvc_repro_trains_every_model_and_logs_to_mlflow(repo):
    root, env = repo
    assert "Running stage" not in _run([sys.executable, "-m", "dvc", "repro"], root, env)  # second run: nothing to do
    params = yaml.safe_load((root / "params.yaml").read_text())
    runs = training_runs(params)
    assert {(r["task"], r["model"]) for r in runs} == {
        (task, model) for axes in TINY_MATRIX.values() for task in axes["task"] for model in axes["model"]}
    # every model whose training path differs trains (the other five take these paths: tiny_pipeline.py)
    assert {r["model"] for r in runs} == set(REGISTRY) - {"decision_tree", "adaboost", "svm", "logistic_regression",
                                                          "lightgbm"}
    assert {r["task"] for r in runs} == set(params["tasks"])
    for run in runs:
        name = f"{run['task']}/{run['model']}"
        metrics = json.loads((root / "data/evaluation" / f"{name}.json").read_text())
        kind = params["tasks"][run["task"]]["kind"]
        headline = json.loads((root / "metrics" / f"{name}.json").read_text())
        assert headline == headline_metrics(metrics, kind) and "per_class" not in json.dumps(headline), name
        predictions = pd.read_parquet(root / "data/predictions" / f"{name}.parquet")
        assert len(predictions) == metrics["test"]["n"] == metrics["data"]["rows_test"] > 0
        assert metrics["baselines"], name  # every model has its baselines on the same split
        assert (root / "models" / f"{name}.pkl").exists()
        plots = {p.name for p in (root / "plots" / name).iterdir()}
        assert plots & {"confusion.csv", "parity.csv"}, name
        spec = REGISTRY[run["model"]]
        assert ("loss.csv" in plots) == writes_loss_history(run["model"], params["models"][run["model"]]), name
        assert ("feature_importance.csv" in plots) == spec.feature_importance, name
        assert ("cv" in metrics) == spec.cross_validates and metrics.get("cv", {"folds": 2})["folds"] == 2, name
    volume = json.loads((root / "data/evaluation/volume_from_geometry/mlp_regressor.json").read_text())
    assert volume["baselines"]["analytic_volume"]["mape"] < 1  # the cell formula is exact up to rounding
    assert "feature_importance.csv" in {p.name for p in (root / "plots/volume_from_geometry/tabnet").iterdir()}

    shown = json.loads(subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=root, env=env,
                                      capture_output=True, text=True, check=True).stdout)["data"]
    default = {f"plots/{r['task']}/{r['model']}" for r in training_runs(compose())}  # dvc.yaml's plots: the default runs
    written = {str(p.relative_to(root)) for p in (root / "plots").rglob("*.csv")
               if p.name not in ("parity.csv", "match_curve.csv") and str(p.parent.relative_to(root)) in default}
    assert written and written <= set(shown)  # every plot file is drawn, parity files in one chart per regression task
    assert "CSP benchmark: match rate against candidates per formula" in shown  # one line per arm
    for path, renders in shown.items():
        spec = json.dumps(renders[0]["content"])
        assert ('"rect"' in spec) == path.endswith("confusion.csv"), path  # confusion matrices as heat maps
    assert {"volume_from_geometry predicted vs true", "volume_per_atom_from_composition predicted vs true"} <= set(shown)

    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    assert {r["task"] for r in runs} <= experiments.keys()
    logged = client.search_runs([experiments[t] for t in {r["task"] for r in runs}], max_results=1000)
    assert len(logged) == len(runs)  # one MLflow run per trained model
    for run in logged:
        assert run.data.tags["git_commit"] and any(k.startswith("data.") for k in run.data.tags)
        assert any(k.startswith("test.") for k in run.data.metrics) and any(k.startswith("baseline.") for k in run.data.metrics)
        assert any(k.startswith("model.") for k in run.data.params)  # the model section, flattened
        contexts = {i.tags[0].value for i in run.inputs.dataset_inputs if i.tags}
        assert contexts == {"training", "validation", "test"}, run.info.run_name  # the Dataset column fills
        assert (run.info.end_time - run.info.start_time) / 1000 >= run.data.metrics["train_seconds"]  # opened before fit
        model = mlflow.pyfunc.load_model(run.data.tags["model_uri"])  # the Model column: an MLflow model with signature
        assert model.metadata.signature is not None
    history = client.get_metric_history(next(r.info.run_id for r in logged if r.info.run_name == "wide_deep"), "val_loss")
    assert len(history) >= 1 and history[0].step == 0


def test_every_task_has_a_champion_chosen_on_validation_rows(repo):
    import mlflow

    root, _ = repo
    register = json.loads((root / "metrics" / "register.json").read_text())
    runs = training_runs(yaml.safe_load((root / "params.yaml").read_text()))
    assert set(register["tasks"]) == {r["task"] for r in runs}
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    mlflow.set_tracking_uri(uri)
    tasks = yaml.safe_load((root / "params.yaml").read_text())["tasks"]
    for task, chosen in register["tasks"].items():
        scores = {r["model"]: json.loads((root / "metrics" / task / f"{r['model']}.json").read_text())["validation"][
            chosen["metric"]] for r in runs if r["task"] == task}
        assert chosen["validation"] == scores[chosen["champion"]]
        best = (max if chosen["metric"] == "accuracy" else min)(scores.values())
        assert scores[chosen["champion"]] == best and set(scores) == {r["model"] for r in runs if r["task"] == task}
        # the score the train stage recorded is the saved model's on the validation rows, or, where the saved model was
        # refitted on the train + validation rows (two_stage), that of its fit on the train rows alone
        bundle = joblib.load(root / "models" / task / f"{chosen['champion']}.pkl")
        data = load_task(task, tasks[task], DataDirs.under(root), **task_inputs(chosen["champion"]))
        predicted = bundle["model"].predict(data.frames["val"][bundle["feature_names"]].to_numpy(float))
        on_val = validation_score(data, predicted)[chosen["metric"]]
        trained = json.loads((root / "data/evaluation" / task / f"{chosen['champion']}.json").read_text())["data"]
        if trained.get("refitted_on_train_and_val_rows"):
            assert trained["refitted_on_train_and_val_rows"] == len(data.y["train"]) + len(data.y["val"])
            assert on_val > scores[chosen["champion"]]  # it has seen those rows now
        else:
            assert scores[chosen["champion"]] == pytest.approx(on_val)
        version = client.get_model_version_by_alias(f"xtalml-{task}", "champion")
        assert version.tags["model"] == chosen["champion"]
        model = mlflow.pyfunc.load_model(f"models:/xtalml-{task}@champion")
        assert model.metadata.signature is not None and model.metadata.get_input_schema() is not None
        assert client.get_experiment_by_name(task).tags["mlflow.experimentKind"] == "custom_model_development"
    # the predictor lists what its bundled champions need (listed, not inferred by importing them)
    needs = set(model_requirements("models:/xtalml-predictor@champion"))
    assert all(set(model_requirements(f"models:/xtalml-{task}@champion")) <= needs
               for task in register["predictor"]["models"])
    predictor = mlflow.pyfunc.load_model("models:/xtalml-predictor@champion")
    out = predictor.predict(pd.DataFrame({"formula": ["Fe2O3", "Qq"]}))
    assert pd.isna(out.loc[0, "error"]) and out.loc[0, "volume_per_atom"] > 0 and "Qq" in out.loc[1, "error"]
    two_stage = json.loads((root / "data/evaluation" / "sg_from_composition" / "two_stage.json").read_text())
    assert two_stage["data"]["refitted_on_train_and_val_rows"] > 0 and 0 < two_stage["validation"]["accuracy"] < 1


def _report_tables(text: str) -> dict[str, pd.DataFrame]:
    """The first Markdown table under each '### <task>' heading of the report."""
    tables, task, rows = {}, None, []
    for line in text.splitlines() + [""]:
        if line.startswith("### "):
            task, rows = line[4:].strip(), []
        elif task and line.startswith("|") and task not in tables:
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif task and rows and task not in tables:
            tables[task] = pd.DataFrame(rows[2:], columns=rows[0])
    return tables


def test_report_numbers_trace_to_metrics_files(repo):
    from xtalml.evaluation.report import fmt

    root, _ = repo
    text = (root / "reports" / "report.md").read_text()
    for heading in ("## Data", "## Results per task", "## Beside published figures", "## Leakage audit",
                    "## Calibrated prediction sets", "## Split by formula and by chemical system", "## Feature-set ablation"):
        assert heading in text
    ablation = json.loads((root / "metrics" / "ablation.json").read_text())
    section = text.split("## Feature-set ablation")[1].split("\n## ")[0]
    for task, result in ablation["tasks"].items():  # every feature set of every task, its number from the metrics file
        assert len(result["runs"]) == len(yaml.safe_load((root / "params.yaml").read_text())["ablation"]["feature_sets"])
        for run in result["runs"]:
            metric = "accuracy" if "accuracy" in run["test"] else "mae"
            assert f"| {task} | {result['model']} | {run['feature_set']} | {fmt(run['features'])} |" in section
            assert fmt(run["test"][metric]) in section
    modes = json.loads((root / "metrics" / "split_modes.json").read_text())
    chosen = yaml.safe_load((root / "params.yaml").read_text())["split_modes"]["models"]
    for task, result in modes.items():  # each row: the main split's number from the task's metrics file
        metric = "accuracy" if "accuracy" in result["test"] else "mae"
        main = json.loads((root / "metrics" / task / f"{chosen[task]}.json").read_text())["test"][metric]
        assert f"| {task} | {chosen[task]} | " in text and fmt(result["test"][metric]) in text and fmt(main) in text
        assert set(result) >= {"validation", "test"}  # as a task's metrics file
    details = json.loads((root / "data/split_modes/evaluation.json").read_text())
    assert set(details["tasks"]) == set(modes) and all(
        set(d) >= {"train_seconds", "data"} for d in details["tasks"].values())
    volume = json.loads((root / "data/evaluation/volume_per_atom_from_composition/mlp_regressor.json").read_text())
    assert set(volume["test_by_source"]) >= {"oqmd_volume", "amcsd"}  # OQMD test and AMCSD test scored apart
    assert sum(volume["test_by_source"][s]["n"] for s in ("oqmd_volume", "amcsd")) == volume["test"]["n"]
    by_source = text.split("## Volume per atom by source of the test rows")[1].split("\n## ")[0]
    for subset, m in volume["test_by_source"].items():
        assert f"| volume_per_atom_from_composition | {subset} | mlp_regressor | {fmt(m['n'])} | {fmt(m['mae'])} |" in by_source
    assert "| published: CrabNet | – | 0.277 |" in by_source
    for image in [line.split("(")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]:
        assert (root / "reports" / image).stat().st_size > 1000, image
    figures = {p.name for p in (root / "reports" / "figures").iterdir()}
    for name in ("sg_from_composition_confusion.png", "volume_from_geometry_parity.png", "top_k_accuracy.png",
                 "sg_from_geometry_accuracy_by_group.png", "volume_from_geometry_tabnet_importance.png",
                 "sg_from_composition_learning_curves.png", "class_distribution.png"):
        assert name in figures
    tables = _report_tables(text)
    runs = training_runs(yaml.safe_load((root / "params.yaml").read_text()))
    assert set(tables) >= {r["task"] for r in runs}
    baselines = json.loads((root / "reports" / "baselines.json").read_text())
    assert set(baselines) == {r["task"] for r in runs} and all(baselines.values())  # one set per task
    for run in runs:
        metrics = json.loads((root / "metrics" / run["task"] / f"{run['model']}.json").read_text())
        row = tables[run["task"]].set_index("model").loc[run["model"]]
        key, column = ("accuracy", "accuracy") if "accuracy" in metrics["test"] else ("mae", "MAE")
        assert row[column] == fmt(metrics["test"][key]), (run, row[column])
        for name, baseline in baselines[run["task"]].items():
            assert tables[run["task"]].set_index("model").loc[f"baseline: {name.replace('_', ' ')}", column] == fmt(baseline[key])
    derived = json.loads((root / "reports" / "derived.json").read_text())
    for task, groups in derived["accuracy_by_group"].items():
        for group, accuracy in groups["accuracy"].items():
            assert f"| {group} | {fmt(groups['rows'][group])} | {fmt(accuracy)} |" in text, (task, group)
    conformal = json.loads((root / "data/evaluation/conformal.json").read_text())
    register = json.loads((root / "metrics" / "register.json").read_text())
    assert conformal["model"] == register["tasks"]["sg_from_composition"]["champion"]  # sets for the champion
    assert set(conformal["test"]) == {"main_split", "chemical_system_split"}  # coverage on the test rows of both splits
    for split, scored in conformal["test"].items():
        assert f"| {split.replace('_', ' ')} ({fmt(scored['rows'])}) | 0.900 | {fmt(scored['sets']['0.9']['coverage'])} |" in text
    assert conformal["calibration_rows"] > 0 and (root / "models/conformal/sg_from_composition.json").exists()


def test_predict_returns_conformal_sets_and_uses_mlflow_runs(repo):
    from mlflow.tracking import MlflowClient

    root, env = repo
    cmd = [sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "Fe2O3", "--coverage", "0.9", "--format", "json"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for answer in json.loads(proc.stdout)["predictions"]:
        groups = answer["space_group_set"]["groups"]
        assert groups and groups[0]["number"] == answer["space_group_top5"][0]["number"]
        assert [g["p"] for g in groups] == sorted((g["p"] for g in groups), reverse=True)
    wide = subprocess.run(cmd[:-4] + ["--coverage", "0.99", "--format", "json"], cwd=root, env=env, capture_output=True, text=True)
    assert len(json.loads(wide.stdout)["predictions"][0]["space_group_set"]["groups"]) >= len(
        json.loads(proc.stdout)["predictions"][0]["space_group_set"]["groups"])
    champion = json.loads((root / "metrics" / "register.json").read_text())["tasks"]["sg_from_composition"]["champion"]
    assert all(a["models"]["sg_from_composition"] == champion for a in json.loads(proc.stdout)["predictions"])
    another = "knn" if champion != "knn" else "random_forest"
    other = subprocess.run(cmd + ["--sg-from-composition", another], cwd=root, env=env, capture_output=True, text=True)
    assert other.returncode == 2 and f"calibration is for {champion}" in other.stderr

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sg_from_composition").experiment_id
    run = client.search_runs([experiment], "attributes.run_name = 'knn'", max_results=1)[0]
    proc = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "--format", "json", "--mlflow-run",
                           run.info.run_id], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)["predictions"][0]
    assert answer["space_group_top5"] and answer["models"]["sg_from_composition"] == "knn"
    bad = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "--mlflow-run", "0" * 32], cwd=root,
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "not found" in bad.stderr


def test_one_model_param_makes_only_that_models_stages_stale(repo):
    from xtalml.config import compose

    root, env = repo
    before = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(yaml.safe_dump(compose([*TINY, "models.knn.n_neighbors=3"]), sort_keys=False))
    try:
        out = _run([sys.executable, "-m", "dvc", "repro", "--dry"], root, env)
    finally:
        (root / "params.yaml").write_text(before)
    stale = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    # register and report follow when the new model files land; a queued sweep runs it for real (test_dvc_stages)
    assert stale == {"train_classifier@bravais_from_composition-knn", "train_classifier@sg_from_composition-knn"}


def test_predict_answers_good_inputs_and_names_bad_ones(repo, tmp_path):
    root, env = repo
    listing = tmp_path / "formulas.csv"
    listing.write_text("formula,note\nNaCl,salt\nFe2O3,hematite\n")
    cif = REPO_ROOT.parent / "shared" / "data" / "cod-cifs" / "1569774.cif"
    cmd = [sys.executable, "-m", "xtalml.cli", "predict", "SiO2", "Xx2O", str(listing), str(cif),
           str(tmp_path / "missing.cif"), "--format", "json"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr  # bad inputs make the exit code non-zero ...
    result = json.loads(proc.stdout)
    answered = {a["input"]: a for a in result["predictions"]}
    assert set(answered) == {"SiO2", "NaCl", "Fe2O3", str(cif)}  # ... and the good ones are still answered
    for answer in answered.values():
        assert len(answer["bravais_top3"]) == 3 and len(answer["space_group_top5"]) == 5
        assert abs(sum(e["p"] for e in answer["space_group_top5"])) <= 1.0001 and answer["volume_per_atom"] > 0
        assert answer["prediction"]["space_group"]["lattice"] == answer["prediction"]["bravais_lattice"]
    assert answered[str(cif)]["cell_volume"] > 0
    assert "unknown element 'Xx'" in result["errors"]["Xx2O"]
    assert result["errors"][str(tmp_path / "missing.cif")] == "CIF file not found"

    table = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "--format", "csv"], cwd=root,
                           env=env, capture_output=True, text=True)
    assert table.returncode == 0 and table.stdout.startswith("input,formula,bravais,space_group,bravais_1")
    missing = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "--models", str(tmp_path)],
                             cwd=root, env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "is missing: run `dvc repro --glob 'train_*@" in missing.stderr
    nowhere = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert nowhere.returncode == 2 and "no xtalml project" in nowhere.stderr and "--project" in nowhere.stderr
    bare = tmp_path / "bare"  # a project that has not run: the message names the stage to run, no silent fallback
    bare.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        (bare / name).write_bytes((root / name).read_bytes())
    unregistered = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "--project", str(bare)],
                                  cwd=tmp_path, env=env, capture_output=True, text=True)
    assert unregistered.returncode == 2 and "run `dvc repro register`" in unregistered.stderr


def test_predict_answers_with_each_tasks_champion_by_default(repo):
    root, env = repo
    register = json.loads((root / "metrics" / "register.json").read_text())["tasks"]
    proc = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "--format", "json"], cwd=root, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)["predictions"][0]
    assert answer["models"] == {task: register[task]["champion"] for task in answer["models"]}
    assert set(answer["models"]) == {"bravais_from_composition", "sg_from_composition", "volume_per_atom_from_composition"}
    table = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "--format", "csv"], cwd=root, env=env,
                           capture_output=True, text=True)
    row = pd.read_csv(__import__("io").StringIO(table.stdout)).iloc[0]
    assert row["model_space_group"] == register["sg_from_composition"]["champion"]
    # the register stage wrote the champions to models/predictor, compact where they have a compact form: the
    # command reads those, and they answer exactly as the pickled champions do
    from xtalml.predict import load_predictor, predict_formulas, serving_models

    assert serving_models(root / "models") == {task: register[task]["champion"] for task in answer["models"]}
    formulas = ["NaCl", "SrTiO3", "Fe2O3", "LiFePO4", "Qq"]
    served = load_predictor(root / "models", serving_models(root / "models"), serving=True)
    pickled = load_predictor(root / "models", serving_models(root / "models"))
    assert predict_formulas(served, formulas) == predict_formulas(pickled, formulas)


def test_conformal_sets_for_an_early_stopping_network(repo, tmp_path):
    """A non-forest classifier that early-stops: its copy watches half the validation chemical systems, the other half
    calibrates it, and predict then answers with its sets."""
    from xtalml.config import compose

    root, env = repo
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(compose([*TINY, "conformal.model=mlp_classifier"]), sort_keys=False))
    out, metrics, details = tmp_path / "conformal", tmp_path / "conformal.json", tmp_path / "details.json"
    _run([sys.executable, "stages/conformal.py", "--params", str(params), "--models", "models/sg_from_composition",
          "--train-metrics", "metrics/sg_from_composition", "--features", "data/features", "--split", "data/split",
          "--split-modes", "data/split_modes", "--out", str(out), "--metrics", str(metrics), "--details", str(details)],
         root, env)
    result = json.loads(details.read_text())
    assert json.loads(metrics.read_text()).keys() == result["test"].keys()
    assert result["model"] == "mlp_classifier" and set(result["test"]) == {"main_split", "chemical_system_split"}
    full = json.loads((root / "data/evaluation/conformal.json").read_text())
    assert 0 < result["calibration_rows"] < full["calibration_rows"]  # half of the validation groups, not all
    for scored in result["test"].values():
        sizes = [s["mean_set_size"] for s in scored["sets"].values()]
        assert sizes == sorted(sizes) and all(0 <= s["coverage"] <= 1 for s in scored["sets"].values())
    models = tmp_path / "models"
    __import__("shutil").copytree(root / "models", models)
    (models / "conformal" / "sg_from_composition.json").write_text((out / "sg_from_composition.json").read_text())
    proc = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "SrTiO3", "--models", str(models),
                           "--sg-from-composition", "mlp_classifier", "--coverage", "0.8", "--format", "json"],
                          cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for answer in json.loads(proc.stdout)["predictions"]:
        assert answer["models"]["sg_from_composition"] == "mlp_classifier" and answer["space_group_set"]["groups"]


def test_lattice_and_generate_stages_score_every_arm(repo):
    from pymatgen.io.cif import CifParser

    root, _ = repo
    lattice = json.loads((root / "metrics/lattice.json").read_text())
    assert lattice["test"]["rows_test"] > 0 and lattice["test"]["baseline_volume_mape"] > 0
    per_lattice = json.loads((root / "data/evaluation/lattice.json").read_text())["test"]
    assert per_lattice and sum(e["rows"] for e in per_lattice.values()) == lattice["test"]["rows_test"]
    for entry in per_lattice.values():
        assert all(f"baseline_{k}" in entry for k in entry if k.startswith("mae_"))  # each beside its baseline
    bundle = joblib.load(root / "models/lattice/lattice.pkl")
    assert bundle["feature_names"] and bundle["formula_units"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    generate = json.loads((root / "metrics/generate.json").read_text())
    coverage = generate.pop("coverage")
    assert set(generate) == set(params["generate"]["arms"])
    assert 0 <= coverage["has_template_in_true_group"] <= coverage["has_template"] <= 1
    formulas = {arm: figures["formulas"] for arm, figures in generate.items()}
    assert len(set(formulas.values())) == 1 and formulas["ours"] >= 1  # every arm on the same formulas
    for figures in generate.values():
        assert 0 <= figures["top1_cspbench"] <= figures["top5_cspbench"] <= 1
        assert 0 <= figures["top1_space_group"] <= figures["top5_space_group"] <= 1
    library = pd.read_parquet(root / "data/templates/library.parquet")
    templates = json.loads((root / "metrics/templates.json").read_text())
    assert templates["templates"] == library["template_id"].nunique() > 0 and templates["structures"] == len(library)
    assert {"amcsd", "aflow", "mineral"} <= set(library["origin"]) and library["atoms"].max() <= 12
    split = pd.read_parquet(root / "data/split/primary.parquet").set_index("id")["part"]
    assert (split[library.loc[library["origin"] == "amcsd", "source_id"]] == "train").all()  # train rows only
    candidates = pd.read_parquet(root / "data/generate/candidates.parquet")
    assert set(candidates["source"]) <= {"template", "pyxtal"}
    assert candidates.loc[candidates["source"] == "template", "template_id"].notna().all()
    curve = pd.read_csv(root / "plots/generate/match_curve.csv")
    assert set(curve.columns) == {"candidates", *generate} and curve["candidates"].max() == params["generate"]["benchmark"]["search"]["candidates"]
    cifs = sorted((root / "data/generate/cifs/ours").rglob("*.cif"))
    assert cifs and "# relaxed space group" in cifs[0].read_text()
    assert CifParser(str(cifs[0])).parse_structures(primitive=False)
    report = (root / "reports/report.md").read_text()
    assert "## From formula to structure (CSP benchmark)" in report and "## Lattice parameters from composition" in report
    assert (root / "reports/figures/csp_match_curve.png").exists()


def test_predict_gives_the_headline_cell_and_generate_writes_ranked_cifs(repo, tmp_path):
    root, env = repo
    proc = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "--format", "json"], cwd=root, env=env,
                          capture_output=True, text=True)
    answer = json.loads(proc.stdout)["predictions"][0]
    cell = answer["cell"]
    assert {"a", "b", "c", "alpha", "beta", "gamma", "formula_units"} <= set(cell)
    from xtalml.features.geometry import analytic_volume

    volume = analytic_volume(*(cell[k] for k in ("a", "b", "c", "alpha", "beta", "gamma")))
    assert volume == pytest.approx(answer["volume_per_atom"] * 2 * cell["formula_units"], rel=1e-3)

    out = tmp_path / "cifs"
    proc = subprocess.run([sys.executable, "-m", "xtalml.cli", "generate", "NaCl", "Xx2O", "--candidates", "2",
                           "--out", str(out), "--format", "json", "--png"], cwd=root, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 1, proc.stderr  # one bad formula: exit 1, the good one still answered
    result = json.loads(proc.stdout)
    assert "unknown element 'Xx'" in result["errors"]["Xx2O"]
    [nacl] = result["structures"]
    ranks = [c["rank"] for c in nacl["candidates"]]
    assert nacl["input"] == "NaCl" and ranks == list(range(1, len(ranks) + 1))
    assert all(Path(c["cif"]).is_relative_to(out) and Path(c["cif"]).exists() for c in nacl["candidates"])
    # NaCl's own structure is among the templates (AFLOW's B1, AMCSD's halite): generate may use it, and says so
    templated = [c for c in nacl["candidates"] if c["source"] == "template"]
    assert templated and all(c["template_id"] and c["prototype"] for c in templated)
    assert any(c["known"] for c in templated) and "# from template" in Path(templated[0]["cif"]).read_text()
    assert all(Path(c["png"]) == Path(c["cif"]).with_suffix(".png") and Path(c["png"]).stat().st_size > 5_000
               for c in nacl["candidates"])  # --png: a picture beside each CIF
    first = nacl["candidates"][0]  # the tiny references stage relaxed Na and a Cl2 molecule: a number, references named
    assert first["formation_energy_per_atom"] < 0 and set(first["references"]) == {"Na", "Cl"}
    assert "formation energy per atom" in Path(first["cif"]).read_text()


def test_structures_carry_formation_energies_pictures_and_runs_that_read_right(repo):
    import mlflow

    root, _ = repo
    references = pd.read_parquet(root / "data/references/references.parquet").set_index("element")
    assert set(references.index) <= {"Na", "Cl", "O", "Mg", "S", "Zn"} and references.loc["Cl", "source"] == "molecule"
    assert references["energy_per_atom"].lt(0).all()
    candidates = pd.read_parquet(root / "data/generate/candidates.parquet")
    summary = json.loads((root / "data/generate/summary.json").read_text())
    for row in candidates.itertuples():  # a number exactly where every element of the formula has a reference
        elements = {str(e) for e in __import__("pymatgen.core").core.Composition(row.input)}
        assert (row.formation_energy_per_atom is not None and pd.notna(row.formation_energy_per_atom)) == (
            elements <= set(references.index) and row.energy_per_atom is not None), row
    pictures = summary["pictures"]
    assert pictures and all((root / p["path"]).stat().st_size > 10_000 for p in pictures)
    report = (root / "reports/report.md").read_text()
    assert all(f"figures/csp_{Path(p['path']).name}" in report and p["caption"] in report for p in pictures)

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("crystal_structure_prediction")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert sorted(r.info.run_name for r in runs) == sorted(params["generate"]["arms"])
    for run in runs:  # each arm's run spans the benchmark's relaxations, names its formulas and keeps its CIFs
        assert run.info.end_time - run.info.start_time >= 1000 * run.data.metrics["relaxation_seconds"] / 2
        assert [i.dataset.name for i in run.inputs.dataset_inputs][0].startswith("benchmark formulas")
        assert "cifs" in {a.path for a in client.list_artifacts(run.info.run_id)}
    ours = next(r for r in runs if r.info.run_name == params["generate"]["arms"][0])
    assert {a.path for a in client.list_artifacts(ours.info.run_id, "pictures")}
    experiments = client.search_experiments()
    assert {*params["tasks"], "crystal_structure_prediction", "lattice_from_composition", "xtalml-predictor",
            "seed_spread", "Default"} <= {e.name for e in experiments}
    for experiment in experiments:  # every one has a Description column
        assert experiment.tags.get("mlflow.note.content"), experiment.name


def test_seed_spread_adds_the_other_seeds_to_the_train_stages_run_and_the_report_shows_it(repo):
    root, _ = repo
    spread = json.loads((root / "data/evaluation/seed_spread/volume_from_geometry-wide_deep.json").read_text())
    trained = json.loads((root / "metrics/volume_from_geometry/wide_deep.json").read_text())
    assert spread["seeds"] == [42, 43] and spread["train_seed"] == 42
    mae = spread["metrics"]["test.mae"]
    assert mae["per_seed"]["42"] == trained["test"]["mae"] and mae["per_seed"]["43"] != mae["per_seed"]["42"]
    assert mae["spread"] == pytest.approx(abs(mae["per_seed"]["43"] - mae["per_seed"]["42"]))
    assert spread["nearest_model"]["model"] in {"mlp_regressor", "tabnet", "lightgbm_regressor"}
    headline = json.loads((root / "metrics/seed_spread/volume_from_geometry-wide_deep.json").read_text())
    assert headline["ranking_holds_over_seeds"] == spread["ranking_holds_over_seeds"]
    assert "## Seed spread" in (root / "reports/report.md").read_text()


def test_the_readmes_python_runs_from_another_folder_and_agrees_with_the_cli(repo, tmp_path):
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifParser

    root, env = repo
    section = (REPO_ROOT / "README.md").read_text().split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks and '"path/to/clone"' in blocks[0]
    code = "\n".join(blocks).replace('"path/to/clone"', repr(str(root)))
    code += ("\nimport json\ntable.to_csv('api.csv', index=False)\n"
             "print(json.dumps({'structure': best.structure.as_dict(), 'source': best.source, 'rank': best.rank}))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = json.loads(proc.stdout.strip().splitlines()[-1])
    rock_salt = Structure.from_spacegroup(225, Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert best["rank"] == 1 and StructureMatcher().fit(Structure.from_dict(best["structure"]), rock_salt)
    [written] = CifParser(str(tmp_path / "NaCl.cif")).parse_structures(primitive=False)
    assert written.composition.reduced_formula == "NaCl" and "# from " in (tmp_path / "NaCl.cif").read_text()
    table = pd.read_csv(tmp_path / "api.csv")
    assert table["input"].tolist() == ["NaCl", "Fe2O3", "Xx2O"] and "unknown element 'Xx'" in table.loc[2, "error"]
    # the CLI from another folder, given the project: the same figures as the API's table
    cli = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "Fe2O3", "--project", str(root),
                          "--format", "csv"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    answered = table.iloc[:2].drop(columns="error")
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(cli.stdout)), answered, check_dtype=False)  # NaN rows: floats


def test_discover_rediscovers_held_out_systems_and_proposes_compounds_of_a_system(repo, tmp_path):
    import mlflow

    root, env = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    existence = json.loads((root / "metrics/existence.json").read_text())
    assert set(existence["test"]) == {"existence_model", "charge_balance_rule", "random_order"}
    parts = pd.read_parquet(root / "data/existence/systems.parquet").set_index("system")["part"]
    summary = json.loads((root / "data/discover/summary.json").read_text())
    held = [s["system"] for s in summary["systems"]]
    assert held and all(parts[s] == "test" for s in held)  # held-out systems only: none trained the existence model
    assert summary["library_rows_dropped"] >= 0 and set(summary["arms"]) == set(params["discover"]["benchmark"]["arms"])
    per_system = pd.read_parquet(root / "data/discover/per_system.parquet")
    assert set(per_system["system"]) == set(held) and (per_system["rediscovered"] <= per_system["proposed"]).all()
    for figures in summary["arms"].values():
        assert 0 <= figures["formula_recall"] <= figures["proposed_share"] <= 1
    [picture] = summary["pictures"]
    report = (root / "reports/report.md").read_text()
    assert "## Discovery: rediscovering held-out compounds" in report and "## Which compositions exist" in report
    assert (root / "reports/figures" / f"discover_{Path(picture['path']).name}").stat().st_size > 5_000
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("discovery")
    assert experiment.tags.get("mlflow.note.content")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(params["discover"]["benchmark"]["arms"])
    ours = next(r for r in runs if r.info.run_name == params["discover"]["benchmark"]["arms"][0])
    assert {a.path for a in client.list_artifacts(ours.info.run_id, "hulls")} and ours.inputs.dataset_inputs

    # a user's system beside one with an unknown element: that one is named, the other answered
    out = tmp_path / "discovered"
    proc = subprocess.run([sys.executable, "-m", "xtalml.cli", "discover", "Na-Cl", "Ca-Xx-O", "--format", "json",
                           "--out", str(out)], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    answer = json.loads(proc.stdout)
    assert "unknown element 'Xx'" in answer["errors"]["Ca-Xx-O"]
    [nacl] = [p for p in answer["proposals"] if p["formula"] == "NaCl"]
    assert nacl["system"] == "Cl-Na" and nacl["formation_energy_per_atom"] < 0 and nacl["e_above_hull"] == 0
    assert nacl["new"] is False and nacl["known_in"] and Path(nacl["cif"]).exists()
    assert Path(answer["hull_pictures"]["Cl-Na"]).stat().st_size > 5_000


def test_the_cspbench_script_scores_formulas_without_their_own_templates_and_reranks_them(repo, tmp_path):
    root, env = repo
    csv = tmp_path / "cspbench.csv"  # CSPBench's columns; NaCl's own structures are templates of the tiny library
    pd.DataFrame({"material_id": ["mp-22862"], "pretty_formula": ["NaCl"], "spacegroup": [225],
                  "category": ["binary_easy"]}).to_csv(csv, index=False)
    out = tmp_path / "bench"
    stdout = _run([sys.executable, str(root / "benchmarks/cspbench.py"), "--csv", str(csv), "--candidates", "2",
                   "--out", str(out), "--search", "short_steps=2", "--search", "steps=10"], root, env)
    assert "candidates_top5" in stdout and '"known_candidates": 0' in stdout
    per_formula = pd.read_csv(out / "per_formula.csv")
    assert per_formula["formula"].tolist() == ["NaCl"] and not per_formula["known_used"].any()
    assert set(per_formula["lost"].fillna("")) <= {"", "not tried", "left while relaxing", "ranked below 5"}
    candidates = pd.read_csv(out / "candidates.csv")
    assert set(candidates["formula"]) == {"NaCl"} and not candidates["known"].any()  # no template of NaCl itself
    assert {"p_group", "p_relaxed_group", "score", "energy_per_atom", "predicted_volume_per_atom",
            "relaxation"} <= set(candidates.columns)
    reranked = _run([sys.executable, str(root / "benchmarks/rank_weights.py"), str(out / "candidates.csv")],
                    root, env)
    assert "group_weight" in reranked and "the defaults (score_weight 0.1, group_weight " in reranked
