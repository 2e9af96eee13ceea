"""The parse stage: every raw record becomes a structure row or a reject row with its reason."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xtalml.chemistry import FormulaError, hill_formula, parse_formula, reduced_formula
from xtalml.cif.parse import parse_cif
from xtalml.cif.pool import map_with_timeout
from xtalml.progress import progress
from xtalml.cif.symmetry import space_group_info
from xtalml.sources.cod_index import read_cod_index
from xtalml.sources.download import FAILURES_NAME
from xtalml.sources.manifest import read_manifest
from xtalml.sources.oqmd_volume import read_oqmd_volume

STRUCTURE_COLUMNS = [
    "id", "source", "formula_sum", "formula", "reduced_formula", "formula_error", "elements", "n_elements",
    "a", "b", "c", "alpha", "beta", "gamma", "volume_given", "volume_cell", "z", "z_from_sites",
    "atoms_in_cell", "atoms_error", "atoms_in_cell_sites", "sg_number", "sg_symbol", "sg_source", "crystal_system",
    "bravais_lattice", "year", "temperature_k", "pressure_kpa", "e_above_hull", "volume_per_atom_given",
    "published_split"]
REJECT_COLUMNS = ["id", "source", "stage", "reason"]


def _composition_columns(formula: str) -> dict:
    try:
        amounts = parse_formula(formula)
    except FormulaError as exc:
        return {"formula": formula, "reduced_formula": "".join(str(formula).split()),
                "formula_error": str(exc), "elements": [], "n_elements": 0}
    hill = hill_formula(amounts)
    return {"formula": hill, "reduced_formula": reduced_formula(hill), "formula_error": None,
            "elements": sorted(amounts), "n_elements": len(amounts)}


def index_structures(index_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Structure rows (composition and symmetry, no cell) from the COD index; duplicates rejected."""
    index = read_cod_index(index_path)
    index["id"] = "cod-" + index["cod_id"]
    duplicated = index["id"].duplicated(keep="first")
    rejects = pd.DataFrame({"id": index.loc[duplicated, "id"], "reason": "duplicate COD id in the index"})
    index = index.loc[~duplicated]
    bad_sg = index["sg_number"].isna() | ~index["sg_number"].between(1, 230)
    rejects = pd.concat([rejects, pd.DataFrame({"id": index.loc[bad_sg, "id"], "reason": "space-group number missing or outside 1-230"})])
    index = index.loc[~bad_sg]
    comp = {f: _composition_columns(f) for f in progress(index["formula"].unique(), desc="parse formulas", unit="formula")}
    rows = []
    for rid, formula, sg, e_hull in zip(index["id"], index["formula"], index["sg_number"], index["e_above_hull"]):
        symbol, system, lattice = space_group_info(int(sg))
        rows.append({"id": rid, "formula_sum": formula, **comp[formula], "sg_number": int(sg), "sg_symbol": symbol,
                     "sg_source": "index", "crystal_system": system, "bravais_lattice": lattice,
                     "e_above_hull": e_hull})
    return pd.DataFrame(rows), rejects


