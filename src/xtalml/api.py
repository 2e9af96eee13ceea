"""xtalml from Python: `load` a project's trained models, then `predict`, `generate` and `discover`; the CLI calls the same."""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from xtalml.champions import registered_champions
from xtalml.cif.parse import MAX_FILE_BYTES
from xtalml.config import load_params
from xtalml.predict import (PREDICT_TASKS, Predictor, answers_table, calibration_for, default_timeout,
                            formula_estimates, load_predictor, predict_cifs, predict_formulas)

PROJECT_FILES = ("dvc.yaml", "params.yaml")  # what marks the folder `dvc repro` ran in
FILE_SUFFIXES = (".cif", ".txt", ".csv")
SEARCH_TASKS = ("sg_from_composition", "volume_per_atom_from_composition")


def find_project(start: str | os.PathLike | None = None) -> Path:
    """The project folder: `start` (default: the working directory) or the nearest folder above it that holds
    dvc.yaml and params.yaml."""
    here = Path(start if start is not None else Path.cwd()).expanduser().resolve()
    if start is not None and not here.is_dir():
        raise FileNotFoundError(f"project folder {here} does not exist: give the folder of an xtalml clone")
    for folder in (here, *here.parents):
        if all((folder / name).is_file() for name in PROJECT_FILES):
            return folder
    raise FileNotFoundError(f"no xtalml project (a folder with {' and '.join(PROJECT_FILES)}) at {here} or above: "
                            f"give the folder `dvc repro` ran in (xtalml.load('FOLDER'), or --project FOLDER)")


def is_path(item: str | os.PathLike) -> bool:
    """Whether an input names a file: a Path, a name with a path separator, or a .cif/.txt/.csv suffix."""
    if isinstance(item, os.PathLike):
        return True
    # formulas never hold a path separator or end in a file suffix ("Fe0.5O" has the suffix ".5O")
    return Path(item).suffix.lower() in FILE_SUFFIXES or os.sep in item or "/" in item


def formula_lines(path: Path) -> list[str]:
    """Formulas of a .txt file (one a line) or a .csv file (first column; a 'formula' header is skipped)."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"file larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not a UTF-8 text file (byte {exc.start} cannot be decoded)") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if path.suffix.lower() == ".csv":
        lines = [line.split(",")[0].strip() for line in lines]
        if lines and lines[0].lower() == "formula":
            lines = lines[1:]
    return lines


def read_inputs(items: Iterable[str | os.PathLike]) -> list[tuple[str, str, str]]:
    """Each input as (kind, text, input) in order: ("formula", formula, input), ("cif", path, path) or
    ("error", reason, input); a .txt or .csv file gives one formula entry per line."""
    out: list[tuple[str, str, str]] = []
    for item in items:
        if not is_path(item):
            out.append(("formula", str(item), str(item)))
            continue
        path, label = Path(item), str(item)
        suffix = path.suffix.lower()
        try:
            if not path.exists():
                out.append(("error", "CIF file not found" if suffix == ".cif" else "file not found", label))
            elif path.is_dir():
                out.append(("error", "is a directory: give CIF files (.cif) or formula files (.txt, .csv)", label))
            elif suffix == ".cif":
                out.append(("cif", label, label))
            elif suffix in (".txt", ".csv"):
                out += [("formula", formula, formula) for formula in formula_lines(path)]
            else:
                out.append(("error", f"unsupported file type {suffix or '(none)'!r}: give .cif, .txt or .csv files",
                            label))
        except OSError as exc:
            out.append(("error", f"cannot read: {exc.strerror or exc}", label))
        except ValueError as exc:
            out.append(("error", str(exc), label))
    return out


def answers_frame(entries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Project.answers as one table, a row per entry in order: the columns of `xtalml predict --format csv`, and
    `error` (empty where the entry is an answer)."""
    good = [e for e in entries if "error" not in e]
    table = answers_table(good) if good else pd.DataFrame(columns=["input", "formula"])
    rows, answered = [], iter(table.to_dict("records"))
    for entry in entries:
        rows.append({"input": entry["input"], "formula": entry.get("formula"), "error": entry["error"]}
                    if "error" in entry else next(answered))
    return pd.DataFrame(rows, columns=[*table.columns, "error"]).astype({"error": object})


