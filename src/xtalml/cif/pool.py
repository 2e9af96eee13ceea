"""A process pool where each task has a time limit and a crashed or hung worker is replaced, not fatal."""

from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable, Iterator

DEFAULT_TIMEOUT_S = 30.0  # seconds per item unless the caller (parse.timeout_s in params.yaml) says otherwise


def _worker(func: Callable[[Any], Any], conn: Connection) -> None:
    while True:
        try:
            item = conn.recv()
        except EOFError:
            return
        if item is None:
            return
        try:
            conn.send(("ok", func(item)))
        except Exception as exc:  # noqa: BLE001 - any failure of one item is reported, never raised
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Slot:
    def __init__(self, ctx: mp.context.BaseContext, func: Callable[[Any], Any]) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(func, child), daemon=True)
        self.proc.start()
        child.close()
        self.item: Any = None
        self.started = 0.0

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


def map_with_timeout(func: Callable[[Any], Any], items: Iterable[Any], workers: int = 2,
                     timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[tuple[Any, str, Any]]:
    """Yield (item, status, result) for every item; status is 'ok', 'error', 'timeout' or 'crash'."""
    ctx = mp.get_context("fork")
    pending = iter(items)
    slots = [_Slot(ctx, func) for _ in range(max(1, workers))]
    busy: dict[Connection, _Slot] = {}

    def feed(slot: _Slot) -> bool:
        for item in pending:
            slot.item, slot.started = item, time.monotonic()
            slot.conn.send(item)
            busy[slot.conn] = slot
            return True
        return False

    def replace(slot: _Slot) -> _Slot:
        slot.stop()
        fresh = slots[slots.index(slot)] = _Slot(ctx, func)
        return fresh

    try:
        for slot in slots:
            feed(slot)
        while busy:
            soonest = min(s.started for s in busy.values()) + timeout_s
            for conn in wait(list(busy), timeout=max(0.0, soonest - time.monotonic())):
                slot = busy.pop(conn)
                item = slot.item
                try:
                    status, result = conn.recv()
                except (EOFError, OSError):
                    slot.proc.join(timeout=1)
                    status, result = "crash", f"worker died (exit code {slot.proc.exitcode})"
                    slot = replace(slot)
                yield item, status, result
                feed(slot)
            now = time.monotonic()
            for conn, slot in list(busy.items()):
                if now - slot.started > timeout_s:
                    busy.pop(conn)
                    item = slot.item
                    fresh = replace(slot)
                    yield item, "timeout", f"took longer than {timeout_s:g} s"
                    feed(fresh)
    finally:
        for slot in slots:
            try:
                if slot.proc.is_alive():
                    slot.conn.send(None)
            except OSError:
                pass
            slot.proc.join(timeout=1)
            slot.stop()

