"""UCI "Online Retail II" → omnifuse's landing zone (POS, catalog and CRM per business date).

**The data set.** Chen, D. (2012). *Online Retail II* [Dataset]. UCI Machine Learning Repository,
https://doi.org/10.24432/C5CG6D — licence CC BY 4.0 (redistribution allowed with attribution). All
transactions of a UK-based, registered non-store online retailer of gift-ware (many customers are
wholesalers), 2009-12-01 .. 2011-12-09, in two sheets ("Year 2009-2010": 525,461 lines; "Year 2010-2011":
541,910 lines). Columns: ``Invoice`` (6 digits; a leading ``C`` marks a cancellation), ``StockCode``,
``Description``, ``Quantity`` (negative for cancellations and returns), ``InvoiceDate`` (UK local time),
``Price`` (GBP per unit), ``Customer ID`` (5 digits, empty for guests), ``Country``. The first UCI release
("Online Retail", 2010-12 .. 2011-12) names them ``InvoiceNo``, ``UnitPrice`` and ``CustomerID``: both read.

**How to obtain it (no download at run time).** This machine reaches no web site, so the data were taken from
a public GitHub repository that stores the 2009-2010 sheet as Parquet (converted from UCI's ``.xlsx``,
525,461 rows, 3,710,431 bytes)::

    repo   mjankari/swe370-data-mining-project
    path   data/online_retail_ii.parquet
    commit 32aae8cd7fdc4437bb9373c74308859871c5624e  ("convert dataset from xlsx to parquet")
    sha256 c92e9d61461304e86794c1afb20785e94a6ab9399572123f72815d33ffa50e01

    git clone https://github.com/mjankari/swe370-data-mining-project
    git -C swe370-data-mining-project show 32aae8cd:data/online_retail_ii.parquet > online_retail_ii_2009_2010.parquet

With web access, UCI's own ``online_retail_II.xlsx`` (https://archive.ics.uci.edu/dataset/502/online+retail+ii)
is the primary source; its sheet "Year 2009-2010" holds the same lines. :func:`read_lines` reads ``.csv``,
``.csv.gz``, ``.parquet`` (needs ``pyarrow``) and ``.xlsx`` (needs ``openpyxl``; every sheet is read). The
project's virtualenv has neither optional reader, so convert once with any tool, e.g.::

    python -m venv /tmp/pq && /tmp/pq/bin/pip install pandas pyarrow
    /tmp/pq/bin/python -c "import pandas as pd; pd.read_parquet('online_retail_ii_2009_2010.parquet')
        .to_csv('online_retail_ii_2009_2010.csv.gz', index=False, date_format='%Y-%m-%d %H:%M:%S')"

(on the development machine: ``/work/data/online_retail_ii/online_retail_ii_2009_2010.csv.gz``, sha256
``9bc5be71…6c50``). That copy stores UCI's 2,928 missing descriptions as the text ``nan``; :func:`normalise`
reads them as missing. The data stay out of the repository even though the licence would allow them.

**A second year, a second check.** The first UCI release, "Online Retail" (Chen, D. (2015),
https://doi.org/10.24432/C5BW33, CC BY 4.0: 541,909 lines, 2010-12-01 .. 2011-12-09, the same retailer a year
later), is stored as Parquet in another public repository; its lines of 2010-12-01 .. 09 equal the 2009-2010
sheet's::

    repo   WhiteHorse101/OnlineEcommerce
    path   Data/Raw/online_retail.parquet
    commit cc5f128abc68a5b36f993ab84c68668f1d4c5cee
    sha256 399de155a1c07e4bc89d8ef4f75d619c70a6b4ed39cc76ea54d56c2c939fb72b

Convert it to ``.csv.gz`` as above (that copy fills UCI's 1,454 missing descriptions with the text
``Unknown``: write them back as empty), then ``bench/real_data.py --src online_retail_2010_2011.csv.gz``
(on the development machine: ``/work/data/second/online_retail_2010_2011.csv.gz``).

**Mapping to the landing contract** (one store: the retailer's web shop, ``Europe/London``, GBP):

- ``store/<date>/pos.csv``: ``Invoice`` → ``receipt_id``, position of the line in its invoice → ``line_no``,
  ``StockCode`` → ``sku``, ``Quantity`` → ``quantity`` (negative lines kept: returns and cancellations),
  ``Price`` → ``unit_price``, ``GBP`` → ``currency``, ``InvoiceDate`` → ``sold_at`` (store-local time),
  ``Customer ID`` → ``loyalty_card`` ``OR<id>`` (empty for guests). Non-product lines (``POST``, ``DOT``,
  ``M``, ``BANK CHARGES``, ``AMAZONFEE``, ``ADJUST`` …) are kept as they are; :func:`is_non_product` names
  them for evaluation only.
- ``crm/<date>/customers.csv``: every customer seen on or before the date: ``customer_id`` = ``Customer ID``,
  ``loyalty_card`` ``OR<id>``, ``signup_date`` = first invoice date, ``country`` = latest ``Country``,
  ``home_store_id`` = the store. No hashed contacts, no social handles.
- ``catalog/<date>/products.csv``: every stock code seen on or before the date: ``name`` = latest non-empty
  description (else the code), ``price`` = latest positive price (else the latest price; such a product is
  quarantined by the catalog's rules), ``category`` = :func:`category_of` the name, ``brand`` ``unknown``,
  ``stock`` 1 (the data set has no stock), ``repeatable`` false (omnifuse learns it), ``in_store`` true.
  ``stores.csv``: the one store; ``fx_rates.csv``: a fixed, approximate 2010 rate (the data set has none).
- ``web/``, ``mobile/``, ``social/``: an empty delivery every day (a manifest listing no file), and the same
  for ``store/`` on days without sales (Saturdays, the Christmas break).

Times and dates are the data set's own, unless ``shift_days`` moves every date and time by whole days (to put
old history after a DAG's ``start_date`` until a backfill can load dates before it; a multiple of 7 keeps the
weekdays).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from omnifuse.generate.writers import write_csv, write_gzip_lines, write_manifest

#: Where the 2009-2010 file is on the development machine (see the module's docstring).
DEFAULT_SRC = Path("/work/data/online_retail_ii/online_retail_ii_2009_2010.csv.gz")

#: The data set's column → our name. Older release names are mapped first (see :data:`ALIASES`).
COLUMNS = {
    "Invoice": "invoice", "StockCode": "sku", "Description": "description", "Quantity": "quantity",
    "InvoiceDate": "invoiced_at", "Price": "price", "Customer ID": "customer_id", "Country": "country",
}
ALIASES = {"InvoiceNo": "Invoice", "UnitPrice": "Price", "CustomerID": "Customer ID"}

#: Stock codes that are charges, fees, adjustments or vouchers rather than products.
NON_PRODUCT_CODES = frozenset({
    "POST", "DOT", "M", "C2", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "ADJUST", "ADJUST2",
    "TEST001", "TEST002",
})
_NON_PRODUCT_PREFIXES = ("gift_", "TEST")

POS_HEADER = ["receipt_id", "line_no", "store_id", "loyalty_card", "sku", "quantity", "unit_price", "currency",
              "sold_at"]
PRODUCTS_HEADER = ["sku", "name", "category", "brand", "price", "currency", "stock", "repeatable", "in_store"]
CRM_HEADER = ["customer_id", "email_sha256", "phone_sha256", "loyalty_card", "social_handles", "signup_date",
              "home_store_id", "country"]
SOCIAL_HEADER = ["interaction_id", "platform", "handle", "action", "sku", "occurred_at", "text"]
#: Channels the data set does not have: an empty delivery every day. ``name`` is the file written in
#: ``empty="header"`` mode (a file with no data line).
MISSING_CHANNELS = {"web": "events.ndjson.gz", "mobile": "events.json.gz", "social": "interactions.csv"}


@dataclass(frozen=True)
class ConvertOptions:
    """How the data set is placed in the landing zone. ``rates_to_eur`` must know ``currency`` and
    ``catalog_currency``; ``empty`` chooses an empty delivery's shape: ``manifest`` (a manifest listing no
    file: the contract) or ``header`` (files with a header and no data line)."""

    store_id: str = "OR-UK"
    city: str = "London"
    timezone: str = "Europe/London"
    currency: str = "GBP"
    catalog_currency: str = "GBP"
    rates_to_eur: dict[str, float] = field(default_factory=lambda: {"EUR": 1.0, "GBP": 1.17})
    card_prefix: str = "OR"
    empty: Literal["manifest", "header"] = "manifest"
    shift_days: int = 0


@dataclass
class ConvertSummary:
    days: list[date]  # landing dates written (shifted)
    pos_lines: int = 0
    negative_lines: int = 0
    anonymous_lines: int = 0
    empty_store_days: list[date] = field(default_factory=list)
    products: int = 0  # catalog size on the last day
    customers: int = 0  # CRM size on the last day


# --- reading ---------------------------------------------------------------------------------------------


def read_lines(path: Path | str) -> pd.DataFrame:
    """Read the data set's file(s) (``.csv[.gz]``, ``.parquet``, ``.xlsx``) into :func:`normalise`'s frame."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        raw = pd.read_csv(path, dtype={"Invoice": str, "InvoiceNo": str, "StockCode": str, "Description": str,
                                       "Country": str}, keep_default_na=False, na_values={"Customer ID": [""],
                                                                                          "CustomerID": [""]})
    elif name.endswith(".parquet"):
        raw = pd.read_parquet(path)
    elif name.endswith((".xlsx", ".xls")):
        raw = pd.concat(pd.read_excel(path, sheet_name=None, dtype={"Invoice": str, "StockCode": str}).values(),
                        ignore_index=True)
    else:
        raise ValueError(f"{path}: unknown format; give the Online Retail II data as .csv, .csv.gz, .parquet or "
                         ".xlsx (see omnifuse.realdata.online_retail for how to obtain it).")
    return normalise(raw)


