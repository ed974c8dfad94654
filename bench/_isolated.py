"""Every benchmark runs on a warehouse of its own, never on the user's (see ``omnifuse.warehouse.isolate``).

A fresh embedded server in a temporary state folder, removed afterwards; or ``OMNIFUSE_BENCH_STATE_DIR`` to keep
one between runs (``bench/models.py --reuse``); or ``OMNIFUSE_TEST_WAREHOUSE_URL`` naming a disposable external
database (refused when it holds a pipeline's data). ``OMNIFUSE_WAREHOUSE_URL`` is ignored.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from omnifuse import warehouse
from omnifuse.daily import run_day
from omnifuse.generate import WorldConfig, generate


@contextlib.contextmanager
def isolated_warehouse(name: str) -> Iterator[str]:
    """The URL of this benchmark's own migrated warehouse; the server is stopped (and its folder removed) after."""
    keep = os.environ.get("OMNIFUSE_BENCH_STATE_DIR")
    state = warehouse.isolate(f"omnifuse-bench-{name}-", Path(keep) if keep else None)
    try:
        url = warehouse.isolated_url()
        print(f"benchmark warehouse: {warehouse.describe(url)} (state {state})", flush=True)
        yield url
    finally:
        warehouse.release(state, remove=not keep)


def isolated_url(name: str) -> str:
    """:func:`isolated_warehouse` for a whole benchmark process: released when the process exits."""
    stack = contextlib.ExitStack()
    url = stack.enter_context(isolated_warehouse(name))
    atexit.register(stack.close)
    return url


def empty_warehouse(url: str) -> None:
    """Drop every pipeline schema of the benchmark's warehouse and migrate it again (a fresh start)."""
    with warehouse.transaction(url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(url)


def load_world(url: str, cfg: WorldConfig, folder: Path) -> float:
    """Generate ``cfg`` into ``folder`` and run every day of it (``run_day``, as the DAGs) into an emptied
    warehouse; returns the seconds it took."""
    started = time.perf_counter()
    generate(cfg, folder)
    empty_warehouse(url)
    for i in range(cfg.days):
        run_day(cfg.start + timedelta(days=i), folder, url)
    return time.perf_counter() - started
