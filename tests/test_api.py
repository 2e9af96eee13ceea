"""The Python API: xtalml.load finds a project and its models, predict gives the CLI's table, errors as rows."""

import io
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from conftest import CHOICE, MODEL_FLAGS
from xtalml.api import Candidate, find_project, load, read_inputs
from xtalml.cli import main
from xtalml.config import REPO_ROOT


def test_predict_gives_a_row_per_input_in_order_with_the_clis_columns(models_dir, cod_cif_dir, tmp_path, capsys):
    cif = sorted(cod_cif_dir.glob("*.cif"))[0]
    listing = tmp_path / "formulas.txt"
    listing.write_text("SiO2\nZz3\n")
    project = load(REPO_ROOT, models=CHOICE, models_dir=models_dir)
    inputs = ["Fe2O3", "Qq2", str(cif), listing, "NaCl", str(tmp_path / "missing.cif")]
    table = project.predict(inputs)
    assert table["input"].tolist() == ["Fe2O3", "Qq2", str(cif), "SiO2", "Zz3", "NaCl", str(tmp_path / "missing.cif")]
    errors = table["error"].tolist()
    assert [e is None or pd.isna(e) for e in errors] == [True, False, True, True, False, True, False]
    assert "unknown element 'Qq'" in errors[1] and errors[6] == "CIF file not found"
    assert table.loc[2, "cell_volume"] > 0 and table.loc[0, "volume_per_atom"] > 0
    # the CLI's CSV is this table's answered rows, column for column
    assert main(["predict", *map(str, inputs), "--models", str(models_dir), "--format", "csv", *MODEL_FLAGS]) == 1
    cli = pd.read_csv(io.StringIO(capsys.readouterr().out))
    answered = table[table["error"].isna()].drop(columns="error").reset_index(drop=True)
    assert list(cli.columns) == list(answered.columns)
    pd.testing.assert_frame_equal(cli, answered.astype(cli.dtypes.to_dict()), check_exact=False, rtol=1e-9)
    assert project.predict("Qq2").loc[0, "error"].startswith("formula 'Qq2'")  # one input: a table all the same
    with pytest.raises(ValueError, match="coverage"):
        project.predict("NaCl", coverage=1.5)


def test_load_finds_the_project_above_the_working_folder_and_names_what_is_missing(tmp_path, monkeypatch):
    assert find_project(REPO_ROOT / "src" / "xtalml") == REPO_ROOT
    monkeypatch.chdir(REPO_ROOT / "tests")
    assert find_project() == REPO_ROOT
    with pytest.raises(FileNotFoundError, match="no xtalml project"):
        load(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "nope")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match=r"register.json is missing: run `dvc repro register`"):
        load(tmp_path)
    with pytest.raises(ValueError, match="unknown tasks"):
        load(tmp_path, models={"sg_from_geometry": "knn"})


def test_inputs_are_read_as_the_cli_reads_them(tmp_path):
    (tmp_path / "f.csv").write_text("formula,note\nNaCl,salt\n")
    (tmp_path / "d.cif").mkdir()
    (tmp_path / "x.pdf").write_text("%PDF")
    entries = read_inputs(["Fe0.5O", str(tmp_path / "f.csv"), str(tmp_path / "d.cif"), str(tmp_path / "x.pdf"),
                           tmp_path / "f.csv", "./none.txt"])
    assert entries == [("formula", "Fe0.5O", "Fe0.5O"), ("formula", "NaCl", "NaCl"),
                       ("error", "is a directory: give CIF files (.cif) or formula files (.txt, .csv)",
                        str(tmp_path / "d.cif")),
                       ("error", "unsupported file type '.pdf': give .cif, .txt or .csv files",
                        str(tmp_path / "x.pdf")),
                       ("formula", "NaCl", "NaCl"), ("error", "file not found", "./none.txt")]


def test_a_candidate_writes_its_cif_to_a_file_or_into_a_folder(tmp_path):
    from pymatgen.core import Lattice, Structure

    rock_salt = Structure.from_spacegroup(225, Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    candidate = Candidate(formula="NaCl", rank=1, structure=rock_salt, space_group_number=225, energy_per_atom=-3.4,
                          formation_energy_per_atom=-2.1, source="template", prototype="B1", info={"rank": 1},
                          cif_text="# from template\ndata_NaCl\n", cif_name="01_NaCl_sg225.cif")
    assert candidate.to_cif(tmp_path).name == "01_NaCl_sg225.cif"
    assert candidate.to_cif(tmp_path / "sub" / "mine.cif").read_text().startswith("# from template")
    assert candidate.as_dict() == {"rank": 1} and "Structure" not in repr(candidate.info)


def test_importing_the_package_leaves_the_api_unloaded_until_it_is_used():
    code = ("import sys, xtalml.config; print('xtalml.api' in sys.modules); "
            "import xtalml; xtalml.load; print('xtalml.api' in sys.modules, 'load' in dir(xtalml))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "True"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        __import__("xtalml").nope
