"""Small index-coded worlds shared by unit and integration tests (no server needed to build them)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
from omnifuse.dataset import Dataset

EPOCH = date(1970, 1, 1)
#: the purchase world's first day (days since epoch) and length
START = (date(2026, 9, 1) - EPOCH).days
DAYS = 60


def purchase_world(seed: int = 0) -> Dataset:
    """Two tastes over 60 days of till receipts: customers 0-59 buy products 0-14 ("RED HEART …"), customers
    60-119 buy 15-29 ("BLUE STAR …"), one receipt in four also holds one of 30-49 ("PAPER …", noise)."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 120, 50
    users, items, days, baskets = [], [], [], []
    for u in range(n_users):
        taste = np.arange(15) if u < 60 else np.arange(15, 30)
        for d in sorted(rng.choice(DAYS, 6, replace=False)):
            bought = [rng.choice(taste)] + ([rng.choice(np.arange(30, 50))] if rng.random() < 0.25 else [])
            for i in bought:
                users.append(u)
                items.append(i)
                days.append(START + d)
                baskets.append(u * 100 + d)
    names = [f"RED HEART {i}" if i < 15 else f"BLUE STAR {i}" if i < 30 else f"PAPER NOISE {i}"
             for i in range(n_items)]
    return Dataset(
        customers=np.array([f"C{u:03d}" for u in range(n_users)], dtype=object),
        products=np.array([f"P{i:03d}" for i in range(n_items)], dtype=object),
        category=(np.arange(n_items) // 15).astype(np.int32), brand=np.zeros(n_items, np.int32),
        price_band=np.zeros(n_items, np.int32), price=np.full(n_items, 5.0),
        in_stock=np.ones(n_items, bool), repeatable=np.zeros(n_items, bool), in_store=np.ones(n_items, bool),
        user=np.array(users, np.int32), item=np.array(items, np.int32), weight=np.full(len(users), 8.0, np.float32),
        day=np.array(days, np.int64), channel=np.full(len(users), 3, np.int8),
        purchase=np.ones(len(users), bool), basket=np.array(baskets, np.int64),
        names=np.array(names, dtype=object),
    )


@contextlib.contextmanager
def loaded_warehouse(url: str, world: Path, days: list[date], model_store: Path,
                     tuning_trials: int) -> Iterator[str]:
    """The session's warehouse emptied, migrated and loaded with ``days`` of ``world`` (the DAG's functions per
    day), with a model store and a tuning trial count of its own for as long as the block lasts."""
    import pytest
    from omnifuse import warehouse
    from omnifuse.daily import run_day

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMNIFUSE_MODEL_STORE", str(model_store))
        mp.setenv("OMNIFUSE_TUNING_TRIALS", str(tuning_trials))
        with warehouse.transaction(url) as cur:
            cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
        warehouse.migrate(url)
        for day in days:
            run_day(day, world, url)
        yield url