def volume_table_structures(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Structure rows (composition, volume per atom, published part) from the OQMD benchmark's part files."""
    parts = tuple(sorted({p.stem for p in folder.glob("*.csv")}, key=("train", "val", "test").index))
    table = read_oqmd_volume(folder, parts)
    table["id"] = "oqmd-" + table["published_split"] + "-" + table.groupby("published_split").cumcount().astype(str)
    comp = {f: _composition_columns(f) for f in progress(table["formula"].unique(), desc="parse formulas", unit="formula")}
    rows = pd.DataFrame([comp[f] for f in table["formula"]])
    rows.insert(0, "id", table["id"].to_numpy())
    rows["formula_sum"] = table["formula"].to_numpy()
    rows["volume_per_atom_given"] = table["volume_per_atom"].to_numpy()
    rows["published_split"] = table["published_split"].to_numpy()
    return rows, pd.DataFrame(columns=["id", "reason"])


def cif_structures(paths: dict[str, Path], workers: int, timeout_s: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse CIF files in parallel; a file that fails, crashes its worker or times out becomes a reject."""
    key_of = {str(p): k for k, p in paths.items()}
    rows, rejects = [], []
    results = map_with_timeout(parse_cif, [str(p) for p in paths.values()], workers, timeout_s)
    for item, status, result in progress(results, total=len(paths), desc="parse CIFs", unit="file"):
        key = key_of[item]
        if status == "ok":
            file_rows, file_rejects = result
            for row in file_rows:
                row["id"] = key + row["id"][len(Path(item).stem):]
            rows += file_rows
            rejects += [{"id": key + r["id"][len(Path(item).stem):], "reason": r["reason"]} for r in file_rejects]
        else:
            rejects.append({"id": key, "reason": f"{status}: {result}"})
    return pd.DataFrame(rows), pd.DataFrame(rejects, columns=["id", "reason"])


def parse_raw(raw_dir: Path, workers: int = 2, timeout_s: float = 30.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(structures, rejects) for everything the download stage put in raw_dir."""
    manifest = read_manifest(raw_dir)
    source = str(manifest["source"].iloc[0]) if len(manifest) else "unknown"
    failures_path = raw_dir / FAILURES_NAME
    download_rejects = pd.read_csv(failures_path, dtype=str) if failures_path.exists() else pd.DataFrame(columns=["id", "reason"])
    download_rejects["stage"] = "download"
    if source == "cod_index":
        structures, rejects = index_structures(raw_dir / manifest["path"].iloc[0])
    elif source == "oqmd_volume":
        structures, rejects = volume_table_structures((raw_dir / manifest["path"].iloc[0]).parent)
    else:
        paths = {k: raw_dir / p for k, p in zip(manifest["id"], manifest["path"])}
        structures, rejects = cif_structures(paths, workers, timeout_s)
    rejects["stage"] = "parse"
    rejects = pd.concat([download_rejects, rejects], ignore_index=True)
    rejects["source"] = source
    structures = structures.reindex(columns=STRUCTURE_COLUMNS)
    structures["source"] = source
    for col in ("sg_number",):
        structures[col] = structures[col].astype("Int64")
    for col in ("formula_error", "atoms_error", "sg_symbol", "sg_source", "crystal_system", "bravais_lattice",
                "published_split"):
        structures[col] = structures[col].astype("string")
    structures["elements"] = structures["elements"].map(lambda v: list(v) if isinstance(v, list) else [])
    float_cols = [c for c in STRUCTURE_COLUMNS if c not in (
        "id", "source", "formula_sum", "formula", "reduced_formula", "formula_error", "atoms_error", "elements",
        "n_elements", "sg_number", "sg_symbol", "sg_source", "crystal_system", "bravais_lattice", "published_split")]
    structures[float_cols] = structures[float_cols].astype(float)
    structures["n_elements"] = structures["n_elements"].fillna(0).astype(int)
    structures = structures.sort_values("id", kind="stable").reset_index(drop=True)
    rejects = rejects.reindex(columns=REJECT_COLUMNS).sort_values(["stage", "id"], kind="stable").reset_index(drop=True)
    return structures, rejects


def summarise_rejects(rejects: pd.DataFrame, top: int = 5) -> dict:
    """Counts of rejects by stage and the most common reasons (quoted inputs, file positions and decimals folded)."""
    reasons = (rejects["reason"].astype(str).str.replace(r"'[^']*'", "'...'", regex=True)
               .str.replace(r"\S+\.cif:\d+(:\d+\(\d+\))?( in data_\S*?)?(?=:)", "...", regex=True)
               .str.replace(r"\d+\.\d+", "#", regex=True).str.slice(0, 100))
    return {"total": int(len(rejects)), "by_stage": rejects["stage"].value_counts().to_dict(),
            "top_reasons": reasons.value_counts().head(top).to_dict()}