def normalise(raw: pd.DataFrame) -> pd.DataFrame:
    """The data set's lines as a typed frame, in time order (file order within a time).

    Columns: ``invoice`` (str), ``line_no`` (1.. in file order within the invoice), ``sku`` (str),
    ``description`` (str, may be empty), ``quantity`` (int), ``invoiced_at`` (naive UK local time), ``price``
    (float, GBP), ``customer_id`` (str, empty for guests), ``country`` (str), ``business_date`` (date).
    """
    frame = raw.rename(columns=ALIASES)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"Online Retail data lacks columns {missing} (has {list(raw.columns)}); expected the UCI "
                         f"columns {list(COLUMNS)}.")
    frame = frame[list(COLUMNS)].rename(columns=COLUMNS)
    out = pd.DataFrame({
        "invoice": frame["invoice"].astype(str).str.strip(),
        "sku": frame["sku"].astype(str).str.strip(),
        # the GitHub Parquet copy stores UCI's 2,928 missing descriptions as the text "nan"
        "description": frame["description"].fillna("").astype(str).str.strip().replace("nan", ""),
        "quantity": pd.to_numeric(frame["quantity"]).astype("int64"),
        "invoiced_at": pd.to_datetime(frame["invoiced_at"]),
        "price": pd.to_numeric(frame["price"]).astype(float),
        "customer_id": _customer_ids(frame["customer_id"]),
        "country": frame["country"].fillna("").astype(str).str.strip(),
    })
    out["line_no"] = out.groupby("invoice", sort=False).cumcount() + 1
    out = out.sort_values("invoiced_at", kind="stable").reset_index(drop=True)
    out["business_date"] = out["invoiced_at"].dt.date
    return out


