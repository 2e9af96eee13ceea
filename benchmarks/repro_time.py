"""Wall time of each stage of a finished `dvc repro`, from its outputs' modification times, and the total.

Run it in the repository where `dvc repro` ran from scratch, with the time it started:

    date +%s > start && dvc repro; python benchmarks/repro_time.py --start start

A stage's time is the gap between its newest output and the previous stage's (stages run one after another), so it
includes DVC's own work for that stage (hashing and caching its outputs).
"""

import argparse
from pathlib import Path

import yaml


def newest_output(root: Path, stage: dict) -> float:
    """Latest modification time among a stage's outputs (files, or every file under a folder); 0 if none exist."""
    newest = 0.0
    for out in stage.get("outs", []):
        path = root / out["path"]
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path] if path.exists() else []
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    return newest


def stage_times(root: Path, start: float) -> list[tuple[str, float]]:
    """(stage, seconds) in the order the stages finished."""
    stages = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    finished = sorted((t, name) for name, stage in stages.items() if (t := newest_output(root, stage)) >= start)
    times, previous = [], start
    for t, name in finished:
        times.append((name, t - previous))
        previous = t
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--start", type=Path, required=True, help="file holding the start time (date +%%s)")
    args = parser.parse_args()
    times = stage_times(args.root, float(args.start.read_text()))
    for name, seconds in times:
        print(f"{name:70s} {seconds:7.0f}")
    train = sum(s for name, s in times if name.startswith("train_"))
    print(f"{'train stages':70s} {train:7.0f}")
    print(f"{'total (to the last output)':70s} {sum(s for _, s in times):7.0f}")


if __name__ == "__main__":
    main()