@dataclass
class Candidate:
    """A ranked candidate structure of a formula: the relaxed pymatgen Structure and the figures `xtalml generate`
    prints of it (all of them in `info`)."""

    formula: str
    rank: int
    structure: Any  # pymatgen.core.Structure
    space_group_number: int
    energy_per_atom: float | None
    formation_energy_per_atom: float | None
    source: str  # "template" (a known structure, elements substituted) or "pyxtal"
    prototype: str | None
    info: dict[str, Any] = field(repr=False)
    cif_text: str = field(repr=False)
    cif_name: str = field(repr=False)

    def to_cif(self, path: str | os.PathLike) -> Path:
        """Write the CIF (its comments say where it came from and its energies) to path, or into path if it is a
        folder; returns the file written."""
        path = Path(path)
        if path.is_dir():
            path = path / self.cif_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.cif_text)
        return path

    def as_dict(self) -> dict[str, Any]:
        """The candidate as `xtalml generate --format json` prints it."""
        return dict(self.info)


@dataclass
class Generated:
    """Candidates of several formulas, best first, and {formula: reason} for those that found none."""

    candidates: dict[str, list[Candidate]]
    errors: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        """What `xtalml generate --format json` prints."""
        return {"structures": [{"input": formula, "candidates": [c.as_dict() for c in found]}
                               for formula, found in self.candidates.items()], "errors": dict(self.errors)}


@dataclass
class Discovered:
    """What discover found: one row per proposal (best first within each system), each system's PhaseDiagram, its
    hull picture, and {input: reason} for systems that could not be searched."""

    proposals: pd.DataFrame
    hulls: dict[str, Any]
    pictures: dict[str, str]
    errors: dict[str, str]
    systems: list[str]

    def as_dict(self) -> dict[str, Any]:
        """What `xtalml discover --format json` prints."""
        from xtalml.discovery.discover import proposals_json

        return {"systems": self.systems, "proposals": proposals_json(self.proposals), "hull_pictures": self.pictures,
                "errors": dict(self.errors)}


