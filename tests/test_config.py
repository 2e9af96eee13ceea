import pytest
import yaml

from xtalml.config import REPO_ROOT, compose, load_params, section, source_config, training_runs
from xtalml.evaluation.dvc_plots import dvc_plot_definitions
from xtalml.tasks import model_config, task_sources


def test_committed_params_equal_the_composed_default():
    assert load_params(REPO_ROOT / "params.yaml") == compose()


@pytest.mark.parametrize("source", ["amcsd", "cod_index", "oqmd_volume", "cod", "local"])
def test_every_data_source_composes(source):
    cfg = source_config(source)
    assert cfg["name"] == source and isinstance(cfg["cells"], bool)


def test_dvc_stages_list_only_their_own_params():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    params = lambda stage: stage.get("do", stage)["params"]  # noqa: E731 (foreach stages keep theirs under do)
    groups = [name for name in stages if name.startswith("train_")]
    assert {name: params(stage) for name, stage in stages.items() if name not in groups} == {
        "download": ["sources.${key}"], "parse": ["parse"], "featurize": ["featurize", "sources.${key}.cells"],
        "split": ["split"],
        "leakage_audit": ["leakage_audit", "tasks.${leakage_audit.geometry_task}", "tasks.${leakage_audit.composition_task}",
                          "models.random_forest"],
        "split_modes": ["sources", "split", "split_modes", "tasks", *[f"models.${{split_modes.models.{t}}}" for t in (
            "bravais_from_composition", "sg_from_composition", "volume_per_atom_from_composition")], "train.seed",
            "train.torch_threads"],
        "ablation": ["ablation", "featurize.element_tables", "tasks", *[f"models.${{ablation.models.{t}}}" for t in (
            "bravais_from_composition", "volume_per_atom_from_composition")], "train.seed", "train.torch_threads"],
        # conformal: the champion's models.<name> reaches it through its model file, a dep (known only at run time)
        "conformal": ["conformal", "split_modes.group", "train.matrix", "train.seed", "tasks.${conformal.task}"],
        "report": ["report", "discover.hull_tolerance", "sources", "tasks", "train.matrix", "seed_spread.runs"],
        # seed_spread: its train stage's params, and the seeds
        "seed_spread": ["seed_spread.seeds", "tasks.${item.task}", "models.${item.model}", "train.seed",
                        "train.torch_threads"],
        "register": ["tasks", "train.matrix", "featurize.element_tables"],
        "lattice": ["lattice", "train.matrix", "featurize.element_tables"],
        "generate": ["generate", "tasks.${generate.space_group_task}", "featurize.element_tables"],
        "templates": ["templates", "sources.${templates.source}.name", "generate.scheduler", "generate.n_workers"],
        "references": ["references", "generate.search", "generate.scheduler", "generate.n_workers"],
        "existence": ["existence"],
        # discover: the generate search's settings and the space-group task it steers by, not the CSP benchmark's
        "discover": ["discover", "existence.max_elements", "generate.search", "generate.scheduler", "generate.n_workers",
                     "generate.space_group_task", "sources", "tasks.${generate.space_group_task}",
                     "featurize.element_tables"]}
    assert set(groups) == {f"train_{group}" for group in compose()["train"]["matrix"]}  # one matrix per group
    for name in groups:  # one definition (a YAML anchor), each group's own axes
        assert stages[name]["matrix"] == {axis: f"${{train.matrix.{name[6:]}.{axis}}}" for axis in ("task", "model")}
        assert stages[name]["params"] == ["tasks.${item.task}", "models.${item.model}", "train.seed", "train.torch_threads"]
        assert {"data/features", "data/split"} <= set(stages[name]["deps"])


def test_dvc_plot_definitions_are_up_to_date():
    plots = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["plots"]
    assert plots == dvc_plot_definitions(compose()), "regenerate dvc.yaml's plots section (command in its comment)"
    confusion = [p for p in plots if next(iter(p)).endswith("confusion.csv")]
    assert len(confusion) == 25 and all(next(iter(p.values()))["template"] == "confusion" for p in confusion)


def test_every_run_names_a_configured_task_and_model():
    params = load_params(REPO_ROOT / "params.yaml")
    runs = training_runs(params)
    for run in runs:
        assert run["task"] in params["tasks"] and run["model"] in params["models"]
    assert len(runs) == 34 and len({(r["task"], r["model"]) for r in runs}) == 34
    tasks = {"sg_from_geometry": {}}
    with pytest.raises(ValueError, match="train.matrix.knn"):
        training_runs({"tasks": tasks, "train": {"matrix": {"knn": {"task": "sg_from_geometry", "model": ["knn"]}}}})
    with pytest.raises(ValueError, match="not in the tasks section"):
        training_runs({"tasks": tasks, "train": {"matrix": {"a": {"task": ["volume"], "model": ["knn"]}}}})
    with pytest.raises(ValueError, match="sg_from_geometry-knn in more than one group"):
        training_runs({"tasks": tasks, "train": {"matrix": {g: {"task": ["sg_from_geometry"], "model": ["knn"]}
                                                            for g in ("a", "b")}}})


def test_every_source_has_its_chain_and_every_task_reads_configured_sources():
    params, stages = compose(), yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert set(params["sources"]) == {"primary", "cod_index", "oqmd_volume"}
    for name in ("download", "parse", "featurize"):  # one chain per source, declared once in params
        assert stages[name]["foreach"] == "${sources}" and "${key}" in stages[name]["do"]["cmd"]
    assert not any(key in yaml.safe_dump(stages) for key in params["sources"])  # no source named in dvc.yaml
    for name, task in params["tasks"].items():
        assert set(task_sources(task)) <= set(params["sources"]), name
    with pytest.raises(ValueError, match="lists keys of the `sources` section"):
        task_sources({"sources": "cod_index"})


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(KeyError, match="no 'split' section"):
        section({"data": {}}, "split")
    with pytest.raises(KeyError, match="lacks seed"):
        section({"split": {"method": "grouped"}}, "split", ["method", "seed"])
    with pytest.raises(FileNotFoundError, match="params.yaml"):
        load_params(tmp_path / "params.yaml")


def test_the_tiny_config_caps_every_epoch_count_on_every_task():
    """A task's model_overrides win over the model's own section: TINY must shrink those too."""
    from tiny_pipeline import TINY

    params = compose(TINY)
    for run in training_runs(params):
        cfg = model_config(params["tasks"][run["task"]], run["model"], params["models"])
        assert cfg.get("max_epochs", 0) <= 2, run
