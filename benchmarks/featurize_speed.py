"""Composition features per second: ours (vectorised) vs matminer's featurizers, same formulas, same run.

Usage: python benchmarks/featurize_speed.py [--matminer-sample 500] [--sets all|none|oliynyk,mat2vec,...]
Formulas are the distinct ones of the COD index (downloaded from the pinned dara-xrd wheel, cached).
Then each element-embedding set of featurize.element_tables on the same formulas (table loading not timed).
Both run on one core (thread pools limited to 1 thread before numpy loads).
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from xtalml.chemistry import FormulaError, parse_formula  # noqa: E402
from xtalml.config import compose, source_config  # noqa: E402
from xtalml.features.composition import composition_features, elemental_tables  # noqa: E402
from xtalml.features.embeddings import load_element_table, table_specs  # noqa: E402
from xtalml.sources.cod_index import read_cod_index  # noqa: E402
from xtalml.sources.wheels import extract_member, fetch_wheel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--matminer-sample", type=int, default=500)
    parser.add_argument("--sets", default="all", help="embedding sets to time: all, none, or a comma list")
    args = parser.parse_args()

    cfg = source_config("cod_index")
    with tempfile.TemporaryDirectory() as tmp:
        index = read_cod_index(extract_member(fetch_wheel(cfg["wheel"], cfg["sha256"]), cfg["member"], Path(tmp) / "i.gz"))
    formulas = []
    for formula in index["formula"].drop_duplicates():
        try:
            parse_formula(formula)
            formulas.append(formula)
        except FormulaError:
            pass

    elemental_tables()  # loading matminer's tables is a one-off cost, as matminer's own constructors are
    start = time.perf_counter()
    ours, _ = composition_features(formulas)
    ours_s = time.perf_counter() - start

    from matminer.featurizers.composition import ElementProperty, IonProperty, Stoichiometry, ValenceOrbital
    from pymatgen.core import Composition

    featurizers = [ElementProperty.from_preset("magpie"), Stoichiometry(), ValenceOrbital(), IonProperty(fast=True)]
    sample = list(np.random.default_rng(0).choice(formulas, args.matminer_sample, replace=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        reference = [[v for f in featurizers for v in f.featurize(Composition(s))] for s in sample]
        matminer_s = time.perf_counter() - start
    position = {f: i for i, f in enumerate(formulas)}
    diff = np.abs(ours.to_numpy()[[position[s] for s in sample]] - np.array(reference, float)).max()

    ours_rate, matminer_rate = len(formulas) / ours_s, len(sample) / matminer_s
    print(f"formulas: {len(formulas)} distinct (COD index); features: {ours.shape[1]}")
    print(f"xtalml:   {ours_rate:,.0f} compositions/s ({ours_s:.2f} s, one core, formula strings in)")
    print(f"matminer: {matminer_rate:,.0f} compositions/s ({matminer_s:.2f} s for {len(sample)})")
    print(f"speed-up: {ours_rate / matminer_rate:,.0f}x; max |difference| on the matminer sample: {diff:.1e}")

    tables = table_specs(compose()["featurize"]["element_tables"])
    names = [] if args.sets == "none" else list(tables) if args.sets == "all" else args.sets.split(",")
    for name in names:  # median of three runs: the first touch of a GB-sized output varies from run to run
        load_element_table(name, tables[name])
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            pooled, errors = composition_features(formulas, [name], tables)
            runs.append(time.perf_counter() - start)
            width = pooled.shape[1]
            del pooled
        seconds = float(np.median(runs))
        print(f"{name:>11}: {len(formulas) / seconds:,.0f} compositions/s (median {seconds:.2f} s of 3, slowest "
              f"{len(formulas) / max(runs):,.0f}/s; {width:,} features, {len(errors):,} formulas with an element "
              f"the table lacks)")


if __name__ == "__main__":
    main()
