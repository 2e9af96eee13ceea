"""Progress bars for long loops: drawn on a terminal, silent in logs (when stderr is not a terminal)."""

from __future__ import annotations

import os
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress_enabled() -> bool | None:
    """None lets tqdm decide (a bar only when stderr is a terminal); XTALML_PROGRESS=1 or 0 forces it on or off."""
    forced = os.environ.get("XTALML_PROGRESS")
    return None if forced is None else forced.strip() not in ("0", "false", "no", "")


def progress(iterable: Iterable[T] | None = None, total: int | None = None, desc: str = "", unit: str = "it") -> tqdm:
    """A tqdm bar on stderr that disappears when done; nothing at all where output goes to a file or a pipe."""
    enabled = progress_enabled()
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, mininterval=0.5,
                disable=None if enabled is None else not enabled)
