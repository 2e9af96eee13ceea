import pytest
import yaml

from xtalml.config import REPO_ROOT, compose, load_params, section


def test_committed_params_equal_the_composed_default():
    assert load_params(REPO_ROOT / "params.yaml") == compose()


@pytest.mark.parametrize("source", ["amcsd", "cod_index", "cod", "local"])
def test_every_data_source_composes(source):
    cfg = compose([f"data={source}"])
    assert cfg["data"]["name"] == source and {"parse", "featurize", "split"} <= cfg.keys()


def test_dvc_stages_list_only_their_own_params():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert {name: stage["params"] for name, stage in stages.items()} == {
        "download": ["data"], "parse": ["parse"], "featurize": ["featurize"], "split": ["split"]}


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(KeyError, match="no 'split' section"):
        section({"data": {}}, "split")
    with pytest.raises(KeyError, match="lacks seed"):
        section({"split": {"method": "grouped"}}, "split", ["method", "seed"])
    with pytest.raises(FileNotFoundError, match="params.yaml"):
        load_params(tmp_path / "params.yaml")
