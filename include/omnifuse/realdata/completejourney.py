"""84.51° "The Complete Journey" 2.0 (sample) → omnifuse's landing zone (grocery POS, catalog, CRM per date).

**The data set.** Grocery purchases of 2,469 households of a US supermarket chain (84.51° / Kroger) over one
year, 2017-01-01 .. 2018-01-01, as packaged by the R package ``completejourney`` (Boehmke & Mortimer; licence
CC0 — "Originates from the 84.51° Complete Journey 2.0 source files"). The package ships the full
``transactions`` (1,469,307 lines) only as a separate download; it includes ``transactions_sample``: **75,000
lines sampled at random from the whole year** (2,377 households, 20,902 products, 47,243 baskets), plus the
full ``products`` table (92,331 products: ``department``, ``product_category``, ``product_type``, ``brand``,
``package_size``) and ``demographics``. Because lines (not households or baskets) were sampled, a household's
history here is about 5 % of its real one: use it for the shape of grocery data (categories, repeat buying,
weekly trips), not for absolute accuracy levels.

Columns of ``transactions_sample``: ``household_id``, ``store_id``, ``basket_id``, ``product_id``,
``quantity``, ``sales_value`` (USD, after the retailer's discounts), ``retail_disc``, ``coupon_disc``,
``coupon_match_disc``, ``week``, ``transaction_timestamp``.

**How to obtain it (no download at run time).** From the package's public repository (``.rda`` files under
4 MiB; the full ``data/transactions.rds`` is larger and is not in the snapshot this machine can fetch)::

    repo   bradleyboehmke/completejourney
    commit 5b5d06192b9856edd04e4d405787af2f2e4a1fef (HEAD when fetched; data/transactions_sample.rda
           last changed in 9f4dcae4b25e61f8a0fe36d4ae7128c9e8319cbd)
    paths  data/transactions_sample.rda  1,158,897 bytes,
               sha256 3abc5ec5a86c25913564a22314ea9ad2ab98160ebe77ee99672e0378929f0a03
           data/products.rda              869,019 bytes,
               sha256 a80c6df33623b4af296ae9f317a6647e369db7e8ce7e7baed0e1bf44b9d979e5

    git -C completejourney show HEAD:data/transactions_sample.rda > transactions_sample.rda   (same for products)

The project's virtualenv cannot read ``.rda``; convert once to CSV with any tool, e.g.::

    python -m venv /tmp/rda && /tmp/rda/bin/pip install pandas pyreadr
    /tmp/rda/bin/python -c "import pyreadr; [df.to_csv(f'{k}.csv.gz', index=False) for n in
        ('transactions_sample', 'products') for k, df in pyreadr.read_r(f'{n}.rda').items()]"

(on the development machine: ``/work/data/completejourney/transactions_sample.csv.gz`` and ``products.csv.gz``
beside it). :func:`read_lines` reads the transactions file and, when present, ``products.csv.gz`` (or
``products.csv``) in the same folder.

**Mapping to the landing contract** (one store ``CJ-US``: the data set's 293 ``store_id`` are folded into
one, ``America/New_York``, USD):

- ``store/<date>/pos.csv``: ``basket_id`` → ``receipt_id``, ``product_id`` → ``sku``, ``quantity`` (rounded
  to whole units; fuel lines carry very large quantities and zero-quantity lines exist: both kept as they
  are), ``sales_value / quantity`` → ``unit_price``, ``transaction_timestamp`` → ``sold_at`` (read as
  store-local time), ``household_id`` → ``loyalty_card`` ``CJ<id>``.
- ``crm/<date>/customers.csv``: every household seen on or before the date; ``country`` ``US``.
- ``catalog/<date>/products.csv``: ``name`` = ``product_type`` (else ``product_category``, else
  ``department``), ``category`` = ``product_category`` (else ``department``), ``price`` = latest unit price,
  stock 1; ``fx_rates.csv``: a fixed, approximate 2017 rate (1 USD ≈ 0.89 EUR).
- :data:`NON_PRODUCT_DEPARTMENTS` (coupons, fuel, postage, donations, store supplies) are flagged
  ``non_product`` for evaluation; they are landed as they are.
- ``web/``, ``mobile/``, ``social/``: an empty delivery every day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from omnifuse.realdata.online_retail import ConvertOptions as _BaseOptions
from omnifuse.realdata.online_retail import ConvertSummary, convert

__all__ = ["COLUMNS", "DEFAULT_SRC", "NON_PRODUCT_DEPARTMENTS", "ConvertOptions", "ConvertSummary", "convert",
           "normalise", "read_lines"]

DEFAULT_SRC = Path("/work/data/completejourney/transactions_sample.csv.gz")
COLUMNS = ["household_id", "basket_id", "product_id", "quantity", "sales_value", "transaction_timestamp"]
PRODUCT_COLUMNS = ["product_id", "department", "product_category", "product_type"]
#: Departments whose lines are not products a list could recommend (flagged ``non_product``).
NON_PRODUCT_DEPARTMENTS = frozenset({"COUPON", "FUEL", "POSTAL CENTER", "CHARITABLE CONT", "CNTRL/STORE SUP",
                                     "PROD-WHS SALES"})


@dataclass(frozen=True)
class ConvertOptions(_BaseOptions):
    """:class:`omnifuse.realdata.online_retail.ConvertOptions` with the Complete Journey's store and currency."""

    store_id: str = "CJ-US"
    city: str = "Cincinnati"
    timezone: str = "America/New_York"
    currency: str = "USD"
    catalog_currency: str = "USD"
    rates_to_eur: dict[str, float] = field(default_factory=lambda: {"EUR": 1.0, "USD": 0.89})
    card_prefix: str = "CJ"


