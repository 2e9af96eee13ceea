"""Local CIFs: a directory or a tar archive of .cif files."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path


def _key(name: str) -> str:
    return Path(name).stem


def copy_local_cifs(source: Path, out_dir: Path, limit: int | None = None) -> dict[str, Path]:
    """Copy the .cif files of a directory (recursively) or a tar archive into out_dir; return {id: path}."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"local CIF source {source} does not exist (set data.path to a folder or tar)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() == ".cif"):
            if limit is not None and len(written) >= limit:
                break
            key = _key(path.name)
            if key in written:
                key = path.relative_to(source).with_suffix("").as_posix().replace("/", "__")
            written[key] = Path(shutil.copyfile(path, out_dir / f"{key}.cif"))
        return written
    if not tarfile.is_tarfile(source):
        raise ValueError(f"local CIF source {source} is neither a directory nor a tar archive")
    with tarfile.open(source) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if limit is not None and len(written) >= limit:
                break
            if not member.isfile() or not member.name.lower().endswith(".cif"):
                continue  # links, devices and folders are never extracted
            key = _key(member.name)
            if key in written:
                key = member.name.rsplit(".", 1)[0].replace("/", "__")
            target = out_dir / f"{key}.cif"
            with tar.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            written[key] = target
    return written
