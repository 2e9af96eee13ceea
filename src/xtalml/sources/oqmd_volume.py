"""OQMD volume per atom: the pre-split CrabNet benchmark (formula, Å³/atom), read out of the crabnet wheel."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from xtalml.sources.wheels import default_cache_dir, extract_folder, fetch_wheel

OQMD_VOLUME_FOLDER = "crabnet/data/benchmark_data/OQMD_Volume_per_atom/"


def read_oqmd_volume(folder: Path, parts: tuple[str, ...] = ("train", "val", "test"),
                     limit: int | None = None) -> pd.DataFrame:
    """Rows (formula, volume_per_atom, published_split) of the benchmark's CSV files, in file order."""
    frames = []
    for part in parts:
        path = Path(folder) / f"{part}.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: the OQMD benchmark has {', '.join(parts)}.csv")
        table = pd.read_csv(path, dtype={"formula": str}, nrows=limit)
        if list(table.columns) != ["formula", "target"]:
            raise ValueError(f"{path}: expected columns formula,target, found {','.join(table.columns)}")
        frames.append(table.rename(columns={"target": "volume_per_atom"}).assign(published_split=part))
    return pd.concat(frames, ignore_index=True)


def copy_oqmd_volume(cfg: Mapping[str, Any], dest: Path) -> dict[str, Path]:
    """Fetch the pinned crabnet wheel (hash checked), copy only the benchmark's part files to dest.

    With cfg['limit'], each part keeps its first `limit` rows (small configs); returns {'oqmd_<part>': path}.
    """
    if cfg["folder"] != OQMD_VOLUME_FOLDER:
        raise ValueError(f"only {OQMD_VOLUME_FOLDER} may be read from the crabnet wheel, not {cfg['folder']!r}")
    cache = Path(cfg["cache_dir"]).expanduser() if cfg.get("cache_dir") else default_cache_dir()
    wheel = fetch_wheel(cfg["wheel"], cfg["sha256"], cache, python_version=cfg.get("python_version"))
    extract_folder(wheel, cfg["folder"], dest, suffix=".csv")
    parts = tuple(cfg.get("parts") or ("train", "val", "test"))
    for path in dest.glob("*.csv"):
        if path.stem not in parts:
            path.unlink()
        elif cfg.get("limit") is not None:
            pd.read_csv(path, dtype={"formula": str}, nrows=int(cfg["limit"])).to_csv(path, index=False)
    return {f"oqmd_{part}": dest / f"{part}.csv" for part in parts}


def load_oqmd_volume(cfg: Mapping[str, Any], dest: Path) -> pd.DataFrame:
    """Fetch the pinned crabnet wheel (hash checked), copy only the benchmark folder to dest, read it."""
    copy_oqmd_volume(cfg, dest)
    return read_oqmd_volume(dest, tuple(cfg.get("parts") or ("train", "val", "test")))
