import pytest
import yaml

from xtalml.config import REPO_ROOT, compose, dvc_plot_definitions, load_params, section
from xtalml.tasks import table_folder


def test_committed_params_equal_the_composed_default():
    assert load_params(REPO_ROOT / "params.yaml") == compose()


@pytest.mark.parametrize("source", ["amcsd", "cod_index", "oqmd_volume", "cod", "local"])
def test_every_data_source_composes(source):
    cfg = compose([f"data={source}"])
    assert cfg["data"]["name"] == source and {"parse", "featurize", "split"} <= cfg.keys()


def test_dvc_stages_list_only_their_own_params():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    params = lambda stage: stage.get("do", stage)["params"]  # noqa: E731 (foreach stages keep theirs under do)
    assert {name: params(stage) for name, stage in stages.items() if name != "train"} == {
        "download": ["data"], "parse": ["parse"], "featurize": ["featurize"], "split": ["split"],
        "composition_table": ["composition_sources.${key}", "composition_table", "parse", "featurize"],
        "leakage_audit": ["leakage_audit", "models.random_forest"],
        "split_modes": ["split", "split_modes", "tasks", *[f"models.${{split_modes.models.{t}}}" for t in (
            "bravais_from_composition", "sg_from_composition", "volume_per_atom_from_composition")], "train.seed",
            "train.torch_threads"],
        "conformal": ["conformal", "tasks.${conformal.task}"], "report": ["report", "tasks"],
        "register": ["tasks", "train.runs", "train.torch_threads", "featurize.element_tables"]}
    train = stages["train"]["do"]
    assert train["params"] == ["tasks.${item.task}", "models.${item.model}", "train.seed", "train.torch_threads"]
    assert {"${item.features}", "${item.split}"} <= set(train["deps"])


def test_dvc_plot_definitions_are_up_to_date():
    plots = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["plots"]
    assert plots == dvc_plot_definitions(compose()), "regenerate dvc.yaml's plots section (command in its comment)"
    confusion = [p for p in plots if next(iter(p)).endswith("confusion.csv")]
    assert len(confusion) == 25 and all(next(iter(p.values()))["template"] == "confusion" for p in confusion)


def test_every_run_names_a_configured_task_model_and_its_table():
    params = load_params(REPO_ROOT / "params.yaml")
    for key, run in params["train"]["runs"].items():
        assert key == f"{run['task']}--{run['model']}"
        assert run["task"] in params["tasks"] and run["model"] in params["models"]
        table = table_folder(params["tasks"][run["task"]]["table"]).as_posix()
        assert run["features"] == f"{table}/features.parquet" and run["split"] == f"{table}/split.parquet"


def test_every_composition_source_has_its_chain_and_a_table_in_split():
    params, stages = compose(), yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["composition_table"]["foreach"] == "${composition_sources}"
    assert set(params["composition_sources"]) == {"cod_index", "oqmd_volume"}
    for key in params["composition_sources"]:
        assert f"data/composition/{key}" in stages["split"]["cmd"] and f"data/composition/{key}/split.parquet" in stages["split"]["outs"]
    for task in params["tasks"].values():
        assert task["table"] == "primary" or task["table"] in params["composition_sources"]


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(KeyError, match="no 'split' section"):
        section({"data": {}}, "split")
    with pytest.raises(KeyError, match="lacks seed"):
        section({"split": {"method": "grouped"}}, "split", ["method", "seed"])
    with pytest.raises(FileNotFoundError, match="params.yaml"):
        load_params(tmp_path / "params.yaml")
