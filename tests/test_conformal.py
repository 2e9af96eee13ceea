"""Split-conformal sets: finite-sample threshold, coverage on exchangeable data, set sizes, top-k."""

import numpy as np
import pytest

from xtalml.evaluation.conformal import (conformal_evaluation, conformal_threshold, mondrian_key, mondrian_sets,
                                        mondrian_thresholds, nonconformity, prediction_sets,
                                         set_coverage, top_k_curve)


def _draw(rng, n, classes=20):
    """Rows whose true class is drawn from the model's own probabilities: a calibrated model."""
    proba = rng.dirichlet(np.full(classes, 0.3), size=n)
    y = np.array([rng.choice(classes, p=p) for p in proba]).astype(str)
    return proba, y


def test_threshold_is_the_finite_sample_quantile():
    scores = np.arange(1, 101) / 100  # 0.01 … 1.00, shuffled order must not matter
    np.random.default_rng(0).shuffle(scores)
    assert conformal_threshold(scores, 0.9) == pytest.approx(0.91)  # ceil(101 * 0.9) = 91st smallest
    assert conformal_threshold(scores[:5], 0.9) == 1.0  # too few rows for 90 %: every class
    with pytest.raises(ValueError, match="between 0 and 1"):
        conformal_threshold(scores, 1.0)


@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_sets_reach_the_target_coverage_on_held_out_rows(coverage):
    rng = np.random.default_rng(1)
    classes = np.arange(20).astype(str)
    cal_proba, cal_y = _draw(rng, 3000)
    test_proba, test_y = _draw(rng, 4000)
    result = conformal_evaluation(nonconformity(cal_proba, classes, cal_y), test_proba, classes, test_y, [coverage])
    reached = result[f"{coverage:g}"]
    assert coverage - 0.025 <= reached["coverage"] <= coverage + 0.03
    assert 1 <= reached["mean_set_size"] < 20  # informative: smaller than "every class"


def test_a_wrong_model_gets_larger_sets_but_keeps_coverage():
    rng = np.random.default_rng(2)
    classes = np.arange(20).astype(str)
    cal_proba, cal_y = _draw(rng, 3000)
    test_proba, test_y = _draw(rng, 3000)
    flat = 0.5 * cal_proba + 0.5 / 20, 0.5 * test_proba + 0.5 / 20  # under-confident model
    sharp = conformal_evaluation(nonconformity(cal_proba, classes, cal_y), test_proba, classes, test_y, [0.9])["0.9"]
    blurred = conformal_evaluation(nonconformity(flat[0], classes, cal_y), flat[1], classes, test_y, [0.9])["0.9"]
    assert blurred["coverage"] >= 0.875 and sharp["coverage"] >= 0.875
    shuffled = rng.permutation(test_proba)  # no information at all: sets must grow to keep coverage
    noise = conformal_evaluation(nonconformity(rng.permutation(cal_proba), classes, cal_y), shuffled, classes, test_y, [0.9])["0.9"]
    assert noise["coverage"] >= 0.875 and noise["mean_set_size"] > 2 * sharp["mean_set_size"]


def test_sets_are_never_empty_and_unknown_classes_score_one():
    proba = np.array([[0.5, 0.3, 0.2], [0.34, 0.33, 0.33]])
    mask = prediction_sets(proba, 0.0)
    assert mask.sum(axis=1).tolist() == [1, 1] and mask[0, 0] and mask[1, 0]
    assert nonconformity(proba, ["a", "b", "c"], ["b", "zz"]).tolist() == pytest.approx([0.7, 1.0])
    assert set_coverage(mask, ["a", "b", "c"], ["a", "b"])["coverage"] == 0.5


def test_top_k_curve_rises_to_one():
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])
    assert top_k_curve(proba, ["a", "b", "c"], ["a", "c", "a"], 3) == pytest.approx([1 / 3, 2 / 3, 1.0])


@pytest.mark.parametrize("overrides", [["conformal.model=two_stage"],
                                       ["conformal.model=random_forest", "+models.random_forest.refit_with_val_rows=true"],
                                       ["conformal.model=mlp_classifier"]])
def test_validation_calibration_refuses_a_model_that_saw_the_validation_rows(tmp_path, overrides):
    import subprocess
    import sys

    import yaml

    from xtalml.config import REPO_ROOT, compose

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(compose(["conformal.calibration=validation", *overrides]), sort_keys=False))
    paths = [a for flag in ("models", "train-metrics", "features", "split", "split-modes", "out", "details", "metrics")
             for a in (f"--{flag}", str(tmp_path / flag))]  # never read: the check comes before any file
    done = subprocess.run([sys.executable, str(REPO_ROOT / "stages" / "conformal.py"), "--params", str(params), *paths],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0 and "saw the validation rows in training" in done.stderr
    assert "use calibration: chemical_system" in done.stderr


def test_mondrian_sets_use_each_groups_threshold():
    rng = np.random.default_rng(3)
    classes = np.arange(20).astype(str)

    def rows(n):  # calibrated on binaries (key 2), over-confident on ternaries (key 3): 40 % of their labels are noise
        proba, y = _draw(rng, 2 * n)
        keys = np.repeat([2, 3], n)
        noise = (keys == 3) & (rng.random(2 * n) < 0.4)
        y[noise] = rng.integers(0, 20, noise.sum()).astype(str)
        return proba, y, keys

    proba, y, keys = rows(3000)
    scores = nonconformity(proba, classes, y)
    test_proba, test_y, keys = rows(3000)
    thresholds = mondrian_thresholds(scores, keys, 0.9)
    assert set(thresholds) == {-1, 2, 3} and thresholds[2] < thresholds[3]
    mask = mondrian_sets(test_proba, keys, thresholds)
    for key in (2, 3):  # each group reaches the target on its own, not only on average
        rows = keys == key
        assert 0.875 <= set_coverage(mask[rows], classes, test_y[rows])["coverage"] <= 0.93
    pooled = prediction_sets(test_proba, thresholds[-1])
    assert set_coverage(pooled[keys == 3], classes, test_y[keys == 3])["coverage"] < 0.875  # one threshold under-covers
    unseen = mondrian_sets(test_proba[:5], np.full(5, 7), thresholds)  # a group with no calibration rows: the pooled one
    assert (unseen == prediction_sets(test_proba[:5], thresholds[-1])).all()
    assert mondrian_key(["NaCl", "SrTiO3", "Fe", "KAlSi3O8", "CaMgFeAlSiO"], "n_elements").tolist() == [2, 3, 1, 4, 5]
    assert mondrian_key(["NaCl"], None).tolist() == [0]
