"""dvc.yaml declares what each stage runs and touches: its code deps are the import closure of its script, every path
it reads or writes is on its cmd once, and src/xtalml has no import circle and no import of a higher layer."""

import pytest
from code_deps import (ROOT, code_closure, dep_problems, dvc_stages, import_cycles, import_graph, layer_of,
                       minimal_deps, path_problems, upward_imports)


@pytest.fixture(scope="module")
def stages():
    return dvc_stages()


def test_every_stage_declares_the_code_its_script_imports(stages):
    problems = dep_problems({name: (cmd, deps) for name, (cmd, deps, _) in stages.items()})
    assert not problems, "dvc.yaml's code deps differ from the scripts' imports (`python tests/code_deps.py`):\n" + "\n".join(
        f"{name}: {issues}" for name, issues in problems.items())


def test_the_check_fails_when_a_dep_goes_missing_or_is_not_imported(stages):
    cmd, deps, _ = stages["train_classifier@sg_from_geometry-knn"]
    assert "src/xtalml/tasks.py" in deps and "src/xtalml/features" in deps
    less = [d for d in deps if d != "src/xtalml/tasks.py"]
    assert dep_problems({"train": (cmd, less)})["train"]["missing"] == ["src/xtalml/tasks.py"]
    cmd, deps, _ = stages["split"]
    assert dep_problems({"split": (cmd, [*deps, "src/xtalml/serving.py"])})["split"]["unused"] == ["src/xtalml/serving.py"]
    # a folder dep covers its files: the parse stage needs every reader in sources/ through cif/dataset.py
    cmd, deps, _ = stages["parse@cod_index"]
    assert "src/xtalml/sources" in deps and "src/xtalml/sources/cod_index.py" not in deps
    assert ROOT.joinpath("src/xtalml/sources/cod_index.py").relative_to(ROOT) in code_closure(ROOT / "stages/parse.py")


def test_minimal_deps_name_a_folder_only_when_every_file_in_it_is_needed():
    closure = code_closure(ROOT / "stages/split.py")
    assert minimal_deps(closure) == ["src/xtalml/__init__.py", "src/xtalml/chemistry.py", "src/xtalml/config.py",
                                     "src/xtalml/numerics.py", "src/xtalml/splitting.py"]


def test_every_path_a_stage_reads_or_writes_is_on_its_cmd_once(stages):
    problems = path_problems(stages)
    assert not problems, "\n".join(f"{name}: {issues}" for name, issues in problems.items())
    cmd, deps, outs = stages["lattice"]
    assert path_problems({"lattice": (cmd.replace(" --split data/split", ""), deps, outs)}) == {
        "lattice": ["data/split is on the cmd 0 times"]}
    assert path_problems({"lattice": (cmd + " --extra data/sources/other.parquet", deps, outs)}) == {
        "lattice": ["data/sources/other.parquet is on the cmd but not among its deps or outs"]}


def test_no_import_circle_in_the_package():
    assert import_cycles(import_graph()) == []
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert import_cycles(graph) == [["a", "b", "c"], ["e"]]


def test_no_module_imports_one_on_a_higher_layer():
    graph = import_graph()
    assert upward_imports(graph) == [], "a module imports one on a higher layer (tests/code_deps.py LAYERS)"
    assert layer_of("xtalml.studies.ablation") > layer_of("xtalml.training") > layer_of("xtalml.evaluation.metrics")
    assert layer_of("xtalml.predict") > layer_of("xtalml.structures.search")
    assert upward_imports({"xtalml.structures.search": {"xtalml.predict"}}) == [("xtalml.structures.search",
                                                                                  "xtalml.predict")]
