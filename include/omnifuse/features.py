"""Training data: interactions of known customers as index-coded arrays, with customer and product features.

A :class:`Dataset` holds every attributed event of a window (customer and product as integer indexes, event
weight, day offset, channel, basket), the catalog's product features and, per customer, their channel mix,
recency and frequency. :meth:`Dataset.before` cuts it at a date (the time split); models only ever see
``before(T)`` when they are scored on days from T.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from psycopg2 import sql

from omnifuse import warehouse

#: How much each kind of event says about what a customer wants.
EVENT_WEIGHTS = {"view": 1.0, "click": 1.5, "like": 2.0, "comment": 2.0, "share": 3.0, "review": 3.0,
                 "add_to_cart": 4.0, "purchase": 8.0}
CHANNELS = ("web", "mobile", "social", "store")
PRICE_BANDS = np.array([10.0, 25.0, 50.0, 100.0, 250.0])


@dataclass
class Dataset:
    """Index-coded interactions and features (grain of the event arrays: one attributed event)."""

    customers: np.ndarray  # customer_id per customer index
    products: np.ndarray  # product_id per product index
    category: np.ndarray  # int code per product
    brand: np.ndarray  # int code per product
    price_band: np.ndarray  # 0..len(PRICE_BANDS)
    price: np.ndarray
    in_stock: np.ndarray  # bool
    repeatable: np.ndarray  # bool
    in_store: np.ndarray  # bool
    user: np.ndarray  # per event
    item: np.ndarray
    weight: np.ndarray
    day: np.ndarray  # days since epoch (int)
    channel: np.ndarray  # index into CHANNELS
    purchase: np.ndarray  # bool
    basket: np.ndarray  # int code of the session / receipt
    _matrix: sp.csr_matrix | None = field(default=None, repr=False)
    _features: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_users(self) -> int:
        return len(self.customers)

    @property
    def n_items(self) -> int:
        return len(self.products)

    def before(self, day: date) -> Dataset:
        """The same customers and products, only the events before ``day``."""
        keep = self.day < _days(day)
        return Dataset(**{**self._static(), **{k: getattr(self, k)[keep] for k in _EVENT_FIELDS}})

    def between(self, start: date, end: date) -> Dataset:
        """Events with start <= day <= end."""
        keep = (self.day >= _days(start)) & (self.day <= _days(end))
        return Dataset(**{**self._static(), **{k: getattr(self, k)[keep] for k in _EVENT_FIELDS}})

    def _static(self) -> dict:
        return {k: getattr(self, k) for k in _STATIC_FIELDS}

    def matrix(self, half_life_days: float | None = None) -> sp.csr_matrix:
        """Customer × product matrix of summed event weights (optionally decayed by age)."""
        if half_life_days is None and self._matrix is not None:
            return self._matrix
        w = self.weight
        if half_life_days is not None and len(self.day):
            w = w * np.power(0.5, (self.day.max() - self.day) / half_life_days)
        m = sp.csr_matrix((w.astype(np.float32), (self.user, self.item)), shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        if half_life_days is None:
            self._matrix = m
        return m

    def user_features(self) -> np.ndarray:
        """Per customer: channel mix (4 shares), recency (days since last event, log), frequency (log events)."""
        if self._features is not None:
            return self._features
        mix = np.zeros((self.n_users, len(CHANNELS)), dtype=np.float32)
        np.add.at(mix, (self.user, self.channel), 1.0)
        count = mix.sum(axis=1, keepdims=True)
        mix = mix / np.maximum(count, 1)
        last = np.full(self.n_users, -1, dtype=np.int64)
        np.maximum.at(last, self.user, self.day)
        end = self.day.max() + 1 if len(self.day) else 0
        recency = np.where(last >= 0, np.log1p(end - last), np.log1p(365))
        self._features = np.hstack([mix, recency[:, None], np.log1p(count)]).astype(np.float32)
        return self._features

    def bought(self) -> sp.csr_matrix:
        """Customer × product, 1 where the customer purchased the product."""
        p = self.purchase
        m = sp.csr_matrix((np.ones(int(p.sum()), dtype=np.float32), (self.user[p], self.item[p])),
                          shape=(self.n_users, self.n_items))
        m.data[:] = 1.0
        return m

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: getattr(self, k) for k in _STATIC_FIELDS + _EVENT_FIELDS}
        arrays["customers"] = arrays["customers"].astype(str)
        arrays["products"] = arrays["products"].astype(str)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> Dataset:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        data["customers"] = data["customers"].astype(object)
        data["products"] = data["products"].astype(object)
        return cls(**data)


_STATIC_FIELDS = ["customers", "products", "category", "brand", "price_band", "price", "in_stock", "repeatable",
                  "in_store"]
_EVENT_FIELDS = ["user", "item", "weight", "day", "channel", "purchase", "basket"]


def _days(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def from_frames(events: pd.DataFrame, catalog: pd.DataFrame) -> Dataset:
    """Build a Dataset from ``interactions_window.sql`` rows and ``catalog.sql`` rows.

    Events of products missing from the current catalog are dropped (they cannot be recommended).
    """
    catalog = catalog.sort_values("product_id", ignore_index=True)
    products = catalog["product_id"].to_numpy(dtype=object)
    item = pd.Index(products).get_indexer(events["product_id"])
    events = events[item >= 0]
    item = item[item >= 0]
    customers, user = np.unique(events["customer_id"].to_numpy(dtype=str), return_inverse=True)
    price = catalog["price"].astype(float).to_numpy()
    return Dataset(
        customers=customers.astype(object),
        products=products,
        category=pd.factorize(catalog["category"], sort=True)[0].astype(np.int32),
        brand=pd.factorize(catalog["brand"], sort=True)[0].astype(np.int32),
        price_band=np.searchsorted(PRICE_BANDS, price).astype(np.int32),
        price=price,
        in_stock=(catalog["stock"].to_numpy() > 0),
        repeatable=catalog["repeatable"].to_numpy(dtype=bool),
        in_store=catalog["in_store"].to_numpy(dtype=bool),
        user=user.astype(np.int32),
        item=item.astype(np.int32),
        weight=events["event_type"].map(EVENT_WEIGHTS).fillna(1.0).to_numpy(dtype=np.float32),
        day=(pd.to_datetime(events["event_date"]) - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=np.int64),
        channel=pd.Index(CHANNELS).get_indexer(events["channel"]).astype(np.int8),
        purchase=(events["event_type"] == "purchase").to_numpy(),
        basket=pd.factorize(events["basket"])[0].astype(np.int64),
    )


def _copy_frame(cur, sql_name: str, params: dict) -> pd.DataFrame:
    query = sql.SQL(cur.mogrify(warehouse.sql_text(sql_name), params).decode())
    buf = io.StringIO()
    cur.copy_expert(sql.SQL("copy ({}) to stdout with (format csv, header true)").format(query), buf)
    buf.seek(0)
    return pd.read_csv(buf, dtype={"customer_id": str, "product_id": str, "basket": str})


def load_dataset(start: date, end: date, url: str | None = None) -> Dataset:
    """Attributed interactions with start <= event_date <= end, and the current catalog, from the warehouse."""
    with warehouse.transaction(url) as cur:
        events = _copy_frame(cur, "retrain/interactions_window.sql", {"start_date": start, "end_date": end})
        cur.execute(warehouse.sql_text("retrain/catalog.sql"))
        catalog = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
    return from_frames(events, catalog)
