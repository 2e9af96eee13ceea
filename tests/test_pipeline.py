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
    params = compose(["data.limit=300", "parse.timeout_s=20"])
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
    assert json.loads((root / "metrics/split.json").read_text())["overlapping_formulas"] == 0

    again = _run([sys.executable, "-m", "dvc", "repro"], root, env)
    assert "Running stage" not in again
    assert "up to date" in _run([sys.executable, "-m", "dvc", "status"], root, env)


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
    out = _run([sys.executable, "-m", "dvc", "exp", "run", "-S", "data.limit=300", "-S", "parse.timeout_s=20",
                "-S", "split.seed=11", "split"], root, env)
    assert yaml.safe_load((root / "params.yaml").read_text())["split"]["seed"] == 11  # composed from conf/ by DVC
    assert "Running stage 'split'" in out and "Running stage 'download'" not in out
