import io
import tarfile
import warnings

import gemmi
import pytest
from pymatgen.io.cif import CifParser

from xtalml.cif.dataset import cif_structures, index_structures
from xtalml.sources.amcsd import decode_array, element_from_label, write_amcsd_cifs
from xtalml.sources.cod_index import read_cod_index
from xtalml.sources.local import copy_local_cifs
from xtalml.sources.manifest import read_manifest, write_manifest
from xtalml.sources.wheels import fetch_wheel


@pytest.fixture(scope="module")
def amcsd_cifs(amcsd_db, tmp_path_factory):
    return write_amcsd_cifs(amcsd_db, tmp_path_factory.mktemp("amcsd_cifs"))


def test_amcsd_writes_one_cif_per_entry_and_99_percent_parse(amcsd_cifs):
    assert len(amcsd_cifs) == 9275
    structures, rejects = cif_structures(amcsd_cifs, workers=2, timeout_s=30)
    assert len(structures) / len(amcsd_cifs) >= 0.99
    assert structures["year"].between(1900, 2030).all()
    assert structures["sg_number"].between(1, 230).all()
    assert structures["atoms_in_cell"].notna().mean() > 0.9  # Z is derived from the sites when not given


def test_amcsd_cifs_read_back_with_gemmi_and_pymatgen(amcsd_cifs):
    keys = sorted(amcsd_cifs)[::47]  # ~200 entries spread over the database
    for key in keys:
        path = amcsd_cifs[key]
        block = gemmi.cif.read(str(path)).sole_block()
        cell = [gemmi.cif.as_number(block.find_value(t)) for t in (
            "_cell_length_a", "_cell_length_b", "_cell_length_c", "_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma")]
        assert block.find_value("_journal_year") is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parser = CifParser(path)
            try:
                structure = parser.parse_structures(primitive=False, check_occu=False)[0]
            except ValueError:
                continue  # a handful of source entries have no usable atom sites
        assert list(structure.lattice.parameters) == pytest.approx(cell, rel=1e-6), key
        assert len(structure) > 0


def test_amcsd_decoding():
    assert decode_array("AAAAAAAJPQA=") == ["0", "1"]
    assert decode_array("0") is None
    assert [element_from_label(x) for x in ("Si1", "O-H", "Ca", "OH", "Fe2+", "Wat")] == ["Si", "O", "Ca", "O", "Fe", "W"]


def test_cod_index_has_62099_rows(cod_index_file):
    index = read_cod_index(cod_index_file)
    assert len(index) == 62_099
    assert index["sg_number"].between(1, 230).all()
    structures, rejects = index_structures(cod_index_file)
    assert len(structures) + len(rejects) == 62_099
    assert set(rejects["reason"]) <= {"duplicate COD id in the index"}
    assert structures["bravais_lattice"].nunique() == 14


def test_wheel_hash_is_checked(tmp_path):
    with pytest.raises(RuntimeError, match="could not download"):
        fetch_wheel("larixite==2026.1.0", "0" * 64, tmp_path)


def test_local_source_from_folder_and_tar(cod_cif_dir, tmp_path):
    from_dir = copy_local_cifs(cod_cif_dir, tmp_path / "a", limit=5)
    assert len(from_dir) == 5
    archive = tmp_path / "cifs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in list(from_dir.values())[:3]:
            tar.add(path, arcname=f"sub/{path.name}")
        info = tarfile.TarInfo("evil/../../escape.cif")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
        data = b"not a cif"
        note = tarfile.TarInfo("README.txt")
        note.size = len(data)
        tar.addfile(note, io.BytesIO(data))
    from_tar = copy_local_cifs(archive, tmp_path / "b")
    assert sorted(from_tar) == sorted(list(from_dir)[:3])
    assert not (tmp_path / "escape.cif").exists()
    manifest = write_manifest(tmp_path / "b", from_tar, "local")
    assert list(read_manifest(tmp_path / "b").columns) == ["id", "path", "sha256", "size", "source"]
    assert manifest["sha256"].str.len().eq(64).all()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        copy_local_cifs(tmp_path / "nowhere", tmp_path / "c")