def read_lines(path: Path | str) -> pd.DataFrame:
    """Read the transactions file (``.csv`` / ``.csv.gz``) and the products table beside it, if any."""
    path = Path(path)
    if not path.name.lower().endswith((".csv", ".csv.gz")):
        raise ValueError(f"{path}: unknown format; give the Complete Journey transactions as .csv or .csv.gz "
                         "(see omnifuse.realdata.completejourney for how to convert the package's .rda).")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    products = None
    for name in ("products.csv.gz", "products.csv"):
        if (path.parent / name).exists():
            products = pd.read_csv(path.parent / name, dtype=str, keep_default_na=False)
            break
    return normalise(raw, products)


def normalise(raw: pd.DataFrame, products: pd.DataFrame | None = None) -> pd.DataFrame:
    """The data set's lines as :func:`omnifuse.realdata.online_retail.normalise`'s frame, plus ``category``
    and ``non_product`` (from ``products``; products missing from it get an empty category and count as
    products). Grain: one transaction line; ``line_no`` 1.. in file order within the basket."""
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"Complete Journey transactions lack columns {missing} (has {list(raw.columns)}); "
                         f"expected the completejourney package's columns {COLUMNS}.")
    quantity = pd.to_numeric(raw["quantity"]).round().astype("int64")
    value = pd.to_numeric(raw["sales_value"]).astype(float)
    out = pd.DataFrame({
        "invoice": raw["basket_id"].str.strip(),
        "sku": raw["product_id"].str.strip(),
        "quantity": quantity,
        "invoiced_at": pd.to_datetime(raw["transaction_timestamp"]),
        "price": np.where(quantity != 0, value / quantity.replace(0, 1), value).round(3),
        "customer_id": raw["household_id"].str.strip(),
        "country": "US",
    })
    if products is not None:
        lacking = [c for c in PRODUCT_COLUMNS if c not in products.columns]
        if lacking:
            raise ValueError(f"Complete Journey products lack columns {lacking} (has {list(products.columns)}).")
        table = products[PRODUCT_COLUMNS].fillna("").astype(str).drop_duplicates("product_id").set_index("product_id")
        found = table.reindex(out["sku"]).fillna("")
        category = found["product_category"].where(found["product_category"] != "", found["department"])
        name = found["product_type"].where(found["product_type"] != "", category)
        out["description"] = name.to_numpy()
        out["category"] = category.to_numpy()
        out["non_product"] = found["department"].isin(NON_PRODUCT_DEPARTMENTS).to_numpy()
    else:
        out["description"] = ""
        out["category"] = ""
        out["non_product"] = False
    out["line_no"] = out.groupby("invoice", sort=False).cumcount() + 1
    out = out.sort_values("invoiced_at", kind="stable").reset_index(drop=True)
    out["business_date"] = out["invoiced_at"].dt.date
    return out
