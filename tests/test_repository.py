"""The repository holds code, config and DVC's small metrics files: never a file that a stage caches."""

import subprocess
from pathlib import Path

from xtalml.config import REPO_ROOT


def _git(*args: str) -> list[str]:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.split("\n")


def _cached_outputs() -> list[Path]:
    from dvc.repo import Repo

    with Repo(str(REPO_ROOT)) as repo:
        return sorted({Path(out.fs_path).relative_to(REPO_ROOT) for out in repo.index.outs if out.use_cache})


def test_no_cached_stage_output_is_in_git():
    outputs = _cached_outputs()
    assert any(path.parts[0] == "models" for path in outputs) and len(outputs) > 40  # the stage graph was read
    tracked = [Path(name) for name in _git("ls-files") if name]
    inside = [str(name) for name in tracked for out in outputs if name == out or out in name.parents]
    assert not inside, f"files that DVC stages write are in git (git rm --cached them): {inside[:10]}"


def test_every_cached_stage_output_is_ignored():
    # check-ignore exits 1 when none is ignored; --no-index also judges paths that do not exist yet
    proc = subprocess.run(["git", "check-ignore", "--no-index", "-v", "-n", *map(str, _cached_outputs())], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    not_ignored = [line.split("\t")[-1] for line in proc.stdout.splitlines() if line.startswith("::")]
    assert not not_ignored, f"stage outputs git would pick up (add them to a .gitignore): {not_ignored}"


def test_data_folder_holds_no_file_in_git():
    stale = [name for name in _git("ls-files", "data") if name and Path(name).name != ".gitignore"]
    assert not stale, f"data/ is DVC's: {len(stale)} files in git there, e.g. {stale[:5]}"
