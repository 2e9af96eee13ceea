"""Pinned, hash-checked wheels from the package index, read as archives (never installed)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def default_cache_dir() -> Path:
    """Where downloaded wheels and CIFs are kept between runs ($XTALML_CACHE or ~/.cache/xtalml)."""
    return Path(os.environ.get("XTALML_CACHE", Path.home() / ".cache" / "xtalml"))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_wheel(requirement: str, sha256: str, cache_dir: Path | None = None, python_version: str | None = None) -> Path:
    """Return the wheel for `name==version`, downloaded with pip --no-deps --require-hashes, cached.

    python_version lets pip fetch a wheel that declares another Python (it is read, never installed).
    """
    if "==" not in requirement:
        raise ValueError(f"wheel requirement {requirement!r} must be pinned as name==version")
    cache = (cache_dir or default_cache_dir()) / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    name, version = requirement.split("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    for cached in cache.glob(f"{stem}*.whl"):
        if file_sha256(cached) == sha256:
            return cached
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{requirement} --hash=sha256:{sha256}\n")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--require-hashes", "-r", str(req), "-d", str(Path(tmp) / "out"), "--quiet"]
        if python_version:
            cmd += ["--python-version", str(python_version)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"pip could not download {requirement} (sha256 {sha256[:12]}…); is the package index "
                f"reachable? pip said:\n{proc.stderr.strip()[-2000:]}")
        wheels = list((Path(tmp) / "out").glob("*.whl"))
        if len(wheels) != 1 or file_sha256(wheels[0]) != sha256:
            raise RuntimeError(f"downloaded wheel for {requirement} does not match sha256 {sha256}")
        target = cache / wheels[0].name
        partial = target.with_name(f"{target.name}.{os.getpid()}.part")
        shutil.move(str(wheels[0]), partial)
        os.replace(partial, target)  # atomic: a process reading the cache at the same time never sees half a wheel
    return target


def extract_member(wheel: Path, member: str, dest: Path) -> Path:
    """Copy one file out of a wheel to dest; nothing else of the wheel is read."""
    with zipfile.ZipFile(wheel) as zf:
        if member not in zf.namelist():
            raise KeyError(f"{wheel.name} has no member {member!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    return dest


def extract_folder(wheel: Path, folder: str, dest: Path, suffix: str = "") -> list[Path]:
    """Copy the files directly under one folder of a wheel (ending in suffix) to dest; nothing else is read."""
    folder = folder.rstrip("/") + "/"
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.startswith(folder) and "/" not in m[len(folder):]
                   and m.endswith(suffix) and m != folder]
        if not members:
            raise KeyError(f"{wheel.name} has no files under {folder!r}")
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for member in members:
            target = dest / Path(member).name
            with zf.open(member) as src, open(target, "wb") as fh:
                shutil.copyfileobj(src, fh)
            out.append(target)
    return out
