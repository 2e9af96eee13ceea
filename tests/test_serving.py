"""Model Registry: champions chosen on validation rows, the alias moves only to a new model; the predictor pyfunc."""

import joblib
import mlflow
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.linear_model import Ridge

from conftest import CHOICE
from xtalml.models.registry import pip_requirements
from xtalml.predict import load_predictor
from xtalml.serving import (ANSWER_COLUMNS, CHAMPION_ALIAS, PREDICTOR_NAME, answer_rows, model_requirements,
                            register_champion, register_predictor)


def _register_predictor(models_dir, params, store):
    """The register stage's call: the chosen models' files, models/predictor, the conformal folder."""
    chosen = {task: (model, models_dir / task / f"{model}.pkl") for task, model in CHOICE.items()}
    return register_predictor(chosen, models_dir / "predictor", models_dir / "conformal", params, store)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # experiments put their artifacts under ./mlruns
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _ridge(path, alpha):
    X = np.random.default_rng(0).normal(size=(40, 3))
    joblib.dump({"model": Ridge(alpha=alpha).fit(X, X @ [1.0, 2.0, 3.0]), "feature_names": ["x", "y", "z"]}, path)
    return pd.DataFrame(X[:5], columns=["x", "y", "z"])


def test_the_alias_moves_to_a_new_champion_and_old_versions_stay(store, tmp_path):
    example = _ridge(tmp_path / "first.pkl", 1.0)
    # registered under a registry name (knn), whose requirements it is given; the estimator itself is a toy Ridge
    needs = pip_requirements("knn", {})
    first = register_champion("toy", "knn", tmp_path / "first.pkl", example, 0.5, "mae", needs, store)
    again = register_champion("toy", "knn", tmp_path / "first.pkl", example, 0.5, "mae", needs, store)
    assert first["new_version"] and not again["new_version"] and again["version"] == first["version"]
    _ridge(tmp_path / "second.pkl", 10.0)
    second = register_champion("toy", "knn", tmp_path / "second.pkl", example, 0.4, "mae", needs, store)
    client = mlflow.MlflowClient(store)
    assert second["version"] == first["version"] + 1
    assert int(client.get_model_version_by_alias("xtalml-toy", CHAMPION_ALIAS).version) == second["version"]
    assert len(client.search_model_versions("name='xtalml-toy'")) == 2
    loaded = mlflow.pyfunc.load_model("models:/xtalml-toy@champion")
    assert loaded.metadata.signature is not None and len(loaded.predict(example)) == 5
    # no training run logged these models: register logged them with the requirements it was given
    assert set(model_requirements("models:/xtalml-toy@champion")) == set(pip_requirements("knn", {}))
    assert f"scikit-learn=={sklearn.__version__}" in pip_requirements("knn", {})


def test_answer_rows_keep_input_order_and_give_each_bad_row_its_reason(models_dir, cod_cif_dir):
    predictor = load_predictor(models_dir, CHOICE)
    cif = next(iter(sorted(cod_cif_dir.glob("*.cif")))).read_text()
    frame = pd.DataFrame({"formula": ["Fe2O3", "Qq2", "", "NaCl", None],
                          "cif": [None, None, None, None, cif]})
    rows = answer_rows(predictor, frame)
    assert list(rows.columns) == ANSWER_COLUMNS and len(rows) == 5
    assert rows["error"].isna().tolist() == [True, False, False, True, True]
    assert "Qq" in rows.loc[1, "error"] and "no formula" in rows.loc[2, "error"]
    assert rows.loc[0, "formula"] == "Fe2O3" and rows.loc[0, "sg_1"] and rows.loc[0, "volume_per_atom"] > 0
    assert rows.loc[4, "cell_volume"] > 0 and rows.loc[4, "input"] == "row 4"
    broken = answer_rows(predictor, pd.DataFrame({"cif": ["data_x\n_cell_length_a oops\n"]}))
    assert broken.loc[0, "error"] and "row 0" in broken.loc[0, "input"]


def test_predictor_pyfunc_registers_and_answers_like_predict(store, models_dir, tmp_path):
    (tmp_path / "params.yaml").write_text("featurize: {element_tables: {}}\n")
    info = _register_predictor(models_dir, tmp_path / "params.yaml", store)
    assert info["new_version"] and not _register_predictor(models_dir, tmp_path / "params.yaml", store)["new_version"]
    model = mlflow.pyfunc.load_model(f"models:/{PREDICTOR_NAME}@{CHAMPION_ALIAS}")
    out = model.predict(pd.DataFrame({"formula": ["SiO2", "Zz"]}))
    assert out.loc[0, "formula"] == "SiO2" and pd.isna(out.loc[0, "error"]) and "Zz" in out.loc[1, "error"]


def test_predict_command_answers_with_a_registered_predictor(store, models_dir, tmp_path, capsys):
    import json

    from xtalml.cli import main

    (tmp_path / "params.yaml").write_text("featurize: {element_tables: {}}\n")
    _register_predictor(models_dir, tmp_path / "params.yaml", store)
    code = main(["predict", "NaCl", "Qq2", "--model-uri", f"models:/{PREDICTOR_NAME}@champion", "--tracking-uri", store,
                 "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and [a["formula"] for a in out["predictions"]] == ["NaCl"] and "Qq2" in out["errors"]
    assert main(["predict", "NaCl", "--model-uri", "models:/nope@champion", "--tracking-uri", store]) == 2
    from xtalml.api import load  # the same from Python: the registered predictor's models, no project folder needed

    project = load(model_uri=f"models:/{PREDICTOR_NAME}@champion", tracking_uri=store)
    table = project.predict(["NaCl", "Qq2"])
    assert table["input"].tolist() == ["NaCl", "Qq2"] and table.loc[0, "space_group"] and "Qq" in table.loc[1, "error"]
    top = out["predictions"][0]["space_group_top5"][0]  # what the CLI printed for NaCl
    assert table.loc[0, "sg_1"] == f"{top['number']} {top['symbol']}" and table.loc[0, "p_sg_1"] == top["p"]
    with pytest.raises(FileNotFoundError, match="generate needs a project folder"):
        project.generate("NaCl")


def test_mlflow_models_serve_answers_formulas_and_stays_up(store, models_dir, tmp_path, cod_cif_dir):
    import json
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    (tmp_path / "params.yaml").write_text("featurize: {element_tables: {}}\n")
    _register_predictor(models_dir, tmp_path / "params.yaml", store)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": store,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{PREDICTOR_NAME}@champion",
                               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"

    def post(records):
        body = json.dumps({"dataframe_records": records}).encode()
        request = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return pd.DataFrame(json.loads(answer.read())["predictions"])

    try:
        deadline = time.time() + 120
        while True:
            assert server.poll() is None, server.stderr.read()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2):
                    break
            except OSError:
                assert time.time() < deadline, "mlflow models serve did not answer /ping within 120 s"
                time.sleep(1)
        first = post([{"formula": "Fe2O3"}, {"formula": "Xx9"}, {"formula": "NaCl"}])
        assert first["formula"].tolist() == ["Fe2O3", "Xx9", "NaCl"]
        assert first["error"].isna().tolist() == [True, False, True] and "Xx" in first.loc[1, "error"]
        cif = next(iter(sorted(cod_cif_dir.glob("*.cif")))).read_text()
        second = post([{"cif": cif}, {"cif": "not a cif"}])  # the server is still up after a bad row
        assert second.loc[0, "cell_volume"] > 0 and isinstance(second.loc[1, "error"], str)
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)
