"""The manifest every download writes: one row per raw file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xtalml.sources.wheels import file_sha256

MANIFEST_NAME = "manifest.csv"


def write_manifest(raw_dir: Path, files: dict[str, Path], source: str) -> pd.DataFrame:
    """Write manifest.csv (id, path relative to raw_dir, sha256, size, source) and return it."""
    rows = [{"id": key, "path": path.relative_to(raw_dir).as_posix(), "sha256": file_sha256(path),
             "size": path.stat().st_size, "source": source} for key, path in files.items()]
    table = pd.DataFrame(rows, columns=["id", "path", "sha256", "size", "source"])
    table.to_csv(raw_dir / MANIFEST_NAME, index=False)
    return table


def read_manifest(raw_dir: Path) -> pd.DataFrame:
    """Read the manifest a download stage wrote."""
    path = raw_dir / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the download stage first (dvc repro download)")
    return pd.read_csv(path, dtype={"id": str, "path": str})