def _customer_ids(values: pd.Series) -> pd.Series:
    """``13085.0`` / ``13085`` / NaN → ``"13085"`` / ``""``."""
    numbers = pd.to_numeric(values.replace("", np.nan), errors="coerce")
    ids = numbers.map(lambda v: "" if pd.isna(v) else str(int(v)))
    return ids.astype(str)


def is_non_product(skus: pd.Series) -> pd.Series:
    """True for stock codes that are charges, fees, adjustments, tests or vouchers (not products)."""
    skus = skus.astype(str)
    return skus.isin(NON_PRODUCT_CODES) | skus.str.startswith(_NON_PRODUCT_PREFIXES)


_WORD = re.compile(r"[A-Za-z]{3,}")


def category_of(description: str) -> str:
    """A crude category: the last word of three letters or more of the description, lower case
    (``WHITE HANGING HEART T-LIGHT HOLDER`` → ``holder``), else ``unknown``."""
    words = _WORD.findall(description or "")
    return words[-1].lower() if words else "unknown"


# --- rows ------------------------------------------------------------------------------------------------


def format_price(value: float) -> str:
    """At most three decimals, no trailing zeros (``2.550`` → ``2.55``; ``0.001`` stays)."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def pos_rows(day: pd.DataFrame, options: ConvertOptions) -> list[list[object]]:
    """Receipt lines of one day (grain: invoice, line_no) in the store POS format."""
    shift = timedelta(days=options.shift_days)
    sold_at = (day["invoiced_at"] + shift).dt.strftime("%Y-%m-%d %H:%M:%S")
    cards = np.where(day["customer_id"] != "", options.card_prefix + day["customer_id"], "")
    return [
        [inv, ln, options.store_id, card, sku, int(q), format_price(p), options.currency, ts]
        for inv, ln, card, sku, q, p, ts in zip(
            day["invoice"].tolist(), day["line_no"].tolist(), cards.tolist(), day["sku"].tolist(),
            day["quantity"].tolist(), day["price"].tolist(), sold_at.tolist(), strict=True,
        )
    ]


def product_state(lines: pd.DataFrame, state: pd.DataFrame | None = None) -> pd.DataFrame:
    """The catalog known after ``lines`` (in time order), updating ``state``.

    Index ``sku``; columns ``name`` (latest non-empty description), ``price`` (latest positive price),
    ``last_price`` (latest price) and, when ``lines`` has a ``category`` column, ``category`` (latest non-empty).
    Products seen only with empty descriptions get their code as name.
    """
    named = lines[lines["description"] != ""].groupby("sku", sort=False)["description"].last().rename("name")
    positive = lines[lines["price"] > 0].groupby("sku", sort=False)["price"].last().rename("price")
    last = lines.groupby("sku", sort=False)["price"].last().rename("last_price")
    parts = [named, positive, last]
    columns = ["name", "price", "last_price"]
    if "category" in lines.columns:  # data sets that ship a category (else :func:`category_of` the name)
        known = lines[lines["category"] != ""]
        parts.append(known.groupby("sku", sort=False)["category"].last().rename("category"))
        columns.append("category")
    update = pd.concat(parts, axis=1)
    if state is None or state.empty:
        merged = update
    else:
        merged = update.combine_first(state)
    merged = merged.reindex(columns=columns)
    merged["name"] = merged["name"].where(merged["name"].notna(), merged.index.to_series())
    return merged.sort_index()


def catalog_rows(state: pd.DataFrame, options: ConvertOptions) -> list[list[object]]:
    """``products.csv`` rows of a catalog state (see :func:`product_state`)."""
    factor = options.rates_to_eur[options.currency] / options.rates_to_eur[options.catalog_currency]
    price = state["price"].where(state["price"].notna(), state["last_price"]) * factor
    names = state["name"].tolist()
    if "category" in state.columns:
        categories = [c if isinstance(c, str) and c else category_of(n)
                      for c, n in zip(state["category"].tolist(), names, strict=True)]
    else:
        categories = [category_of(n) for n in names]
    return [
        [sku, name, category, "unknown", format_price(p), options.catalog_currency, 1, "false", "true"]
        for sku, name, category, p in zip(state.index.tolist(), names, categories, price.tolist(), strict=True)
    ]


def customer_state(lines: pd.DataFrame, state: pd.DataFrame | None = None) -> pd.DataFrame:
    """The CRM known after ``lines``: index ``customer_id``; ``signup_date`` (first date), ``country`` (latest)."""
    known = lines[lines["customer_id"] != ""]
    grouped = known.groupby("customer_id", sort=False)
    update = pd.concat([grouped["business_date"].first().rename("signup_date"),
                        grouped["country"].last().rename("country")], axis=1)
    if state is None or state.empty:
        return update.sort_index()
    merged = update.combine_first(state)
    merged["signup_date"] = state["signup_date"].combine_first(update["signup_date"])
    return merged.reindex(columns=["signup_date", "country"]).sort_index()


def crm_rows(state: pd.DataFrame, options: ConvertOptions) -> list[list[object]]:
    """``customers.csv`` rows of a CRM state (see :func:`customer_state`)."""
    shift = timedelta(days=options.shift_days)
    return [
        [cid, "", "", options.card_prefix + cid, "", (signup + shift).isoformat(), options.store_id, country]
        for cid, signup, country in zip(state.index.tolist(), state["signup_date"].tolist(),
                                        state["country"].tolist(), strict=True)
    ]


# --- writing ---------------------------------------------------------------------------------------------


def write_empty_delivery(folder: Path, channel: str, mode: str) -> None:
    """An empty delivery: a manifest listing no file, or (``header`` mode) a file without data lines."""
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "manifest":
        write_manifest(folder, [])
        return
    if channel == "store":
        entries = [write_csv(folder / "pos.csv", POS_HEADER, [])]
    elif channel == "social":
        entries = [write_csv(folder / "interactions.csv", SOCIAL_HEADER, [])]
    else:
        entries = [write_gzip_lines(folder / MISSING_CHANNELS[channel], [])]
    write_manifest(folder, entries)


def convert(lines: pd.DataFrame, out: Path | str, start: date, end: date,
            options: ConvertOptions | None = None) -> ConvertSummary:
    """Write the landing zone for business dates ``start`` .. ``end`` (inclusive) of :func:`normalise`'s frame.

    The catalog and CRM of each date hold everything seen in the data on or before it (also before ``start``).
    """
    options = options or ConvertOptions()
    out = Path(out)
    shift = timedelta(days=options.shift_days)
    before = lines[lines["business_date"] < start]
    products = product_state(before)
    customers = customer_state(before)
    window = lines[(lines["business_date"] >= start) & (lines["business_date"] <= end)]
    by_day = dict(tuple(window.groupby("business_date", sort=True)))
    summary = ConvertSummary(days=[])
    day = start
    while day <= end:
        landing_date = (day + shift).isoformat()
        today = by_day.get(day)
        if today is not None:
            products = product_state(today, products)
            customers = customer_state(today, customers)
        folder = out / "catalog" / landing_date
        write_manifest(folder, [
            write_csv(folder / "products.csv", PRODUCTS_HEADER, catalog_rows(products, options)),
            write_csv(folder / "stores.csv", ["store_id", "city", "timezone", "currency"],
                      [[options.store_id, options.city, options.timezone, options.currency]]),
            write_csv(folder / "fx_rates.csv", ["rate_date", "currency", "rate_to_eur"],
                      [[landing_date, c, f"{r:.4f}"] for c, r in sorted(options.rates_to_eur.items())]),
        ])
        folder = out / "crm" / landing_date
        write_manifest(folder, [write_csv(folder / "customers.csv", CRM_HEADER, crm_rows(customers, options))])
        folder = out / "store" / landing_date
        if today is None or today.empty:
            write_empty_delivery(folder, "store", options.empty)
            summary.empty_store_days.append(day + shift)
        else:
            write_manifest(folder, [write_csv(folder / "pos.csv", POS_HEADER, pos_rows(today, options))])
            summary.pos_lines += len(today)
            summary.negative_lines += int((today["quantity"] < 0).sum())
            summary.anonymous_lines += int((today["customer_id"] == "").sum())
        for channel in MISSING_CHANNELS:
            write_empty_delivery(out / channel / landing_date, channel, options.empty)
        summary.days.append(day + shift)
        day += timedelta(days=1)
    summary.products = len(products)
    summary.customers = len(customers)
    return summary