class Project:
    """A project's trained models, loaded once: predict symmetry, volume and cell, and generate structures."""

    def __init__(self, root: Path | None, predictor: Predictor, *, models_dir: Path | None = None,
                 scheduler: str | None = None, workers: int | None = None):
        self.root, self.predictor = root, predictor
        self.models_dir = models_dir if models_dir is not None else (root / "models" if root else None)
        self.templates_path = root / "data/templates/library.parquet" if root else None  # the templates stage's
        self.references_path = root / "data/references/references.parquet" if root else None  # the references stage's
        self.scheduler, self.workers = scheduler, workers
        self._search: dict[str, Any] | None = None
        self._client_context = None
        self._client = None
        self._discovery: dict[str, Any] | None = None

    def __repr__(self) -> str:
        models = {task: bundle.get("name") for task, bundle in self.predictor.bundles.items()}
        return f"Project({str(self.root) if self.root else 'registered predictor'!r}, models={models})"

    @property
    def models(self) -> dict[str, str]:
        """{task: model} of the models that answer."""
        return {task: bundle.get("name") for task, bundle in self.predictor.bundles.items()}

    @property
    def search_settings(self) -> Any:
        """The structure search's settings (params.yaml's generate.search), as a SearchSettings."""
        return self._search_inputs()["settings"]

    def answers(self, inputs: str | os.PathLike | Iterable[str | os.PathLike], coverage: float | None = None, *,
                timeout: float | None = None) -> list[dict[str, Any]]:
        """One entry per answer in input order: the answer as `xtalml predict --format json` prints it, or
        {"input", "error"} for an input that cannot be answered (a CIF file gives one answer per structure)."""
        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        if coverage is not None:
            if not 0 < coverage < 1:
                raise ValueError(f"coverage must lie strictly between 0 and 1, got {coverage}")
            calibration_for(self.predictor)  # fail before any work when the sets cannot be made
        entries = read_inputs(inputs)
        formulas = [text for kind, text, _ in entries if kind == "formula"]
        cifs = list(dict.fromkeys(text for kind, text, _ in entries if kind == "cif"))
        answers, formula_errors = predict_formulas(self.predictor, formulas, coverage)
        if timeout is None:
            timeout = default_timeout(self._params_path())
        cif_answers, cif_errors = predict_cifs(self.predictor, [Path(p) for p in cifs], coverage, timeout)
        formula_answers = iter(answers)
        out: list[dict[str, Any]] = []
        for kind, text, label in entries:
            if kind == "error":
                out.append({"input": label, "error": text})
            elif kind == "formula":
                out.append({"input": label, "formula": text, "error": formula_errors[text]} if text in formula_errors
                           else next(formula_answers))
            else:
                out += [a for a in cif_answers if a["input"] == text]
                out += [{"input": key, "error": reason} for key, reason in cif_errors.items()
                        if key == text or key.startswith(f"{text} (")]
        return out

    def predict(self, inputs: str | os.PathLike | Iterable[str | os.PathLike], coverage: float | None = None, *,
                timeout: float | None = None) -> pd.DataFrame:
        """One row per answer, in input order, with the columns of `xtalml predict --format csv` and an `error`
        column that holds the reason where an input cannot be answered (one bad input never stops the others).
        coverage: also a split-conformal set of space groups holding the true one with that frequency (e.g. 0.9)."""
        return answers_frame(self.answers(inputs, coverage, timeout=timeout))

    def generate(self, formula: str, candidates: int | None = None, *, out: str | os.PathLike | None = None,
                 pictures: bool = False, search: Mapping[str, Any] | None = None) -> list[Candidate]:
        """Ranked candidate structures of one formula, best first (known structures with its elements, PyXtal
        structures in the predicted groups, relaxed with CHGNet); ValueError naming the formula when none is found.
        out: also write their CIFs (and with pictures, PNGs) under out/<formula>/. search: settings of
        params.yaml's generate.search to change for this call, e.g. {"steps": 400}."""
        result = self.generate_many([formula], candidates, out=out, pictures=pictures, search=search)
        if formula in result.errors:
            raise ValueError(f"{formula}: {result.errors[formula]}")
        return result.candidates[formula]

    def generate_many(self, formulas: Iterable[str], candidates: int | None = None, *,
                      out: str | os.PathLike | None = None, pictures: bool = False,
                      search: Mapping[str, Any] | None = None, exclude_own_formula: bool = False) -> Generated:
        """generate for several formulas on one Dask cluster: candidates per formula and {formula: reason}.
        exclude_own_formula: never a known structure of the formula itself (as CSP benchmarks rule)."""
        from xtalml.structures.search import SearchSettings, generate_structures

        formulas = list(dict.fromkeys(str(f) for f in formulas))
        inputs = self._search_inputs()
        settings = inputs["settings"]
        if search:
            settings = SearchSettings.from_params({**dataclasses.asdict(settings), **search})
        if candidates is not None:
            if int(candidates) < 1:
                raise ValueError(f"candidates must be at least 1, got {candidates}")
            settings = dataclasses.replace(settings, candidates=int(candidates))
        if not formulas:
            return Generated({}, {})
        answer = generate_structures(formulas, formula_estimates(self.predictor, formulas), inputs["lattice"],
                                     settings, self._dask(), None if out is None else Path(out), inputs["library"],
                                     inputs["references"], pictures=pictures, keep_structures=True,
                                     exclude_own_formula=exclude_own_formula)
        found = {}
        for entry in answer["structures"]:
            found[entry["input"]] = [_candidate(entry["input"], row) for row in entry["candidates"]]
        return Generated(found, dict(answer["errors"]))

    def discover(self, systems: str | Iterable[str], *, compositions: int | None = None, max_atoms: int | None = None,
                 out: str | os.PathLike | None = None, pictures: bool = True, max_e_hull: float | None = None,
                 max_formation_energy: float | None = None, prototype: str | None = None,
                 search: Mapping[str, Any] | None = None) -> "Discovered":
        """Proposed compounds of chemical systems ('Ca-Ti-O'): their compositions (and their subsystems') ranked by the
        existence model, the best `compositions` searched as generate searches, the library's known structures of the
        system relaxed the same way, all on a convex hull of CHGNet formation energy. Each proposal has its space
        group, template, formation energy, energy above the hull, and whether a source of ours holds its formula.
        Conditions keep proposals at most max_e_hull above the hull, with formation energy at most
        max_formation_energy, from a template whose prototype names `prototype` ('perovskite', 'Heusler').
        out: CIFs of the proposals and (pictures) a hull picture per system under out/<system>/."""
        from xtalml.discovery.compositions import ChemicalSystemError, parse_system, system_name
        from xtalml.discovery.discover import DiscoverSettings, discover_systems, proposals_table

        inputs = self._search_inputs()
        discovery = self._discovery_inputs()
        cfg = dict(discovery["settings"])
        cfg.pop("benchmark", None)
        if compositions is not None:
            cfg["compositions"] = int(compositions)
        if max_atoms is not None:
            cfg["max_atoms"] = int(max_atoms)
        if search:
            cfg["search"] = {**cfg.get("search", {}), **search}
        settings = DiscoverSettings.from_params(cfg)
        if settings.compositions < 1:
            raise ValueError(f"compositions must be at least 1, got {settings.compositions}")
        parsed, errors = [], {}
        for text in [systems] if isinstance(systems, str) else list(systems):
            try:
                parsed.append(parse_system(text, max_elements=discovery["max_elements"]))
            except ChemicalSystemError as exc:
                errors[str(text)] = str(exc)
        parsed = list(dict.fromkeys(parsed))
        result = {"systems": [], "errors": {}}
        if parsed:
            result = discover_systems(parsed, estimate=lambda formulas: formula_estimates(self.predictor, formulas),
                                      existence=discovery["model"].existence, settings=settings,
                                      search=inputs["settings"], client=self._dask(), library=inputs["library"],
                                      lattice=inputs["lattice"], references=inputs["references"],
                                      known=discovery["known"], out_dir=None if out is None else Path(out),
                                      pictures=pictures)
        table = proposals_table(result, max_e_hull=max_e_hull, max_formation_energy=max_formation_energy,
                                prototype=prototype)
        hulls = {entry["system"]: entry["diagram"] for entry in result["systems"]}
        pngs = {entry["system"]: entry["hull_png"] for entry in result["systems"] if entry.get("hull_png")}
        names = {system_name(p) for p in parsed}
        return Discovered(table, hulls, pngs, errors | dict(result["errors"]), sorted(names))

    def _discovery_inputs(self) -> dict[str, Any]:
        """The existence model, params.yaml's discover section and every source's formulas (what is known), read once."""
        if self._discovery is not None:
            return self._discovery
        import joblib

        from xtalml.discovery.existence import known_keys

        path = self.models_dir / "existence" / "existence.pkl"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run `dvc repro existence` in the project")
        bundle = joblib.load(path)
        params = load_params(self.root / "params.yaml")
        formulas = {}
        for source in sorted(params.get("sources", {})):
            table = self.root / "data" / "sources" / source / "structures.parquet"
            if table.exists():
                formulas[source] = pd.read_parquet(table, columns=["formula"])["formula"]
            else:
                warnings.warn(f"{table} is missing (`dvc repro parse@{source}`): proposals are not checked against "
                              f"{source}", stacklevel=3)
        self._discovery = {"model": bundle["model"], "max_elements": int(bundle["max_elements"]),
                           "settings": params["discover"], "known": known_keys(formulas)}
        return self._discovery

    def close(self) -> None:
        """Shut down the Dask cluster that generate started (a later generate starts another)."""
        if self._client_context is not None:
            self._client_context.__exit__(None, None, None)
        self._client_context = self._client = None

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _params_path(self) -> Path:
        return self.predictor.params_path

    def _search_inputs(self) -> dict[str, Any]:
        """params.yaml's generate settings, the lattice model, the template library and the elemental references of
        the project, read once; a missing one is warned about, naming the stage that makes it."""
        if self._search is not None:
            return self._search
        import joblib

        from xtalml.structures.search import SearchSettings

        if self.root is None:
            raise FileNotFoundError("generate needs a project folder (its lattice model, templates and references): "
                                    "xtalml.load('path/to/clone')")
        try:
            cfg = load_params(self.root / "params.yaml")["generate"]
        except KeyError:
            raise FileNotFoundError(f"{self.root / 'params.yaml'} has no `generate` section") from None
        settings = SearchSettings.from_params(cfg["search"])
        lattice_path = self.models_dir / "lattice" / "lattice.pkl"
        lattice = joblib.load(lattice_path) if lattice_path.exists() else None
        if lattice is None:
            warnings.warn(f"{lattice_path} is missing (`dvc repro lattice`): PyXtal's own cell shapes are used",
                          stacklevel=3)
        templates = Path(self.templates_path)
        library = pd.read_parquet(templates) if templates.exists() else None
        if library is None:
            warnings.warn(f"{templates} is missing (`dvc repro templates`): PyXtal candidates only", stacklevel=3)
        references_path = Path(self.references_path)
        references = {}
        if references_path.exists():
            references = pd.read_parquet(references_path).set_index("element").to_dict("index")
        else:
            warnings.warn(f"{references_path} is missing (`dvc repro references`): no formation energies",
                          stacklevel=3)
        self._search = {"settings": settings, "lattice": lattice, "library": library, "references": references,
                        "scheduler": cfg.get("scheduler"), "n_workers": cfg.get("n_workers")}
        return self._search

    def _dask(self):
        """A client of the cluster at the scheduler given (or generate.scheduler), else of a local cluster, started
        once and kept for later calls until close()."""
        if self._client is None:
            from xtalml.structures.search import dask_client

            search = self._search_inputs()
            self._client_context = dask_client(self.scheduler or search["scheduler"],
                                               self.workers or search["n_workers"])
            self._client = self._client_context.__enter__()
        return self._client


