"""A Google Merchant Center product feed (the product data specification, as a tab-separated text feed) read
as the ``catalog`` source: ``format = "merchant_center"`` in ``<mapping dir>/catalog.toml``.

The feed is read by the CSV reader with a preset mapping (tab delimiter; ``id`` → ``sku``, ``title`` → ``name``,
``product_type`` → ``category``; ``brand`` and ``price`` keep their names), then each record is rewritten by
:func:`to_catalog`:

- ``price`` ``"12.99 USD"`` → ``price = 12.99``, ``currency = USD``; a ``sale_price`` that is given wins (the
  price paid now). A value that does not read as ``<number> [<ISO 4217>]`` is left as it came, so staging
  quarantines it as ``invalid_price``.
- ``availability`` (``in stock`` / ``in_stock``, ``out of stock``, ``preorder``, ``backorder``) → ``stock`` 1 or
  0 (orderable from stock now or not): the feed has no counts. Another value is left in ``stock``, so staging
  quarantines it as ``invalid_stock``.
- ``category`` = ``product_type`` (the shop's own taxonomy, as written), else ``google_product_category``.
- ``repeatable`` and ``in_store`` (not in Google's specification) default to ``false``; a mapping's
  ``[defaults]`` may set them (and any preset key may be overridden by the mapping's own sections).
"""

from __future__ import annotations

import re

FORMAT = "merchant_center"
DELIMITER = "\t"
#: our column = their header (the Merchant Center attribute names)
COLUMNS = {"sku": "id", "name": "title", "category": "product_type"}
#: columns the feed does not have (or may leave empty), filled before :func:`to_catalog` runs
DEFAULTS = {"category": "", "currency": "", "stock": "", "repeatable": "false", "in_store": "false"}
#: availability -> stock flag
AVAILABILITY = {"in stock": "1", "out of stock": "0", "preorder": "0", "backorder": "0"}

_PRICE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]{3})?\s*$")


def _price(text: str | None) -> tuple[str, str | None] | None:
    """``"12.99 USD"`` → (``"12.99"``, ``"USD"``); ``"12.99"`` → (``"12.99"``, None); otherwise None."""
    found = _PRICE.match(text or "")
    if found is None:
        return None
    return found.group(1), found.group(2).upper() if found.group(2) else None


def to_catalog(row: dict[str, str]) -> dict[str, str]:
    """One feed record (keyed by our column names after the preset renames) as a ``products.csv`` record."""
    sale = row.get("sale_price") or ""
    chosen = _price(sale) if sale.strip() else None
    chosen = chosen or _price(row.get("price"))
    if chosen is not None:
        row["price"], currency = chosen
        if currency:
            row["currency"] = currency
    availability = (row.get("availability") or "").strip().lower().replace("_", " ")
    if availability:
        row["stock"] = AVAILABILITY.get(availability, row["availability"])
    if not row.get("category"):
        row["category"] = row.get("google_product_category", "")
    return row
