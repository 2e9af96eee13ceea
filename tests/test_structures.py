"""From symmetry to structure: lattice parameters, candidate enumeration, generate on Dask (local and by address)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import CHOICE

from xtalml.features.geometry import analytic_volume
from xtalml.structures.candidates import (CandidateError, allocate, compatible_units, formula_counts, plan_candidates,
                                          top_groups)
from xtalml.structures.lattice import (FREE_PARAMETERS, LatticeParameterRegressor, MedianLatticeParameters,
                                       cell_parameters, scale_free)
from xtalml.structures.search import SearchSettings, candidate_specs, dask_client, rank_candidates, run_specs

CELL = ("a", "b", "c", "alpha", "beta", "gamma")


@pytest.mark.parametrize("lattice, free", [("cF", {}), ("tI", {"c/a": 2.1}), ("hR", {"c/a": 2.45}),
                                           ("oP", {"b/a": 1.3, "c/a": 0.7}), ("mC", {"b/a": 0.6, "c/a": 1.5, "beta": 104.0}),
                                           ("aP", {"b/a": 1.1, "c/a": 1.3, "alpha": 82.0, "beta": 95.0, "gamma": 101.0})])
def test_cell_from_free_parameters_has_the_volume_and_gives_them_back(lattice, free):
    cell = cell_parameters(lattice, free, 321.0)
    assert analytic_volume(*(cell[k] for k in CELL)) == pytest.approx(321.0)
    back = scale_free(lattice, *(cell[k] for k in CELL))
    assert set(back) == set(FREE_PARAMETERS[lattice])
    if lattice != "aP":  # a Niggli reduction may reorder a triclinic cell's axes
        assert back == pytest.approx(free)


def test_scale_free_puts_cells_in_the_standard_orientation():
    assert scale_free("tP", 4.0, 6.0, 4.0, 90, 90, 90) == {"c/a": pytest.approx(1.5)}  # unique axis given as b
    assert scale_free("hR", 5.0, 5.0, 5.0, 60, 60, 60) == {"c/a": pytest.approx(6 ** 0.5)}  # rhombohedral axes
    assert scale_free("mP", 5.0, 6.0, 7.0, 90, 90, 80) == pytest.approx({"b/a": 1.4, "c/a": 1.2, "beta": 100.0})
    with pytest.raises(ValueError, match="unknown Bravais lattice 'xZ'"):
        scale_free("xZ", 1, 1, 1, 90, 90, 90)


def test_lattice_model_learns_a_ratio_its_baseline_cannot():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(400, 3))
    lattices = np.where(np.arange(400) % 2, "tP", "oP")
    free = [{"c/a": 1 + 2 * x[0]} if lat == "tP" else {"b/a": 1.5, "c/a": 0.5 + x[1]} for x, lat in zip(X, lattices)]
    model = LatticeParameterRegressor(n_estimators=30, seed=0).fit(X[:300], lattices[:300], free[:300])
    baseline = MedianLatticeParameters().fit(X[:300], lattices[:300], free[:300])
    pred, base = model.predict(X[300:], lattices[300:]), baseline.predict(X[300:], lattices[300:])
    err = [abs(p["c/a"] - t["c/a"]) for p, t in zip(pred, free[300:])]
    base_err = [abs(p["c/a"] - t["c/a"]) for p, t in zip(base, free[300:])]
    assert np.mean(err) < 0.3 * np.mean(base_err)
    assert all(set(p) == set(FREE_PARAMETERS[lat]) for p, lat in zip(pred, lattices[300:]))
    assert model.predict(X[:1], ["cF"]) == [{}] and model.predict(X[:1], ["aP"])[0]["beta"] == 100.0  # no rows: typical


def test_formula_counts_scale_fractions_and_refuse_what_no_ordered_cell_holds():
    assert formula_counts("SrTiO3", 40) == (["Sr", "Ti", "O"], [1, 1, 3])
    assert formula_counts("Fe0.5O", 40) == (["Fe", "O"], [1, 2])
    assert formula_counts("Na2Cl2", 40) == (["Na", "Cl"], [1, 1])
    with pytest.raises(CandidateError, match="unknown element 'Xx'"):
        formula_counts("Xx2O", 40)
    with pytest.raises(CandidateError, match="fractional or disordered"):
        formula_counts("Fe0.123O", 40)
    with pytest.raises(CandidateError, match="one formula unit is larger"):
        formula_counts("C60H10N", 40)


def test_candidates_use_wyckoff_compatible_units_and_skip_incompatible_groups():
    assert compatible_units(225, (1, 1), 40)[:2] == (4, 8)  # rock salt: 4a + 4b in the F-centred cell
    assert compatible_units(221, (1, 1, 3), 40)[0] == 1     # cubic perovskite: 1a + 1b + 3c
    assert 2 not in compatible_units(229, (1, 1), 40)       # Im-3m has one 2-fold site: no room for 2 Na + 2 Cl
    plan = plan_candidates((1, 1), {229: 0.5, 225: 0.3, 221: 0.2}, 6, 40)
    assert all(z in compatible_units(g, (1, 1), 40) for g, z in plan)
    assert plan_candidates((1, 1), {225: 1.0}, 3, 40, units_per_group=1) == [(225, 4)] * 3
    assert compatible_units(230, (1, 1), 10) == ()   # Ia-3d: its smallest sites hold 16 (8 per primitive cell) each
    # the limit is on the primitive cell, which is what relaxes: F-43m holds Ta4GaTe4Se4 (13 atoms) as 52 atoms in its
    # conventional cell, 13 in its primitive one; R-3m a 14-atom formula as 42 in its hexagonal cell
    assert compatible_units(216, (4, 1, 4, 4), 40)[0] == 4 and compatible_units(216, (4, 1, 4, 4), 12) == ()
    assert compatible_units(166, (1, 6, 1, 6), 40)[0] == 3
    with pytest.raises(CandidateError, match="no group among"):
        plan_candidates((1, 1), {230: 1.0}, 3, 10)
    assert allocate({225: 0.6, 221: 0.3, 1: 0.1}, 10).count(225) == 6  # budget shared by probability
    assert allocate({225: 0.6, 221: 0.3, 1: 0.1}, 3) == [225, 221, 225]  # every prefix too
    assert top_groups(np.array([0.5, 0.3, 0.15, 0.05]), ["225", "other", "221", "1"], 0.6, 10) == {225: 0.5, 221: 0.15}


def _specs(n=3):
    settings = SearchSettings(candidates=n, steps=60, candidate_time_limit_s=30)
    return candidate_specs("NaCl", "oracle", settings, volume_per_atom=22.6, true_group=225)


@pytest.fixture(scope="module")
def local_client():
    with dask_client(n_workers=1) as client:
        yield client


def test_generate_on_a_local_cluster_answers_good_formulas_and_names_bad_ones(local_client, models_dir, tmp_path):
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifParser

    from xtalml.predict import formula_estimates, load_predictor
    from xtalml.structures.search import generate_structures

    predictor = load_predictor(models_dir, {t: CHOICE[t] for t in ("sg_from_composition", "volume_per_atom_from_composition")})
    settings = SearchSettings(candidates=2, top_k=2, steps=80, candidate_time_limit_s=30)
    formulas = ["NaCl", "Xx2O", "Fe0.123O"]
    answer = generate_structures(formulas, formula_estimates(predictor, formulas), None, settings, local_client, tmp_path)
    assert set(answer["errors"]) == {"Xx2O", "Fe0.123O"}
    assert "unknown element" in answer["errors"]["Xx2O"] and "fractional" in answer["errors"]["Fe0.123O"]
    [nacl] = answer["structures"]
    assert nacl["input"] == "NaCl" and nacl["candidates"][0]["rank"] == 1
    keys = [c["energy_per_atom"] - settings.score_weight * c["score"] for c in nacl["candidates"]]
    assert all(a <= b + 1e-3 for a, b in zip(keys, keys[1:]))  # by energy, steered by the score (both rounded)
    text = open(nacl["candidates"][0]["cif"]).read()
    assert "# start space group" in text and "energy per atom" in text and "rank 1" in text and "# from pyxtal" in text
    structure = CifParser.from_str(text).parse_structures(primitive=False)[0]
    assert structure.composition.reduced_formula == "NaCl"
    json.dumps(answer)  # the CLI prints it as JSON
    rock_salt = Structure.from_spacegroup(225, Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ranked = rank_candidates(run_specs(local_client, _specs(2), 600))
    assert StructureMatcher().fit(ranked[0]["structure"], rock_salt)  # the true group finds rock salt


def test_the_ranking_weighs_group_probability_and_volume_misfit_beside_energy():
    from xtalml.structures.search import ranking_value

    likely = {"energy_per_atom": -4.00, "score": 0.0, "p_group": 0.8, "volume_per_atom": 20.0,
              "predicted_volume_per_atom": 20.0}
    unlikely = {**likely, "energy_per_atom": -4.02, "p_group": 0.01}
    swollen = {**likely, "energy_per_atom": -4.02, "volume_per_atom": 30.0}
    assert ranking_value(unlikely) < ranking_value(likely)  # energy alone: the lower one
    assert ranking_value(likely, group_weight=0.01) < ranking_value(unlikely, group_weight=0.01)
    assert ranking_value(swollen) < ranking_value(likely) and \
        ranking_value(likely, volume_weight=0.1) < ranking_value(swollen, volume_weight=0.1)
    assert ranking_value({**likely, "predicted_volume_per_atom": None}, volume_weight=1.0) == -4.0  # nothing to weigh
    assert ranking_value(likely, 0.5) == ranking_value({**likely, "score": 1.0}, 0.5) + 0.5
    left = {**likely, "p_relaxed_group": 0.01}  # started in the likely group, relaxed into an unlikely one
    assert ranking_value(left, group_weight=0.01) == pytest.approx(ranking_value(unlikely, group_weight=0.01) + 0.02)


def test_a_staged_relaxation_relaxes_only_the_best_candidates_fully_and_marks_the_others(local_client):
    from xtalml.structures.search import relax_best_further

    short = SearchSettings(candidates=4, steps=2, candidate_time_limit_s=30)
    specs = candidate_specs("NaCl", "oracle", short, volume_per_atom=30.0, true_group=225)  # too large: steps to go
    first = run_specs(local_client, specs, 600)
    assert all(r["relax_steps"] <= 3 for r in first)  # ASE counts the start as one
    staged = relax_best_further(local_client, specs, first, SearchSettings(steps=60, full_relaxations=1))
    full = [r for r in staged if r["relaxation"] == "full"]
    assert len(full) == 1 and [r["relaxation"] for r in staged].count("short") == 3
    [before] = [r for r in first if r["index"] == full[0]["index"]]
    assert full[0]["relax_steps"] > before["relax_steps"] + 3 and full[0]["energy_per_atom"] < before["energy_per_atom"]
    best_short = rank_candidates(first)[0]  # the one the short stage ranked first went on
    assert full[0]["index"] == best_short["index"]
    ranked = rank_candidates(staged)
    assert ranked[0]["relaxation"] == "full" and all(r["relaxation"] == "short" for r in ranked[1:])


def test_random_search_ranks_without_the_space_group_model():
    from xtalml.structures.search import rank_weights

    settings = SearchSettings(candidates=4, group_weight=1.0)
    frequencies = {225: 0.5, 221: 0.3, 62: 0.2}
    classes = np.array(["225", "221", "62"])
    scores = [[s["score"] for s in candidate_specs("NaCl", "random", settings, volume_per_atom=22.6, proba=proba,
                                                   classes=classes, frequencies=frequencies)]
              for proba in (np.array([0.9, 0.05, 0.05]), np.array([0.05, 0.05, 0.9]))]
    assert scores[0] == scores[1]  # scored by the training frequencies it draws from
    assert rank_weights(settings, "random")["group_weight"] == 0 == rank_weights(settings, "oracle")["group_weight"]
    assert rank_weights(settings)["group_weight"] == 1.0


def test_the_full_relaxation_goes_first_to_the_model_groups_best_candidates():
    from xtalml.structures.search import full_relaxation_choice

    ranked = [{"index": i, "space_group_number": g} for i, g in enumerate([62, 62, 194, 225])]  # best first
    groups = {225: 0.5, 194: 0.3, 62: 0.2}
    def chosen(**settings):
        return [r["index"] for r in full_relaxation_choice(ranked, groups, SearchSettings(**settings))]
    assert chosen(full_relaxations=3) == [0, 1, 2]  # by the ranking alone
    assert chosen(full_relaxations=3, full_relaxation_groups=2) == [3, 2, 0]  # 225's and 194's best, then the best
    assert chosen(full_relaxations=1, full_relaxation_groups=2) == [3]
    assert chosen(full_relaxations=2, full_relaxation_groups=2) == [3, 2]
    assert [r["index"] for r in full_relaxation_choice(ranked, {}, SearchSettings(full_relaxation_groups=3))] == [0, 1, 2]


def test_time_limits_stop_a_relaxation_and_a_formula(local_client):
    settings = SearchSettings(candidates=1, candidate_time_limit_s=0.0)
    squeezed = candidate_specs("ZnO", "oracle", settings, volume_per_atom=9.0, true_group=186)  # compressed: not relaxed
    [stopped] = run_specs(local_client, squeezed, 600)
    assert stopped["error"] is None and stopped["relax_steps"] == 1 and stopped["converged"] is False
    results = run_specs(local_client, _specs(4), formula_time_limit_s=0.0)
    assert results[0]["error"] is None or "time limit" in results[0]["error"]
    assert any("time limit per formula (0 s) reached" in (r["error"] or "") for r in results[1:])


def test_an_atom_step_budget_bounds_a_relaxation_by_its_atoms():
    from pymatgen.core import Lattice, Structure

    from xtalml.structures.relax import relax

    rock_salt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(6.2), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    _, _, free, _ = relax(rock_salt, fmax=1e-6, steps=6, time_limit_s=60)
    _, _, bounded, _ = relax(rock_salt, fmax=1e-6, steps=6, time_limit_s=60, max_atom_steps=24)  # 8 atoms: 3 steps
    assert (free, bounded) == (7, 4)  # FIRE reports the start and every step


def test_fixed_symmetry_keeps_the_candidates_group(local_client):
    settings = SearchSettings(candidates=2, steps=30, fix_symmetry=True)
    specs = candidate_specs("ZnO", "oracle", settings, volume_per_atom=12.0, true_group=186)
    assert all(spec["fix_symmetry"] for spec in specs)
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    for result in run_specs(local_client, specs, 600):  # 186 or a supergroup: every operation of 6mm kept
        structure = Structure.from_dict(result["structure"])
        assert len(SpacegroupAnalyzer(structure, symprec=0.1).get_point_group_operations()) >= 12


def test_a_killed_worker_loses_no_candidate():
    with dask_client(n_workers=2) as client:
        pids = client.run(os.getpid)
        specs = _specs(6)
        from distributed import as_completed

        from xtalml.structures.relax import run_candidate

        futures = client.map(run_candidate, specs, pure=False)
        time.sleep(1.0)  # candidates in flight on both workers
        victim = next(iter(pids.values()))
        os.kill(victim, signal.SIGKILL)
        results = [f.result() for f in as_completed(futures)]
        assert len(results) == 6 and all(r["error"] is None for r in results)
        assert victim not in client.run(os.getpid).values()  # the nanny started a new worker


def test_generate_runs_against_a_scheduler_given_by_address(tmp_path):
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--scheduler-file", str(tmp_path / "s.json")],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        for _ in range(100):
            if (tmp_path / "s.json").exists() and (tmp_path / "s.json").stat().st_size:
                break
            time.sleep(0.2)
        address = json.loads((tmp_path / "s.json").read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                   "--nworkers", "1", "--no-dashboard"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with dask_client(address) as client:
            client.wait_for_workers(1, timeout=60)
            results = run_specs(client, _specs(1), 600)
        assert results[0]["error"] is None and results[0]["energy_per_atom"] < -3
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)


def test_search_settings_name_an_unknown_key():
    assert SearchSettings.from_params({"candidates": 3}).candidates == 3
    with pytest.raises(ValueError, match=r"unknown settings \['candidate'\]"):
        SearchSettings.from_params({"candidate": 3})


def test_one_backward_pass_gives_chgnets_energy_forces_and_stress():
    from chgnet.model.dynamics import CHGNetCalculator
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from xtalml.structures.potential import OneBackwardCHGNetCalculator
    from xtalml.structures.relax import _calculator

    fast = _calculator()
    assert isinstance(fast, OneBackwardCHGNetCalculator)
    rock_salt = Structure.from_spacegroup(225, Lattice.cubic(5.9), ["Na", "Cl"], [[0] * 3, [0.5] * 3])
    rock_salt.translate_sites([0, 3], [0.02, -0.01, 0.015])  # off the symmetric sites, so forces are not zero
    found = {}
    for name, calculator in (("stock", CHGNetCalculator(model=fast.model, use_device="cpu")), ("fast", fast)):
        atoms = AseAtomsAdaptor.get_atoms(rock_salt)
        atoms.calc = calculator
        found[name] = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
                       "stress": atoms.get_stress(), "magmoms": atoms.get_magnetic_moments()}
    assert found["fast"]["energy"] == found["stock"]["energy"]
    np.testing.assert_array_equal(found["fast"]["magmoms"], found["stock"]["magmoms"])
    assert np.abs(found["stock"]["forces"]).max() > 0.01
    for key in ("forces", "stress"):  # float32 sums in another order: rounding only
        np.testing.assert_allclose(found["fast"][key], found["stock"][key], rtol=1e-4, atol=1e-5)


def test_a_candidate_whose_cell_collapsed_is_a_failure_never_a_ranked_structure():
    from pymatgen.core import Lattice, Structure

    from xtalml.structures.relax import run_candidate

    flat = Structure(Lattice([[3, 0, 0], [0, 3, 0], [0, 0, 1e-6]]), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    result = run_candidate({"input": "NaCl", "index": 0, "as_given": True, "template": json.dumps(flat.as_dict()),
                            "relax": False})
    assert result["structure"] is None and "spglib finds no symmetry" in result["error"]
    assert rank_candidates([result]) == []
