"""What each DVC stage's code is: the import closure of its script inside src/xtalml, read with ast.

`python tests/code_deps.py` prints, per stage, the source files its script imports that dvc.yaml does not declare
(and declared source paths it never imports); tests/test_stage_deps.py fails on either.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path
from typing import Iterable, Mapping

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "xtalml"
SRC = Path("src")


def source_modules(root: Path = ROOT) -> dict[str, Path]:
    """{dotted module name: path relative to root} of every module of the package."""
    out = {}
    for path in sorted((root / SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root / SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path.relative_to(root)
    return out


def imported_modules(path: Path, modules: Mapping[str, Path], package: str | None = None) -> set[str]:
    """Modules of the package that a file imports anywhere (module level or inside a function), with the packages
    Python imports on the way (xtalml, xtalml.models ...)."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = (package or "").split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name in modules:
                parts = name.split(".")
                found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return found & set(modules)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """{module: modules of the package it imports} (a package's own parents left out: importing a submodule runs them
    first, that is no edge of the module's own)."""
    modules = source_modules(root)
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = imported_modules(root / path, modules, package) - parents - {name}
    return graph


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules (or one that imports itself), as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is small, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


# The package's layers, lowest first: a module imports modules of its own layer or of lower ones, never higher.
LAYERS = (
    ("xtalml", "numerics", "config", "chemistry", "progress", "tracking"),
    ("sources", "cif"),
    ("features", "splitting"),
    ("models", "tasks"),
    ("evaluation", "champions", "experiments"),
    ("training",),
    ("studies", "structures"),   # studies retrain through training; structures search with what models estimated
    ("discovery",),              # a chemical system's compositions ranked, searched with the structure search, on a hull
    ("predict",),
    ("serving",),
    ("api",),
    ("cli", "__main__"),
)


def layer_of(module: str) -> int:
    """The layer of a module of the package (by its first name below xtalml)."""
    part = module.split(".")[1] if "." in module else module
    for i, names in enumerate(LAYERS):
        if part in names:
            return i
    raise KeyError(f"{module} is in no layer of tests/code_deps.py LAYERS: add its package there")


def upward_imports(graph: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """(module, imported module) pairs where a module imports one on a higher layer."""
    return sorted((module, other) for module, imports in graph.items() for other in imports
                  if layer_of(other) > layer_of(module))


def script_of(cmd: str) -> Path | None:
    """The stages/<name>.py a stage's command runs."""
    found = [token for token in shlex.split(cmd) if re.fullmatch(r"stages/\w+\.py", token)]
    return Path(found[0]) if found else None


def code_closure(script: Path, root: Path = ROOT) -> set[Path]:
    """Source files (relative to root) a script runs: its package imports, and theirs, transitively."""
    modules = source_modules(root)
    graph = import_graph(root)
    todo = list(imported_modules(root / script, modules))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # a module's packages run before it
        todo += list(graph[name])
    return {modules[name] for name in seen}


def minimal_deps(files: Iterable[Path], root: Path = ROOT) -> list[str]:
    """The fewest dvc.yaml deps naming exactly these source files: a folder where every file in it is needed."""
    needed = set(files)
    out: list[str] = []

    def walk(folder: Path) -> None:
        everything = {p.relative_to(root) for p in (root / folder).rglob("*.py")}
        if everything and everything <= needed:
            out.append(str(folder))
            return
        for child in sorted((root / folder).iterdir()):
            rel = child.relative_to(root)
            if child.is_dir() and any(rel in p.parents for p in needed):
                walk(rel)
            elif rel in needed:
                out.append(str(rel))

    walk(SRC / PACKAGE)
    return out


def covered(path: Path, declared: Iterable[Path]) -> bool:
    """Whether a declared dep is the file or a folder above it."""
    return any(path == d or d in path.parents for d in declared)


def dep_problems(stages: Mapping[str, tuple[str, list[str]]], root: Path = ROOT) -> dict[str, dict[str, list[str]]]:
    """Per stage name ({name: (cmd, declared deps)}): source files its script imports that no dep covers
    ('missing'), declared source paths that hold no file it imports ('unused'), and the script itself if undeclared."""
    problems = {}
    for name, (cmd, deps) in stages.items():
        script = script_of(cmd)
        declared = [Path(d) for d in deps]
        if script is None:
            problems[name] = {"missing": [], "unused": [], "script": ["no stages/<name>.py on its cmd"]}
            continue
        needed = code_closure(script, root)
        missing = sorted(str(p) for p in needed if not covered(p, declared))
        unused = sorted(str(d) for d in declared if d.parts[:2] == (str(SRC), PACKAGE)
                        and not any(p == d or d in p.parents for p in needed))
        script_missing = [] if script in declared else [str(script)]
        if missing or unused or script_missing:
            problems[name] = {"missing": missing, "unused": unused, "script": script_missing}
    return problems


def dvc_stages(root: Path = ROOT) -> dict[str, tuple[str, list[str], list[str]]]:
    """{stage name: (cmd, deps, outs incl. metrics and plots)} as DVC resolves dvc.yaml with params.yaml."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        out = {}
        for stage in repo.index.stages:
            if not getattr(stage, "cmd", None):
                continue
            deps = [str(Path(d.def_path)) for d in stage.deps if not isinstance(d, ParamsDependency)]
            outs = [str(Path(o.def_path)) for o in stage.outs]
            out[stage.addressing] = (stage.cmd if isinstance(stage.cmd, str) else " ".join(stage.cmd), deps, outs)
        return out


def path_problems(stages: Mapping[str, tuple[str, list[str], list[str]]]) -> dict[str, list[str]]:
    """Per stage: data deps and outs that its cmd does not name exactly once, and repository paths on its cmd that
    it does not declare. Source files are named by the import closure instead; the script is on the cmd."""
    problems = {}
    for name, (cmd, deps, outs) in stages.items():
        tokens = shlex.split(cmd)
        found = []
        data = [d for d in deps if not d.startswith(f"{SRC}/")] + list(outs)
        for path in data:
            count = tokens.count(path)
            if count != 1:
                found.append(f"{path} is on the cmd {count} times")
        declared = set(deps) | set(outs)
        for token in tokens:
            if re.match(r"(data|models|metrics|plots|reports|stages|src)/", token) and token not in declared:
                found.append(f"{token} is on the cmd but not among its deps or outs")
        if found:
            problems[name] = found
    return problems


if __name__ == "__main__":
    import sys

    if sys.argv[1:]:  # python tests/code_deps.py stages/train.py: the code deps to declare for that script
        for line in minimal_deps(code_closure(Path(sys.argv[1]))):
            print(f"        - {line}")
        raise SystemExit
    resolved = dvc_stages()
    for stage, issues in dep_problems({n: (c, d) for n, (c, d, _) in resolved.items()}).items():
        print(stage, issues)
    for stage, issues in path_problems(resolved).items():
        print(stage, issues)
    print("import cycles:", import_cycles(import_graph()))
    print("imports of a higher layer:", upward_imports(import_graph()))
