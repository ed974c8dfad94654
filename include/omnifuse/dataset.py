"""Training data: interactions of known customers as index-coded arrays, with customer and product features.

A :class:`Dataset` holds every attributed event of a window (customer and product as integer indexes, event
weight, day offset, channel, basket), the catalog's product features and, per customer, their channel mix,
recency and frequency. :meth:`Dataset.before` cuts it at a date (the time split); models only ever see
``before(T)`` when they are scored on days from T.

**Returns** (``event_type = 'return'``) are never a positive signal. Rule: each return line of a (customer,
product) cancels that pair's latest purchase on or before the return's day that no earlier return cancelled;
a cancelled purchase is dropped from the events (it is neither a training signal nor, in the evaluation, a
hit). The returns themselves are kept apart (``ret_user``, ``ret_item``, ``ret_day``): the evaluation removes
a returned pair from the relevant set of the period, and :meth:`Dataset.returned` lets callers exclude what a
customer sent back.

**Determinism**: :func:`from_frames` sorts the events on every column before coding them, so the same rows in
any physical order give the same Dataset (and the same models for a seed).

**Repeatability** is learnt from the data (:meth:`Dataset.learned_repeatable`): a product is worth
recommending again when enough of its buyers bought it on two or more days, else its category's repeat rate
decides, else the catalog flag.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2.extensions
import scipy.sparse as sp
from psycopg2 import sql

from omnifuse import warehouse
from omnifuse.sources import EVENT_CHANNELS

#: How much each kind of event says about what a customer wants.
EVENT_WEIGHTS = {"view": 1.0, "click": 1.5, "like": 2.0, "comment": 2.0, "share": 3.0, "review": 3.0,
                 "add_to_cart": 4.0, "purchase": 8.0}
#: Interaction channels, in the order of ``Dataset.channel`` codes (one home: the event sources,
#: :data:`omnifuse.sources.EVENT_CHANNELS`).
CHANNELS = EVENT_CHANNELS
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
    ret_user: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # per return line
    ret_item: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    ret_day: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    catalog_repeatable: np.ndarray | None = None  # the catalog flag, when ``repeatable`` was learnt
    names: np.ndarray | None = None  # product name per product (None in datasets saved before names were kept)
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
        return self._cut(self.day < _days(day), self.ret_day < _days(day))

    def between(self, start: date, end: date) -> Dataset:
        """Events (and returns) with start <= day <= end."""
        return self._cut((self.day >= _days(start)) & (self.day <= _days(end)),
                         (self.ret_day >= _days(start)) & (self.ret_day <= _days(end)))

    def _cut(self, keep: np.ndarray, keep_ret: np.ndarray) -> Dataset:
        return Dataset(**{**self._static(), **{k: getattr(self, k)[keep] for k in _EVENT_FIELDS},
                          **{k: getattr(self, k)[keep_ret] for k in _RETURN_FIELDS},
                          "catalog_repeatable": self.catalog_repeatable})

    def _static(self) -> dict:
        return {**{k: getattr(self, k) for k in _STATIC_FIELDS}, "names": self.names}

    def returned(self) -> sp.csr_matrix:
        """Customer × product, 1 where the customer returned the product (in this dataset's period)."""
        m = sp.csr_matrix((np.ones(len(self.ret_user), dtype=np.float32), (self.ret_user, self.ret_item)),
                          shape=(self.n_users, self.n_items))
        m.data[:] = 1.0
        return m

    def not_recommendable(self, repeats: bool = False) -> sp.csr_matrix:
        """Customer × product, 1 where the product may not be recommended to the customer: what they returned,
        and what they bought (with ``repeats``, only the products not worth buying again, learnt from this
        dataset's repeat rates). One rule for the time split, the champion gate and publishing."""
        bought = self.bought()
        kept = bought.multiply(~self.learned_repeatable()[None, :]) if repeats else bought
        m = (kept + self.returned()).tocsr()
        m.data[:] = 1.0
        m.eliminate_zeros()
        return m

    def repeat_rates(self) -> tuple[np.ndarray, np.ndarray]:
        """Per product: (buyers, share of buyers who purchased it on two or more distinct days)."""
        p = self.purchase
        days = pd.DataFrame({"u": self.user[p], "i": self.item[p], "d": self.day[p]}).drop_duplicates()
        per_pair = days.groupby(["u", "i"]).size()
        items = per_pair.index.get_level_values("i").to_numpy()
        buyers = np.bincount(items, minlength=self.n_items).astype(np.float64)
        repeaters = np.bincount(items, weights=(per_pair.to_numpy() >= 2), minlength=self.n_items)
        return buyers, repeaters / np.maximum(buyers, 1)

    def learned_repeatable(self, min_buyers: int = 5, min_rate: float = 0.2) -> np.ndarray:
        """Whether each product is worth recommending again, learnt from this dataset's purchases.

        A product with at least ``min_buyers`` buyers is repeatable when at least ``min_rate`` of them bought it
        on two or more days; otherwise its category's pooled repeat rate decides (when the category has
        ``min_buyers`` buyers); otherwise the catalog flag.
        """
        flag = self.catalog_repeatable if self.catalog_repeatable is not None else self.repeatable
        buyers, rate = self.repeat_rates()
        n_cat = int(self.category.max()) + 1 if len(self.category) else 0
        cat_buyers = np.bincount(self.category, weights=buyers, minlength=n_cat)
        cat_rep = np.bincount(self.category, weights=buyers * rate, minlength=n_cat)
        cat_rate = cat_rep / np.maximum(cat_buyers, 1)
        out = np.where(cat_buyers[self.category] >= min_buyers, cat_rate[self.category] >= min_rate, flag)
        return np.where(buyers >= min_buyers, rate >= min_rate, out).astype(bool)

    def with_learned_repeatable(self) -> Dataset:
        """A copy whose ``repeatable`` is :meth:`learned_repeatable` (the catalog flag kept aside)."""
        out = Dataset(**{**self._static(), **{k: getattr(self, k) for k in _EVENT_FIELDS + _RETURN_FIELDS}})
        out.catalog_repeatable = self.catalog_repeatable if self.catalog_repeatable is not None else self.repeatable
        out.repeatable = self.learned_repeatable()
        return out

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
        """Write ``path`` (npz) atomically with a ``<path>.sha256`` checksum beside it."""
        from omnifuse.artifacts import write_file

        arrays = {k: getattr(self, k) for k in _STATIC_FIELDS + _EVENT_FIELDS + _RETURN_FIELDS}
        arrays["customers"] = arrays["customers"].astype(str)
        arrays["products"] = arrays["products"].astype(str)
        if self.catalog_repeatable is not None:
            arrays["catalog_repeatable"] = self.catalog_repeatable
        if self.names is not None:
            arrays["names"] = self.names.astype(str)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
        os.close(fd)
        try:
            np.savez(tmp, **arrays)
            write_file(path, Path(tmp).read_bytes())
        finally:
            Path(tmp).unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> Dataset:
        """Read a dataset written by :meth:`save`, verifying its checksum (``ArtifactError`` names the file)."""
        from omnifuse.artifacts import ArtifactError, read_file

        raw = read_file(path)
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except Exception as exc:  # noqa: BLE001 - any decoding failure means a corrupt file
            raise ArtifactError(f"{path}: not a readable dataset ({exc}); re-run prepare_training") from exc
        data["customers"] = data["customers"].astype(object)
        data["products"] = data["products"].astype(object)
        if "names" in data:
            data["names"] = data["names"].astype(object)
        return cls(**data)


_STATIC_FIELDS = ["customers", "products", "category", "brand", "price_band", "price", "in_stock", "repeatable",
                  "in_store"]
_EVENT_FIELDS = ["user", "item", "weight", "day", "channel", "purchase", "basket"]
_RETURN_FIELDS = ["ret_user", "ret_item", "ret_day"]


def _days(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def from_frames(events: pd.DataFrame, catalog: pd.DataFrame) -> Dataset:
    """Build a Dataset from ``interactions_window.sql`` rows and ``catalog.sql`` rows.

    Events of products missing from the current catalog are dropped (they cannot be recommended). Rows are
    sorted on every column first (the result does not depend on the rows' physical order); returns cancel
    purchases as the module docstring says.
    """
    catalog = catalog.sort_values("product_id", ignore_index=True, kind="stable")
    products = catalog["product_id"].to_numpy(dtype=object)
    events = events.astype({"customer_id": str, "product_id": str, "channel": str, "event_type": str,
                            "event_date": str, "basket": str})
    sort_cols = [c for c in ("customer_id", "product_id", "event_date", "event_epoch", "event_type", "channel",
                             "basket") if c in events.columns]
    events = events.sort_values(sort_cols, kind="stable", ignore_index=True)
    item = pd.Index(products).get_indexer(events["product_id"])
    events = events[item >= 0].reset_index(drop=True)
    item = item[item >= 0]
    events, item, ret = _cancel_returned(events, item)
    customers, user = np.unique(events["customer_id"].to_numpy(dtype=str), return_inverse=True)
    ret_user = pd.Index(customers).get_indexer(ret["customer_id"].to_numpy(dtype=str))
    ret = ret[ret_user >= 0]  # a customer whose only events are returns has nothing to learn from
    ret_user = ret_user[ret_user >= 0]
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
        names=catalog["name"].fillna("").astype(str).to_numpy(dtype=object) if "name" in catalog else None,
        user=user.astype(np.int32),
        item=item.astype(np.int32),
        weight=events["event_type"].map(EVENT_WEIGHTS).fillna(1.0).to_numpy(dtype=np.float32),
        day=(pd.to_datetime(events["event_date"]) - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=np.int64),
        channel=pd.Index(CHANNELS).get_indexer(events["channel"]).astype(np.int8),
        purchase=(events["event_type"] == "purchase").to_numpy(),
        basket=pd.factorize(events["basket"], sort=True)[0].astype(np.int64),
        ret_user=ret_user.astype(np.int32),
        ret_item=ret["item"].to_numpy(dtype=np.int32),
        ret_day=(pd.to_datetime(ret["event_date"]) - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=np.int64),
    )


def _cancel_returned(events: pd.DataFrame, item: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Split off the return lines and drop the purchases they cancel (see the module docstring).

    Returns (events without returns and cancelled purchases, their product indexes, the returns with ``item``).
    """
    is_ret = (events["event_type"] == "return").to_numpy()
    ret = events[is_ret].assign(item=item[is_ret])
    if not is_ret.any():
        return events, item, ret
    ev = events.assign(item=item)
    purchases = ev[ev["event_type"] == "purchase"]
    cancel: set[int] = set()
    # the latest not yet cancelled purchase on or before each return's day (pairs with returns only)
    wanted = set(zip(ret["customer_id"], ret["item"], strict=True))
    pur = purchases[[(c, i) in wanted for c, i in zip(purchases["customer_id"], purchases["item"], strict=True)]]
    by_pair: dict[tuple, list[tuple[str, int]]] = {}
    for idx, c, i, d in zip(pur.index, pur["customer_id"], pur["item"], pur["event_date"], strict=True):
        by_pair.setdefault((c, i), []).append((d, idx))
    for (c, i, d) in sorted(zip(ret["customer_id"], ret["item"], ret["event_date"], strict=True),
                            key=lambda t: (t[0], t[1], t[2])):
        options = [(day, idx) for day, idx in by_pair.get((c, i), []) if day <= d and idx not in cancel]
        if options:
            cancel.add(max(options)[1])
    keep = ~is_ret & ~ev.index.isin(sorted(cancel))
    return events[keep].reset_index(drop=True), item[keep], ret.reset_index(drop=True)


def _copy_frame(cur: psycopg2.extensions.cursor, sql_name: str, params: dict) -> pd.DataFrame:
    query = sql.SQL(cur.mogrify(warehouse.sql_text(sql_name), params).decode())
    buf = io.StringIO()
    cur.copy_expert(sql.SQL("copy ({}) to stdout with (format csv, header true)").format(query), buf)
    buf.seek(0)
    return pd.read_csv(buf, dtype={"customer_id": str, "product_id": str, "basket": str})


def load_dataset(start: date, end: date, url: str | None = None) -> Dataset:
    """Attributed interactions with start <= event_date <= end, and the current catalog, from the warehouse."""
    with warehouse.transaction(url) as cur:
        events = _copy_frame(cur, "dataset/interactions_window.sql", {"start_date": start, "end_date": end})
        cur.execute(warehouse.sql_text("dataset/catalog.sql"))
        catalog = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
    return from_frames(events, catalog)