def _candidate(formula: str, row: Mapping[str, Any]) -> Candidate:
    info = {k: v for k, v in row.items() if k not in ("structure", "cif_text", "cif_name")}
    return Candidate(formula=formula, rank=int(row["rank"]), structure=row["structure"],
                     space_group_number=int(row["space_group_number"]), energy_per_atom=row["energy_per_atom"],
                     formation_energy_per_atom=row["formation_energy_per_atom"], source=row["source"],
                     prototype=row["prototype"], info=info, cif_text=row["cif_text"], cif_name=row["cif_name"])


def load(project: str | os.PathLike | None = None, *, models: Mapping[str, str] | None = None,
         models_dir: str | os.PathLike | None = None, model_uri: str | None = None, tracking_uri: str | None = None,
         mlflow_runs: Sequence[str] = (), tasks: Sequence[str] = PREDICT_TASKS, scheduler: str | None = None,
         workers: int | None = None) -> Project:
    """The trained models of a project: its folder (default: the working directory or the nearest one above it
    holding dvc.yaml and params.yaml), each task's champion unless `models` names another ({task: model}), or a
    registered predictor (model_uri such as "models:/xtalml-predictor@champion", at tracking_uri). Missing models
    raise FileNotFoundError naming the `dvc repro` stage to run. tasks: the tasks to load (generate needs only
    space groups and volumes from composition). scheduler, workers: the Dask cluster generate uses."""
    root = None
    if model_uri is None or project is not None:
        root = find_project(project)
    elif project is None:
        try:
            root = find_project()
        except FileNotFoundError:
            root = None  # a registered predictor needs no project; generate then says it does
    if model_uri is not None:
        return Project(root, _registered_predictor(model_uri, tracking_uri), scheduler=scheduler, workers=workers)
    unknown = sorted((set(models or {}) | set(tasks)) - set(PREDICT_TASKS))
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; predict answers {', '.join(PREDICT_TASKS)}")
    folder = Path(models_dir) if models_dir is not None else root / "models"
    if not folder.is_absolute():
        folder = Path.cwd() / folder
    named = {task: model for task, model in (models or {}).items() if task in tasks}
    choice = registered_champions([t for t in tasks if t not in named], root / "metrics" / "register.json") | named
    predictor = load_predictor(folder, choice, mlflow_runs, tracking_uri, serving=True)
    predictor.params_path = root / "params.yaml"
    return Project(root, predictor, models_dir=folder, scheduler=scheduler, workers=workers)


def _registered_predictor(model_uri: str, uri: str | None) -> Predictor:
    """The Predictor inside a registered xtalml-predictor pyfunc (FileNotFoundError when it cannot be loaded)."""
    import mlflow

    from xtalml.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(uri))
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:  # MLflow raises several types for a missing model, alias or store
        raise FileNotFoundError(f"cannot load {model_uri}: {exc}") from exc
    predictor = getattr(model.unwrap_python_model(), "predictor", None)
    if not isinstance(predictor, Predictor):
        raise FileNotFoundError(f"{model_uri} is not an xtalml predictor (register writes xtalml-predictor)")
    return predictor
