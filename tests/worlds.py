"""Small index-coded worlds shared by unit and integration tests (no server needed to build them)."""

from __future__ import annotations

from datetime import date

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
