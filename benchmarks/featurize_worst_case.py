"""Worst per-formula featurize time: every distinct COD-index formula alone, then generated hard cases.

Usage: python benchmarks/featurize_worst_case.py [--generated 2000] [--seed 0]
Each formula is featurized in its own call (one core), so the figure is what one formula can cost a stage or a
`predict` request. Generated cases are the shape that used to explode: many elements with several common
oxidation states, many-decimal amounts, and an O amount that puts zero charge inside the reachable range.
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from xtalml.chemistry import ELEMENTS  # noqa: E402
from xtalml.config import source_config  # noqa: E402
from xtalml.features.composition import MAX_CHARGE_SUMS, composition_features, elemental_tables  # noqa: E402
from xtalml.sources.cod_index import read_cod_index  # noqa: E402
from xtalml.sources.wheels import extract_member, fetch_wheel  # noqa: E402


def generated_formulas(n: int, seed: int) -> list[str]:
    """Formulas of 6-35 elements (all 35 with two or more common oxidation states, O aside), 6-decimal amounts."""
    rng = np.random.default_rng(seed)
    _, _, oxidation = elemental_tables()
    several = [z for z in range(1, 119) if len(oxidation[z]) >= 2 and ELEMENTS[z - 1] != "O"]
    formulas = []
    for _ in range(n):
        picks = rng.choice(several, int(rng.integers(6, len(several) + 1)), replace=False)
        amounts = rng.uniform(0.1, 3, len(picks)).round(6)
        low = sum(a * min(oxidation[z]) for a, z in zip(amounts, picks))
        high = sum(a * max(oxidation[z]) for a, z in zip(amounts, picks))
        oxygen = f"O{(low + high) / 4:.6f}" if low + high > 0 else ""
        formulas.append("".join(f"{ELEMENTS[z - 1]}{a:.6f}" for z, a in zip(picks, amounts)) + oxygen)
    return formulas


def timed(formulas: list[str]) -> tuple[np.ndarray, int]:
    """Seconds per formula (each in its own call) and how many were rejected."""
    seconds, rejected = np.empty(len(formulas)), 0
    for i, formula in enumerate(formulas):
        start = time.perf_counter()
        _, errors = composition_features([formula])
        seconds[i] = time.perf_counter() - start
        rejected += bool(errors)
    return seconds, rejected


def report(name: str, formulas: list[str], seconds: np.ndarray, rejected: int) -> None:
    worst = int(seconds.argmax())
    print(f"{name}: {len(formulas):,} formulas, median {np.median(seconds) * 1e3:.2f} ms, "
          f"99.9th percentile {np.percentile(seconds, 99.9) * 1e3:.2f} ms, worst {seconds[worst] * 1e3:.1f} ms, "
          f"rejected {rejected:,}")
    print(f"  worst formula: {formulas[worst][:100]}{'…' if len(formulas[worst]) > 100 else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generated", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cfg = source_config("cod_index")
    with tempfile.TemporaryDirectory() as tmp:
        index = read_cod_index(extract_member(fetch_wheel(cfg["wheel"], cfg["sha256"]), cfg["member"], Path(tmp) / "i.gz"))
    composition_features(["NaCl"])  # load the elemental tables outside the timing
    cod = index["formula"].drop_duplicates().astype(str).tolist()
    report("COD index", cod, *timed(cod))
    generated = generated_formulas(args.generated, args.seed)
    report(f"generated (6-35 elements, cap {MAX_CHARGE_SUMS:,} partial charges per half)", generated, *timed(generated))


if __name__ == "__main__":
    main()
