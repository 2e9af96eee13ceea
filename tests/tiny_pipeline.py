"""The tiny pipeline the end-to-end tests run: the real composed config, shrunk, in a git copy of the working tree."""

import os
import shutil
from contextlib import contextmanager
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import yaml

from xtalml.config import REPO_ROOT, compose
from xtalml.models.registry import REGISTRY

CLASSICAL = tuple(name for name, spec in REGISTRY.items() if spec.cross_validates)
# Every kind of training path once or more in 17 train stages (each costs ~10 s of imports and MLflow logging whatever
# its size): three classifiers on both composition symmetry tasks (logistic_regression, decision_tree, adaboost and svm
# take random forest's and KNN's path, a scikit-learn pipeline with cross-validation; the LightGBM classifier takes the
# LightGBM regressor's, early-stopped on validation rows; test_models fits them all), two_stage on both space-group
# tasks, every regressor on both volume tasks.
_FULL = compose()["train"]["matrix"]
TINY_MATRIX = {"classifier": {"task": ["bravais_from_composition", "sg_from_composition"],
                              "model": ["random_forest", "knn", "mlp_classifier"]},
               "regressor": _FULL["regressor"], "two_stage": {"task": ["sg_from_composition", "sg_from_geometry"],
                                                              "model": ["two_stage"]},
               "attention": _FULL["attention"]}
EPOCHS = tuple(name for name, spec in REGISTRY.items() if spec.torch)
# The real config, shrunk: few rows, one or two epochs or a few boosting rounds, two folds.
TINY = ["sources.primary.limit=300", "sources.cod_index.limit=3000", "sources.oqmd_volume.limit=1500",
        "parse.timeout_s=20",
        *[f"models.{m}.cv_folds=2" for m in CLASSICAL], "models.random_forest.n_estimators=5",
        # one process: starting workers costs more than these fits (test_models checks that processes change nothing)
        "models.adaboost.cv_jobs=1", "models.random_forest.cv_jobs=1", "models.logistic_regression.cv_jobs=1",
        "models.decision_tree.cv_jobs=1", "models.two_stage.n_jobs=1",
        "models.adaboost.n_estimators=3", "models.logistic_regression.max_iter=50", "models.svm.max_train_rows=500",
        *[f"models.{m}.max_epochs=2" for m in EPOCHS], "models.tabnet.batch_size=128", "models.tabnet.virtual_batch_size=64",
        "models.lightgbm.n_estimators=5", "models.lightgbm_regressor.n_estimators=10",
        "tasks.sg_from_composition.model_overrides.lightgbm.n_estimators=5",
        "tasks.volume_per_atom_from_composition.model_overrides.lightgbm_regressor.n_estimators=10",
        *[f"tasks.{t}.min_class_count=2" for t in ("sg_from_geometry", "bravais_from_composition", "sg_from_composition")],
        *[f"++tasks.volume_per_atom_from_composition.model_overrides.{m}.max_epochs=2" for m in ("mlp_regressor", "tabnet", "wide_deep")],
        "++tasks.volume_from_geometry.model_overrides.tabnet.max_epochs=2",
        # structures: a small lattice forest; two formulas, two candidates per arm, short relaxations on one worker
        "lattice.model.n_estimators=10", "lattice.model.n_jobs=1", "generate.n_workers=1",
        "generate.search.candidates=2", "generate.benchmark.search.candidates=2", "generate.search.top_k=2",
        "generate.search.steps=40", "generate.benchmark.search.steps=40", "generate.benchmark.search.templates=1",
        "generate.benchmark.formulas_per_bin=[1,1,0,0]", "templates.max_atoms=12",
        "references.per_element=1", "references.elements=[Na,Cl,O,Mg,S,Zn]",  # Mg-O and S-Zn: discover's held-out systems
        # discovery: a small existence model; two held-out systems, two compositions of two candidates each
        "existence.max_atoms=6", "existence.negatives_per_system=5", "existence.model.n_estimators=20",
        "existence.model.n_jobs=1", "discover.max_atoms=6", "discover.compositions=2", "discover.known_structures=2",
        "discover.search.candidates=2", "discover.search.templates=2", "discover.search.steps=20",
        "discover.benchmark.systems=2", "discover.benchmark.min_known=1",
        # one torch model over one more seed
        "seed_spread.seeds=[43]", *[f"~seed_spread.runs.{run}" for run in compose()["seed_spread"]["runs"]
                                    if run != "volume_from_geometry-wide_deep"],
        *[f"train.matrix.{group}.{axis}=[{','.join(values)}]" for group, axes in TINY_MATRIX.items()
          for axis, values in axes.items()]]


@contextmanager
def params_restored(root: Path, env: dict, *stages: str) -> Iterator[None]:
    """Run a block that changes params.yaml and re-runs `stages`, then put params.yaml and dvc.lock back and bring
    those stages' outputs back (from DVC's run cache): the next test finds the pipeline as the fixture left it."""
    saved = {name: (root / name).read_bytes() for name in ("params.yaml", "dvc.lock") if (root / name).exists()}
    try:
        yield
    finally:
        for name, content in saved.items():
            (root / name).write_bytes(content)
        run([sys.executable, "-m", "dvc", "repro", *stages], root, env)


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    """Run a command; fail the test with its output tail if it fails; return stdout and stderr."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def tiny_repo(tmp_path_factory) -> tuple[Path, dict]:
    """A git clone-like copy of the working tree (tracked and untracked-but-not-ignored files) with the tiny params."""
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
    # mlflow.set_tracking_uri in an earlier test of this process sets MLFLOW_TRACKING_URI: the copy uses its own store
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    (root / "params.yaml").write_text(yaml.safe_dump(compose(TINY), sort_keys=False))
    run(["git", "init", "-q"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "copy"], root, env)
    return root, env
