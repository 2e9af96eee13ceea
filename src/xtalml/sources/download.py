"""Dispatch the configured data source into the raw folder: files plus manifest.csv."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from xtalml.sources.amcsd import write_amcsd_cifs
from xtalml.sources.cod_index import COD_INDEX_MEMBER, truncate_cod_index
from xtalml.sources.cod_online import CodQuery, download_cifs, search_cod_ids
from xtalml.sources.local import copy_local_cifs
from xtalml.sources.manifest import write_manifest
from xtalml.sources.oqmd_volume import copy_oqmd_volume
from xtalml.sources.wheels import default_cache_dir, extract_member, fetch_wheel

SOURCES = ("amcsd", "cod_index", "oqmd_volume", "cod", "local")
FAILURES_NAME = "download_failures.csv"


def download_source(cfg: Mapping[str, Any], raw_dir: Path) -> pd.DataFrame:
    """Fill raw_dir (emptied first) from the source named by cfg['name']; return the manifest."""
    name = cfg.get("name")
    if name not in SOURCES:
        raise ValueError(f"data.name={name!r} is not a known source; choose one of {', '.join(SOURCES)}")
    if raw_dir.exists():
        shutil.rmtree(raw_dir)
    raw_dir.mkdir(parents=True)
    limit = cfg.get("limit")
    cache = Path(cfg["cache_dir"]).expanduser() if cfg.get("cache_dir") else default_cache_dir()
    failures: dict[str, str] = {}
    if name in ("amcsd", "cod_index"):
        wheel = fetch_wheel(cfg["wheel"], cfg["sha256"], cache)
        if name == "amcsd":
            with tempfile.TemporaryDirectory() as tmp:
                db = extract_member(wheel, cfg["member"], Path(tmp) / "amcsd.db")
                files = write_amcsd_cifs(db, raw_dir / "cifs", limit)
        else:
            if cfg["member"] != COD_INDEX_MEMBER:
                raise ValueError(f"only {COD_INDEX_MEMBER} may be read from the dara-xrd wheel")
            path = extract_member(wheel, cfg["member"], raw_dir / Path(cfg["member"]).name)
            if limit is not None:
                truncate_cod_index(path, limit)
            files = {"cod_index": path}
    elif name == "oqmd_volume":
        files = copy_oqmd_volume(cfg, raw_dir / "oqmd_volume")
    elif name == "cod":
        query = CodQuery(elements=list(cfg.get("elements") or []),
                         exclude_elements=list(cfg.get("exclude_elements") or []),
                         min_elements=cfg.get("min_elements"), max_elements=cfg.get("max_elements"),
                         id_min=cfg.get("id_min"), id_max=cfg.get("id_max"), max_count=limit)
        ids = search_cod_ids(query, cfg["base_url"], cfg["timeout_s"])
        fetched, failures = download_cifs(ids, cache / "cod", cfg["base_url"], cfg["concurrency"],
                                          cfg["timeout_s"], cfg["retries"], cfg["backoff_s"])
        (raw_dir / "cifs").mkdir()
        files = {f"cod-{k}": Path(shutil.copyfile(p, raw_dir / "cifs" / f"cod-{k}.cif")) for k, p in fetched.items()}
        failures = {f"cod-{k}": v for k, v in failures.items()}
    else:
        files = copy_local_cifs(Path(cfg["path"]), raw_dir / "cifs", limit)
    pd.DataFrame({"id": list(failures), "reason": list(failures.values())}, columns=["id", "reason"]).to_csv(
        raw_dir / FAILURES_NAME, index=False)
    return write_manifest(raw_dir, files, name)
