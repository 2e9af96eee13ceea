"""Long loops draw a progress bar on a terminal and write nothing into logs."""

import os
import subprocess
import sys

SCRIPT = """
from xtalml.features.composition import composition_features
composition_features(["NaCl", "SiO2", "Fe2O3"] * 200)
import numpy as np
from xtalml.models.registry import build_model
X = np.random.default_rng(0).normal(size=(60, 4)); y = np.array(["a", "b"] * 30)
build_model("mlp_classifier", {"max_epochs": 3, "hidden": [8]}, 0).fit(X, y)
"""


def _stderr(**env):
    base = {k: v for k, v in os.environ.items() if k != "XTALML_PROGRESS"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env={**base, **env}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


def test_no_bars_when_output_is_not_a_terminal():
    stderr = _stderr()
    assert "featurize compositions" not in stderr and "epochs" not in stderr


def test_bars_when_asked_for():
    stderr = _stderr(XTALML_PROGRESS="1")
    assert "featurize compositions" in stderr and "MLPClassifier epochs" in stderr
