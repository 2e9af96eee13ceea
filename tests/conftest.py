"""Shared fixtures: the real shared data, the pinned data wheels (downloaded once, cached), composed config."""

from __future__ import annotations

import sys
from pathlib import Path

import xtalml  # noqa: F401  (first: it pins the CPU kernels torch reads when it loads)
import joblib
import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge

from xtalml.cif.parse import parse_cif
from xtalml.config import REPO_ROOT, source_config
from xtalml.features.composition import composition_features, feature_names
from xtalml.sources.wheels import extract_member, fetch_wheel

torch.set_num_threads(1)  # as the train stage does: small networks run fastest on one thread

SHARED = REPO_ROOT.parent / "shared" / "data"
COD_CIFS = SHARED / "cod-cifs"
EDGE_CASES = SHARED / "cif-edge-cases"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: tests read the project's shared data from ../shared/data")
    return path


@pytest.fixture(scope="session")
def cod_cif_dir() -> Path:
    return _require(COD_CIFS)


@pytest.fixture(scope="session")
def edge_case_dir() -> Path:
    return _require(EDGE_CASES)


@pytest.fixture(scope="session")
def amcsd_db(tmp_path_factory) -> Path:
    cfg = source_config("amcsd")
    wheel = fetch_wheel(cfg["wheel"], cfg["sha256"])
    return extract_member(wheel, cfg["member"], tmp_path_factory.mktemp("amcsd") / "amcsd.db")


@pytest.fixture(scope="session")
def cod_index_file(tmp_path_factory) -> Path:
    cfg = source_config("cod_index")
    wheel = fetch_wheel(cfg["wheel"], cfg["sha256"])
    return extract_member(wheel, cfg["member"], tmp_path_factory.mktemp("codidx") / "cod_index.json.gz")


@pytest.fixture(scope="session")
def real_formulas(amcsd_db, cod_index_file) -> list[str]:
    """Every formula of the two offline sources (about 71k)."""
    import sqlite3

    from xtalml.sources.cod_index import read_cod_index

    con = sqlite3.connect(amcsd_db)
    formulas = [r[0] for r in con.execute("SELECT formula FROM cif")]
    con.close()
    return formulas + read_cod_index(cod_index_file)["formula"].tolist()


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


TASK_FILES = {"bravais_from_composition": ("random_forest", "bravais_lattice"),
              "sg_from_composition": ("random_forest", "sg_number"),
              "volume_per_atom_from_composition": ("ridge", "volume_per_atom")}
CHOICE = {task: model for task, (model, _) in TASK_FILES.items()}
# every task named: without a flag, predict answers with the champion of metrics/register.json, not in these folders
MODEL_FLAGS = [arg for task, (model, _) in TASK_FILES.items() for arg in (f"--{task.replace('_', '-')}", model)]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, cod_cif_dir):
    """Small real models (random forests, ridge) fitted on the shared COD CIFs, saved as the train stage saves them."""
    rows = [row for path in sorted(cod_cif_dir.glob("*.cif")) for row in parse_cif(path)[0] if not row["formula_error"]]
    X, errors = composition_features([r["formula"] for r in rows])
    keep = [i for i in range(len(rows)) if i not in errors]
    X, rows = X.iloc[keep].to_numpy(float), [rows[i] for i in keep]
    folder = tmp_path_factory.mktemp("models")
    for task, (name, target) in TASK_FILES.items():
        if target == "volume_per_atom":
            y = np.array([r["volume_cell"] / r["atoms_in_cell_sites"] for r in rows])
            ok = np.isfinite(y)
            model = Ridge().fit(X[ok], y[ok])
        else:
            model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, [str(r[target]) for r in rows])
        (folder / task).mkdir()
        joblib.dump({"model": model, "feature_names": feature_names(), "task": task, "target": target},
                    folder / task / f"{name}.pkl")
    return folder
