"""Shared fixtures: the real shared data, the pinned data wheels (downloaded once, cached), composed config."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from xtalml.config import REPO_ROOT, compose
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
    cfg = compose(["data=amcsd"])["data"]
    wheel = fetch_wheel(cfg["wheel"], cfg["sha256"])
    return extract_member(wheel, cfg["member"], tmp_path_factory.mktemp("amcsd") / "amcsd.db")


@pytest.fixture(scope="session")
def cod_index_file(tmp_path_factory) -> Path:
    cfg = compose(["data=cod_index"])["data"]
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
