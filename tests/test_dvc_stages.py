"""Stage by stage on the tiny config: split end to end, a param re-runs only downstream, Hydra composition, queued sweeps."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from tiny_pipeline import CLASSICAL, TINY, params_restored, tiny_repo
from tiny_pipeline import run as _run

from xtalml.features.composition import element_token_names, feature_names


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The tiny pipeline up to the split, and what `dvc repro split` printed; a test that changes params puts them back."""
    root, env = tiny_repo(tmp_path_factory)
    return root, env, _run([sys.executable, "-m", "dvc", "repro", "split"], root, env)


def test_dvc_repro_split_end_to_end(repo):
    from xtalml.tasks import DataDirs, read_table

    root, env, out = repo
    for stage in ("download", "parse", "featurize"):  # one chain per source
        assert all(f"Running stage '{stage}@{key}'" in out for key in ("primary", "cod_index", "oqmd_volume"))
    assert "Running stage 'split'" in out
    structures = pd.read_parquet(root / "data/sources/primary/structures.parquet")
    features = pd.read_parquet(root / "data/features/primary/features.parquet")
    split = pd.read_parquet(root / "data/split/primary.parquet")
    schema = json.loads((root / "data/features/primary/feature_schema.json").read_text())
    assert len(pd.read_csv(root / "data/sources/primary/raw/manifest.csv")) == 300
    assert len(structures) >= 297
    assert len(features) == len(split) and set(split["part"]) == {"train", "val", "test"}
    parts = features.merge(split, on="id").groupby("reduced_formula")["part"].nunique()
    assert (parts == 1).all()
    assert len(schema["features"]["composition"]) == 149 and len(schema["features"]["geometry"]) == 16
    index_schema = json.loads((root / "data/features/cod_index/feature_schema.json").read_text())
    assert index_schema["features"] == {"geometry": [], "composition": schema["features"]["composition"],  # no cells
                                        "formula_amounts": feature_names(["formula_amounts"]),
                                        "element_tokens": element_token_names()}
    assert features[element_token_names()].notna().all(axis=None)  # AMCSD formulas have at most 9 elements
    assert json.loads((root / "metrics/split.json").read_text())["groups_in_two_parts_without_published_split"] == 0
    # one assignment per formula in every source: a formula's AMCSD rows sit where its COD-index rows are
    rows = pd.concat([pd.read_parquet(root / f"data/features/{k}/features.parquet", columns=["id", "source", "reduced_formula"]).merge(
        pd.read_parquet(root / f"data/split/{k}.parquet"), on="id") for k in ("primary", "cod_index", "oqmd_volume")])
    ours = rows[rows["source"] != "oqmd_volume"]  # OQMD keeps its published split
    assert (ours.groupby("reduced_formula")["part"].nunique() == 1).all()
    assert ours["reduced_formula"].duplicated().any()  # formulas in both sources, or the check above says nothing
    oqmd = rows[rows["source"] == "oqmd_volume"]
    assert len(oqmd) == 4500 and (oqmd["id"].str.split("-").str[1] == oqmd["part"]).all()
    # a task's table stacks its sources; a group held out by one of them never trains there, OQMD included
    table = read_table(["oqmd_volume", "primary"], ["id", "source", "reduced_formula"], DataDirs.under(root))
    assert len(table) == len(oqmd) + len(features) and set(table["part"]) <= {"train", "val", "test", "excluded"}
    used = table[table["part"] != "excluded"]
    assert (used.groupby("reduced_formula")["part"].nunique() == 1).all()

    again = _run([sys.executable, "-m", "dvc", "repro", "split"], root, env)
    assert "Running stage" not in again
    assert "up to date" in _run([sys.executable, "-m", "dvc", "status", "split"], root, env)


