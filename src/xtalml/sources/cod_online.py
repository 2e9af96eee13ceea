"""The online Crystallography Open Database: search API for ids, then CIF downloads (bounded, retried, resumable)."""

from __future__ import annotations

import http.client
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from xtalml.progress import progress

DEFAULT_BASE_URL = "https://www.crystallography.net/cod"


class CodUnreachableError(RuntimeError):
    """The COD server could not be reached at all."""


@dataclass
class CodQuery:
    """Search filters of the COD `result` endpoint, plus a local id range and a cap on count."""

    elements: list[str] = field(default_factory=list)
    exclude_elements: list[str] = field(default_factory=list)
    min_elements: int | None = None
    max_elements: int | None = None
    id_min: int | None = None
    id_max: int | None = None
    max_count: int | None = None

    def params(self) -> dict[str, str]:
        """Query-string parameters for the search endpoint."""
        if len(self.elements) > 8 or len(self.exclude_elements) > 4:
            raise ValueError("COD accepts at most 8 required and 4 excluded elements")
        params = {f"el{i + 1}": el for i, el in enumerate(self.elements)}
        params |= {f"nel{i + 1}": el for i, el in enumerate(self.exclude_elements)}
        if self.min_elements is not None:
            params["strictmin"] = str(self.min_elements)
        if self.max_elements is not None:
            params["strictmax"] = str(self.max_elements)
        params["format"] = "lst"
        return params


def _get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()  # raises IncompleteRead when the body is shorter than Content-Length


def _is_connection_failure(exc: BaseException) -> bool:
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, (ConnectionRefusedError, socket.gaierror, OSError)) and not isinstance(
        exc, urllib.error.HTTPError) and not isinstance(reason, (TimeoutError, socket.timeout))


def search_cod_ids(query: CodQuery, base_url: str = DEFAULT_BASE_URL, timeout: float = 60.0) -> list[str]:
    """COD ids matching the query, sorted, restricted to the id range and capped at max_count."""
    url = f"{base_url.rstrip('/')}/result?{urllib.parse.urlencode(query.params())}"
    try:
        body = _get(url, timeout).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"COD search {url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise CodUnreachableError(
            f"cannot reach COD at {base_url} ({getattr(exc, 'reason', exc)}); check the network, "
            f"or use data=amcsd / data=cod_index / data=local, which need no internet") from exc
    ids = sorted({line.strip() for line in body.splitlines() if line.strip().isdigit()}, key=int)
    if query.id_min is not None:
        ids = [i for i in ids if int(i) >= query.id_min]
    if query.id_max is not None:
        ids = [i for i in ids if int(i) <= query.id_max]
    return ids[: query.max_count] if query.max_count else ids


def download_cif(cod_id: str, base_url: str, out_dir: Path, timeout: float, retries: int,
                 backoff_s: float) -> tuple[str, Path | None, str | None]:
    """Fetch one CIF into out_dir unless complete already; return (id, path or None, failure reason)."""
    target = out_dir / f"{cod_id}.cif"
    if target.exists():
        return cod_id, target, None
    url = f"{base_url.rstrip('/')}/{cod_id}.cif"
    partial = out_dir / f"{cod_id}.cif.part"
    reason = "not attempted"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            body = _get(url, timeout)
            if not body.strip():
                reason = "empty body"
                continue
            partial.write_bytes(body)
            os.replace(partial, target)  # only a complete body ever gets the .cif name
            return cod_id, target, None
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                break  # 404 and friends will not get better by retrying
        except http.client.IncompleteRead as exc:
            reason = f"truncated body ({len(exc.partial)} bytes received)"
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if _is_connection_failure(exc) and attempt == retries:
                reason = f"unreachable: {reason}"
    partial.unlink(missing_ok=True)
    return cod_id, None, f"{reason} after {attempt + 1} attempt(s) from {url}"


def download_cifs(ids: list[str], out_dir: Path, base_url: str = DEFAULT_BASE_URL, concurrency: int = 4,
                  timeout: float = 60.0, retries: int = 3, backoff_s: float = 1.0
                  ) -> tuple[dict[str, Path], dict[str, str]]:
    """Download many CIFs with bounded concurrency; return ({id: path}, {id: failure reason})."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ok: dict[str, Path] = {}
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(download_cif, i, base_url, out_dir, timeout, retries, backoff_s) for i in ids]
        for future in progress(futures, desc="download COD CIFs", unit="file"):
            cod_id, path, reason = future.result()
            if path is not None:
                ok[cod_id] = path
            else:
                failed[cod_id] = reason or "unknown"
    if ids and not ok and all(r.startswith("unreachable") for r in failed.values()):
        raise CodUnreachableError(f"cannot reach COD at {base_url}: every download failed ({next(iter(failed.values()))})")
    return ok, failed
