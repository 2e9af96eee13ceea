"""End to end: `dvc repro split` on a shrunken composed config, in a fresh copy of the repository."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from xtalml.config import REPO_ROOT, compose

from xtalml.models.registry import REGISTRY

CLASSICAL = tuple(name for name, spec in REGISTRY.items() if spec.cross_validates)
EPOCHS = tuple(name for name, spec in REGISTRY.items() if spec.torch)
# The real config, shrunk: few rows, one or two epochs or a few boosting rounds, two folds.
TINY = ["data.limit=300", "composition_sources.cod_index.limit=3000", "composition_sources.oqmd_volume.limit=1500",
        "parse.timeout_s=20",
        *[f"models.{m}.cv_folds=2" for m in CLASSICAL], "models.random_forest.n_estimators=5",
        "models.adaboost.n_estimators=3", "models.logistic_regression.max_iter=50", "models.svm.max_train_rows=500",
        *[f"models.{m}.max_epochs=2" for m in EPOCHS], "models.tabnet.batch_size=128", "models.tabnet.virtual_batch_size=64",
        "models.lightgbm.n_estimators=5", "models.lightgbm_regressor.n_estimators=10",
        "tasks.sg_from_composition.model_overrides.lightgbm.n_estimators=5",
        "tasks.volume_per_atom_from_composition.model_overrides.lightgbm_regressor.n_estimators=10",
        *[f"tasks.{t}.min_class_count=2" for t in ("sg_from_geometry", "bravais_from_composition", "sg_from_composition")],
        *[f"++tasks.volume_per_atom_from_composition.model_overrides.{m}.max_epochs=2" for m in ("mlp_regressor", "tabnet")]]


def _run(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git clone-like copy of the working tree (tracked and untracked-but-not-ignored files)."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    root = tmp_path_factory.mktemp("clone") / "repo"
    for name in files:
        if (REPO_ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, root / name)
    (root / "dvc.lock").unlink(missing_ok=True)
    for metric in (root / "metrics").glob("*.json"):
        metric.unlink()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    params = compose(TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "copy"], root, env)
    return root, env


def test_dvc_repro_split_end_to_end(repo):
    root, env = repo
    out = _run([sys.executable, "-m", "dvc", "repro", "split"], root, env)
    assert "Running stage 'split'" in out
    structures = pd.read_parquet(root / "data/interim/structures.parquet")
    features = pd.read_parquet(root / "data/processed/features.parquet")
    split = pd.read_parquet(root / "data/processed/split.parquet")
    schema = json.loads((root / "data/processed/feature_schema.json").read_text())
    assert len(pd.read_csv(root / "data/raw/manifest.csv")) == 300
    assert len(structures) >= 297
    assert len(features) == len(split) and set(split["part"]) == {"train", "val", "test"}
    parts = features.merge(split, on="id").groupby("reduced_formula")["part"].nunique()
    assert (parts == 1).all()
    assert len(schema["features"]["composition"]) == 149 and len(schema["features"]["geometry"]) == 16
    assert json.loads((root / "metrics/split.json").read_text())["formulas_in_two_parts"] == 0
    # one assignment per formula in every table: the AMCSD rows of the composition table sit where the primary has them
    tables = ("processed", "composition/cod_index", "composition/oqmd_volume")
    rows = pd.concat([pd.read_parquet(root / f"data/{t}/features.parquet", columns=["id", "source", "reduced_formula"]).merge(
        pd.read_parquet(root / f"data/{t}/split.parquet"), on="id").assign(table=t) for t in tables])
    ours = rows[(rows["source"] != "oqmd_volume") & (rows["part"] != "excluded")]  # OQMD keeps its published split
    assert (ours.groupby("reduced_formula")["part"].nunique() == 1).all()
    assert (rows["source"] == "amcsd").sum() == 3 * len(features)  # AMCSD rows are in every table
    oqmd = rows[rows["source"] == "oqmd_volume"]
    assert len(oqmd) == 4500 and set(oqmd["part"]) <= {"train", "val", "test", "excluded"}
    assert (oqmd["id"].str.split("-").str[1] == oqmd["part"]).sum() == (oqmd["part"] != "excluded").sum()
    used = rows[rows["part"] != "excluded"]  # within a table no formula is in two parts, OQMD included
    assert (used.groupby(["table", "reduced_formula"])["part"].nunique() == 1).all()

    again = _run([sys.executable, "-m", "dvc", "repro", "split"], root, env)
    assert "Running stage" not in again
    assert "up to date" in _run([sys.executable, "-m", "dvc", "status", "split"], root, env)


def test_changing_one_stage_param_reruns_only_downstream(repo):
    root, env = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["split"]["seed"] = 7
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run([sys.executable, "-m", "dvc", "repro", "split"], root, env)
    assert "Running stage 'split'" in out
    assert not any(f"Running stage '{s}'" in out for s in ("download", "parse", "featurize"))


def test_dvc_exp_run_composes_hydra_overrides(repo):
    root, env = repo
    out = _run([sys.executable, "-m", "dvc", "exp", "run", *[a for o in TINY for a in ("-S", o)],
                "-S", "split.seed=11", "split"], root, env)
    assert yaml.safe_load((root / "params.yaml").read_text())["split"]["seed"] == 11  # composed from conf/ by DVC
    assert "Running stage 'split'" in out and "Running stage 'download'" not in out


def test_dvc_repro_trains_every_model_and_logs_to_mlflow(repo):
    root, env = repo
    _run([sys.executable, "-m", "dvc", "repro"], root, env)
    assert "Running stage" not in _run([sys.executable, "-m", "dvc", "repro"], root, env)  # second run: nothing to do
    runs = yaml.safe_load((root / "params.yaml").read_text())["train"]["runs"]
    assert len(runs) == 32
    for run in runs.values():
        name = f"{run['task']}/{run['model']}"
        metrics = json.loads((root / "metrics" / f"{name}.json").read_text())
        predictions = pd.read_parquet(root / "data/predictions" / f"{name}.parquet")
        assert len(predictions) == metrics["test"]["n"] == metrics["data"]["rows_test"] > 0
        assert metrics["baselines"], name  # every model has its baselines on the same split
        assert (root / "models" / f"{name}.pkl").exists()
        plots = {p.name for p in (root / "plots" / name).iterdir()}
        assert plots & {"confusion.csv", "parity.csv"}, name
        spec = REGISTRY[run["model"]]
        assert ("loss.csv" in plots) == spec.loss_history, name
        assert ("feature_importance.csv" in plots) == spec.feature_importance, name
        assert ("cv" in metrics) == spec.cross_validates and metrics.get("cv", {"folds": 2})["folds"] == 2, name
    volume = json.loads((root / "metrics/volume_from_geometry/mlp_regressor.json").read_text())
    assert volume["baselines"]["analytic_volume"]["mape"] < 1  # the cell formula is exact up to rounding
    assert "feature_importance.csv" in {p.name for p in (root / "plots/volume_from_geometry/tabnet").iterdir()}

    shown = json.loads(subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=root, env=env,
                                      capture_output=True, text=True, check=True).stdout)["data"]
    written = {str(p.relative_to(root)) for p in (root / "plots").rglob("*.csv") if p.name != "parity.csv"}
    assert written <= set(shown)  # every plot file is drawn, parity files in one chart per regression task
    for path, renders in shown.items():
        spec = json.dumps(renders[0]["content"])
        assert ('"rect"' in spec) == path.endswith("confusion.csv"), path  # confusion matrices as heat maps
    assert {"volume_from_geometry predicted vs true", "volume_per_atom_from_composition predicted vs true"} <= set(shown)

    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    assert {r["task"] for r in runs.values()} <= experiments.keys()
    logged = client.search_runs([experiments[t] for t in {r["task"] for r in runs.values()}], max_results=1000)
    assert len(logged) == len(runs)  # one MLflow run per trained model
    for run in logged:
        assert run.data.tags["git_commit"] and any(k.startswith("data.") for k in run.data.tags)
        assert any(k.startswith("test.") for k in run.data.metrics) and any(k.startswith("baseline.") for k in run.data.metrics)
        assert "model.kind" in run.data.params
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
    runs = yaml.safe_load((root / "params.yaml").read_text())["train"]["runs"]
    assert set(register["tasks"]) == {r["task"] for r in runs.values()}
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    mlflow.set_tracking_uri(uri)
    for task, chosen in register["tasks"].items():
        scores = chosen["validation"]
        best = (max if chosen["metric"] == "accuracy" else min)(scores.values())
        assert scores[chosen["champion"]] == best and set(scores) == {r["model"] for r in runs.values() if r["task"] == task}
        version = client.get_model_version_by_alias(f"xtalml-{task}", "champion")
        assert version.tags["model"] == chosen["champion"]
        model = mlflow.pyfunc.load_model(f"models:/xtalml-{task}@champion")
        assert model.metadata.signature is not None and model.metadata.get_input_schema() is not None
        assert client.get_experiment_by_name(task).tags["mlflow.experimentKind"] == "custom_model_development"
    predictor = mlflow.pyfunc.load_model("models:/xtalml-predictor@champion")
    out = predictor.predict(pd.DataFrame({"formula": ["Fe2O3", "Qq"]}))
    assert pd.isna(out.loc[0, "error"]) and out.loc[0, "volume_per_atom"] > 0 and "Qq" in out.loc[1, "error"]


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
                    "## Calibrated prediction sets", "## Split by formula and by chemical system"):
        assert heading in text
    modes = json.loads((root / "metrics" / "split_modes.json").read_text())
    for task, result in modes["tasks"].items():  # each row: the main split's number from the task's metrics file
        metric = "accuracy" if "accuracy" in result["test"] else "mae"
        main = json.loads((root / "metrics" / task / f"{result['model']}.json").read_text())["test"][metric]
        assert f"| {task} | {result['model']} | " in text and fmt(result["test"][metric]) in text and fmt(main) in text
    volume = json.loads((root / "metrics/volume_per_atom_from_composition/mlp_regressor.json").read_text())
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
    runs = yaml.safe_load((root / "params.yaml").read_text())["train"]["runs"]
    assert set(tables) >= {r["task"] for r in runs.values()}
    for run in runs.values():
        metrics = json.loads((root / "metrics" / run["task"] / f"{run['model']}.json").read_text())
        row = tables[run["task"]].set_index("model").loc[run["model"]]
        key, column = ("accuracy", "accuracy") if "accuracy" in metrics["test"] else ("mae", "MAE")
        assert row[column] == fmt(metrics["test"][key]), (run, row[column])
        for name, baseline in metrics["baselines"].items():
            assert tables[run["task"]].set_index("model").loc[f"baseline: {name.replace('_', ' ')}", column] == fmt(baseline[key])
    derived = json.loads((root / "reports" / "metrics.json").read_text())
    for task, groups in derived["accuracy_by_group"].items():
        for group, accuracy in groups["accuracy"].items():
            assert f"| {group} | {fmt(groups['rows'][group])} | {fmt(accuracy)} |" in text, (task, group)
    conformal = json.loads((root / "metrics" / "conformal.json").read_text())
    assert fmt(conformal["sets"]["0.9"]["coverage"]) in text
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
    other = subprocess.run(cmd + ["--sg-from-composition", "knn"], cwd=root, env=env, capture_output=True, text=True)
    assert other.returncode == 2 and "calibration is for random_forest" in other.stderr

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sg_from_composition").experiment_id
    run = client.search_runs([experiment], "attributes.run_name = 'knn'", max_results=1)[0]
    proc = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "--format", "json", "--mlflow-run",
                           run.info.run_id], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["predictions"][0]["space_group_top5"]
    bad = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "--mlflow-run", "0" * 32], cwd=root,
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "not found" in bad.stderr


def test_exp_run_on_one_model_param_reruns_only_that_model(repo):
    root, env = repo
    out = _run([sys.executable, "-m", "dvc", "exp", "run", *[a for o in TINY for a in ("-S", o)],
                "-S", "split.seed=11", "-S", "models.knn.n_neighbors=3"], root, env)
    reran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert reran == {"train@sg_from_geometry--knn", "train@bravais_from_composition--knn", "train@sg_from_composition--knn",
                     "register", "report"}  # new model files: the champions are chosen again; the report reads every metrics file
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    knn_runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                  filter_string="attributes.run_name = 'knn'", max_results=100)
    assert sorted(r.data.params["model.n_neighbors"] for r in knn_runs).count("3") == 3


def test_training_twice_gives_the_same_metrics(repo, tmp_path, monkeypatch):
    """sklearn models exactly, torch models within 1e-6, on the tables the tiny pipeline wrote."""
    from xtalml.training import run_training
    from xtalml.tracking import numeric_metrics

    root, _ = repo
    monkeypatch.chdir(tmp_path)  # MLflow's artifact folder (./mlruns) lands in the tmp dir
    params = yaml.safe_load((root / "params.yaml").read_text())
    pairs = [("sg_from_composition", "random_forest"), ("sg_from_geometry", "knn"), ("sg_from_composition", "two_stage"),
             ("bravais_from_composition", "lightgbm"), ("volume_per_atom_from_composition", "lightgbm_regressor"),
             ("volume_from_geometry", "wide_deep"), ("volume_per_atom_from_composition", "tabnet")]
    for task, model in pairs:
        results = []
        for attempt in range(2):
            out = {k: tmp_path / f"{attempt}" / task / model / name for k, name in (
                ("metrics", "m.json"), ("predictions", "p.parquet"), ("model", "m.pkl"), ("plots", "plots"))}
            result = run_training(task, params["tasks"][task], model, params["models"][model], 42, out, root,
                                  tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
            results.append(numeric_metrics(result["test"]))
        tolerance = 0 if model in CLASSICAL else 1e-6
        for key, value in results[0].items():
            assert abs(value - results[1][key]) <= tolerance, (task, model, key)


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
    assert answered[str(cif)]["cell_volume"] > 0
    assert "unknown element 'Xx'" in result["errors"]["Xx2O"]
    assert result["errors"][str(tmp_path / "missing.cif")] == "CIF file not found"

    table = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "--format", "csv"], cwd=root,
                           env=env, capture_output=True, text=True)
    assert table.returncode == 0 and table.stdout.startswith("input,formula,bravais_1")
    missing = subprocess.run([sys.executable, "-m", "xtalml.cli", "predict", "NaCl", "--models", str(tmp_path)],
                             cwd=root, env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "is missing: run `dvc repro train@" in missing.stderr


def test_a_queued_sweep_with_two_workers_lands_in_the_project_store(repo):
    from mlflow.tracking import MlflowClient

    root, env = repo
    for k in (4, 6):
        _run([sys.executable, "-m", "dvc", "exp", "run", "--queue", "-n", f"knn-{k}", *[a for o in TINY for a in ("-S", o)],
              "-S", "split.seed=11", "-S", f"models.knn.n_neighbors={k}"], root, env)
    _run([sys.executable, "-m", "dvc", "exp", "run", "--run-all", "-j", "2"], root, env)
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="attributes.run_name = 'knn'", max_results=1000)
    swept = {}
    for run in runs:
        if run.data.tags.get("dvc.exp_name", "").startswith("knn-"):
            swept.setdefault(run.data.tags["dvc.exp_name"], []).append(run)
    assert set(swept) == {"knn-4", "knn-6"}  # both workers' runs reached the project's store, none lost
    for name, found in swept.items():
        assert len(found) == 3 and all(f"models.knn.n_neighbors={name[4:]}" in r.data.tags["dvc.overrides"] for r in found)
        assert all(r.data.params["model.n_neighbors"] == name[4:] for r in found)
        assert all(r.data.tags.get("model_uri") and r.inputs.dataset_inputs for r in found)
    shown = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=root, env=env, capture_output=True,
                           text=True, check=True).stdout
    assert "knn-4" in shown and "knn-6" in shown
