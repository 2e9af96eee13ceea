"""Stage templates: the template library of known structures (the primary source's ordered train structures, AFLOW and
mineral prototypes), described and grouped per anonymous formula on Dask; rejects with their reasons."""

import argparse
import json
import tempfile
import time
from pathlib import Path

from xtalml.config import load_params, section
from xtalml.sources.wheels import extract_member, fetch_wheel
from xtalml.structures.search import dask_client
from xtalml.structures.templates import aflow_prototypes, build_library, mineral_prototypes, training_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--structures", type=Path, required=True, help="the source's parsed structures")
    parser.add_argument("--raw", type=Path, required=True, help="the source's downloaded CIFs (with manifest.csv)")
    parser.add_argument("--split", type=Path, required=True, help="the source's split assignment (.parquet)")
    parser.add_argument("--out", type=Path, required=True, help="library.parquet and rejects.parquet go here")
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args()

    params = load_params(args.params)
    cfg = section(params, "templates", ["source", "max_atoms", "symprec", "matcher", "prototypes"])
    started = time.perf_counter()
    name = section(params, "sources")[cfg["source"]]["name"]  # the origin's name in the library (amcsd, cod...)
    origins = {name: (training_rows(args.structures, args.split), args.raw)}
    prototypes = cfg["prototypes"]
    if prototypes.get("aflow"):
        origins["aflow"] = list(aflow_prototypes())
    if prototypes.get("mineral"):  # a data wheel: the member is read out of it, the wheel is never installed
        spec = prototypes["mineral"]
        with tempfile.TemporaryDirectory() as tmp:
            member = extract_member(fetch_wheel(spec["wheel"], spec["sha256"]), spec["member"], Path(tmp) / "minerals.json.gz")
            origins["mineral"] = list(mineral_prototypes(member))
    with dask_client(params["generate"].get("scheduler"), params["generate"].get("n_workers")) as client:
        library, rejects = build_library(client, origins, float(cfg["symprec"]), int(cfg["max_atoms"]), cfg["matcher"])
    args.out.mkdir(parents=True, exist_ok=True)
    library.to_parquet(args.out / "library.parquet", index=False)
    rejects.to_parquet(args.out / "rejects.parquet", index=False)
    templates = library[library["representative"]]
    metrics = {"templates": int(len(templates)), "structures": int(len(library)), "rejected": int(len(rejects)),
               "anonymous_formulas": int(templates["anonymous_formula"].nunique()),
               "templates_by_origin": {k: int(v) for k, v in templates["origin"].value_counts().sort_index().items()}}
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"templates: {metrics['templates']} templates of {metrics['structures']} structures "
          f"({metrics['anonymous_formulas']} anonymous formulas), {metrics['rejected']} rejects, "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":  # Dask's local worker processes re-import this file
    main()
