"""Stage references: each element's reference energy per atom for formation energies, the lowest CHGNet energy among
the template library's elemental structures relaxed as the search relaxes its candidates (the diatomic gases: the
molecule in a large box), on Dask; elements without one listed with the reason."""

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from xtalml.config import load_params, section
from xtalml.structures.references import reference_specs, reference_table
from xtalml.structures.search import SearchSettings, dask_client, run_specs


def elemental_volumes(elements):
    """Each element's volume per atom in its ground state (Magpie's GSvolume_pa): where a template is scaled to."""
    from xtalml.chemistry import ATOMIC_NUMBER
    from xtalml.features.composition import MAGPIE_PROPERTIES, elemental_tables

    table = elemental_tables()[0]
    column = MAGPIE_PROPERTIES.index("GSvolume_pa")
    return {e: float(table[ATOMIC_NUMBER[e], column]) for e in elements}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--templates", type=Path, required=True, help="the templates stage's library.parquet")
    parser.add_argument("--out", type=Path, required=True, help="references.parquet and missing.parquet go here")
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args()

    params = load_params(args.params)
    cfg = section(params, "references", ["elements", "per_element"])
    search = SearchSettings.from_params(section(params, "generate", ["search"])["search"])
    library = pd.read_parquet(args.templates)
    elements = sorted(set(cfg["elements"]))
    started = time.perf_counter()
    specs = reference_specs(elements, library, per_element=int(cfg["per_element"]),
                            volume_per_atom=elemental_volumes(elements), fmax=search.fmax, steps=search.steps,
                            time_limit_s=search.candidate_time_limit_s)
    with dask_client(params["generate"].get("scheduler"), params["generate"].get("n_workers")) as client:
        results = run_specs(client, specs, search.formula_time_limit_s)
    table, missing = reference_table(results, elements)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_parquet(args.out / "references.parquet", index=False)
    missing.to_parquet(args.out / "missing.parquet", index=False)
    metrics = {"elements": len(table), "without_reference": len(missing), "relaxations": len(specs),
               "seconds": round(time.perf_counter() - started, 1)}
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps({k: v for k, v in metrics.items() if k != "seconds"}, indent=2) + "\n")
    print(f"references: {metrics['elements']} elements from {metrics['relaxations']} relaxations, "
          f"{metrics['without_reference']} without one, {metrics['seconds']:.0f} s")


if __name__ == "__main__":  # Dask's local worker processes re-import this file
    main()