def test_changing_one_stage_param_reruns_only_downstream(repo):
    root, env, _ = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["split"]["seed"] = 7
    with params_restored(root, env, "split"):
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        out = _run([sys.executable, "-m", "dvc", "repro", "split"], root, env)
    assert "Running stage 'split'" in out
    assert not any(f"Running stage '{s}@" in out for s in ("download", "parse", "featurize"))
    assert yaml.safe_load((root / "params.yaml").read_text())["split"]["seed"] == 42  # left as found


def test_dvc_exp_run_composes_hydra_overrides(repo):
    root, env, _ = repo
    with params_restored(root, env, "split"):
        out = _run([sys.executable, "-m", "dvc", "exp", "run", *[a for o in TINY for a in ("-S", o)],
                    "-S", "split.seed=11", "split"], root, env)
        assert yaml.safe_load((root / "params.yaml").read_text())["split"]["seed"] == 11  # composed from conf/ by DVC
    assert "Running stage 'split'" in out and "Running stage 'download@" not in out


def test_training_twice_gives_the_same_metrics(repo, tmp_path, monkeypatch, request):
    """sklearn models exactly, torch models within 1e-6, on the tables the tiny split wrote."""
    from xtalml.training import run_training
    from xtalml.tracking import numeric_metrics

    from xtalml.tasks import DataDirs

    root, _, _ = repo
    monkeypatch.chdir(tmp_path)  # MLflow's artifact folder (./mlruns) lands in the tmp dir
    params = yaml.safe_load((root / "params.yaml").read_text())
    import torch

    request.addfinalizer(lambda threads=torch.get_num_threads(): torch.set_num_threads(threads))
    torch.set_num_threads(int(params["train"]["torch_threads"]))  # as the train stage sets them
    pairs = [("sg_from_composition", "random_forest"), ("sg_from_geometry", "knn"), ("sg_from_composition", "two_stage"),
             ("bravais_from_composition", "lightgbm"), ("volume_per_atom_from_composition", "lightgbm_regressor"),
             ("volume_from_geometry", "wide_deep"), ("volume_per_atom_from_composition", "tabnet"),
             ("volume_per_atom_from_composition", "composition_attention")]
    for task, model in pairs:
        results = []
        for attempt in range(2):
            out = {k: tmp_path / f"{attempt}" / task / model / name for k, name in (
                ("metrics", "m.json"), ("evaluation", "e.json"), ("predictions", "p.parquet"), ("model", "m.pkl"), ("plots", "plots"))}
            result = run_training(task, params["tasks"][task], model, params["models"][model], 42, out, DataDirs.under(root),
                                  tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
            results.append(numeric_metrics(result["test"]))
        tolerance = 0 if model in CLASSICAL else 1e-6
        for key, value in results[0].items():
            assert abs(value - results[1][key]) <= tolerance, (task, model, key)


def test_a_queued_sweep_with_two_workers_lands_in_the_project_store(repo):
    from mlflow.tracking import MlflowClient

    root, env, _ = repo
    stage = "train_classifier@bravais_from_composition-knn"
    # queued experiments start from a commit and compose params.yaml afresh from -S: commit the knn stage and its lock
    _run([sys.executable, "-m", "dvc", "repro", stage], root, env)
    seed = yaml.safe_load((root / "params.yaml").read_text())["split"]["seed"]
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "tiny pipeline run"], root, env)
    for k in (4, 6):  # one stage per experiment keeps the test short; a queued run writes like any other
        _run([sys.executable, "-m", "dvc", "exp", "run", "--queue", "-n", f"knn-{k}", *[a for o in TINY for a in ("-S", o)],
              "-S", f"split.seed={seed}", "-S", f"models.knn.n_neighbors={k}", stage], root, env)
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
        assert len(found) == 1 and all(f"models.knn.n_neighbors={name[4:]}" in r.data.tags["dvc.overrides"] for r in found)
        assert all(r.data.params["model.n_neighbors"] == name[4:] for r in found)
        assert all(r.data.tags.get("model_uri") and r.inputs.dataset_inputs for r in found)
    shown = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=root, env=env, capture_output=True,
                           text=True, check=True).stdout
    assert "knn-4" in shown and "knn-6" in shown
