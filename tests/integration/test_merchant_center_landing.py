"""A catalog delivered as a Google Merchant Center product feed (``format = "merchant_center"``), loaded by the
real ``omnifuse_ingest`` DAG: the same snapshot as the native ``products.csv``, every event source judged against
it exactly as before, bad feed rows quarantined with the catalog's reasons, and a re-run gives the same tables."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import date

from omnifuse import warehouse
from omnifuse.airflow_glue import run_ingest_days
from omnifuse.config import load_settings
from omnifuse.manifest import write_manifest

D = date(2026, 11, 2)
HEADER = ["id", "title", "description", "link", "price", "sale_price", "availability", "brand", "product_type",
          "google_product_category"]


def _feed(native: list[dict]) -> list[list[str]]:
    rows = []
    for i, p in enumerate(native):
        sale = f"{float(p['price']) * 0.9:.2f} {p['currency'] or 'EUR'}" if i == 0 else ""
        rows.append([p["sku"], p["name"], f"{p['name']}, tab-free", f"https://shop.example/p/{p['sku']}",
                     f"{p['price']} {p['currency'] or 'EUR'}", sale,
                     "in stock" if int(p["stock"] or 0) > 0 else "out of stock", p["brand"],
                     "" if i == 1 else p["category"], "Animals & Pet Supplies" if i == 1 else ""])
    return rows


def _tables(url: str) -> dict[str, list]:
    with warehouse.transaction(url) as cur:
        found = {}
        for table, columns, order in (
            ("core.product_snapshots", "*", "product_id"),
            ("quarantine.products", "_source_file, _line_no, reason, detail, line", "_line_no"),
            ("staging.web_events", "*", "event_id"),
            ("staging.store_sales", "*", "receipt_id, line_no"),
        ):
            key = "snapshot_date" if table == "core.product_snapshots" else "_arrival_date"
            cur.execute(f"select {columns} from {table} where {key} = %s order by {order}", (D,))  # noqa: S608
            found[table] = [tuple(str(v) for v in row) for row in cur.fetchall()]
        cur.execute("select channel, lines_read, rows_staged, rows_quarantined, duplicates_dropped, "
                    "quarantine_by_reason from ops.load_audit where business_date = %s order by channel", (D,))
        found["audit"] = cur.fetchall()
    return found


def test_a_merchant_center_feed_is_the_days_catalog(tiny_world, clean_warehouse, monkeypatch, tmp_path):
    landing = tmp_path / "landing"
    for folder in ("catalog", "crm", "web", "mobile", "social", "store"):
        shutil.copytree(tiny_world / folder / D.isoformat(), landing / folder / D.isoformat())
    products = landing / "catalog" / D.isoformat() / "products.csv"
    with open(products, newline="") as fh:
        native = list(csv.DictReader(fh))
    planted = [
        ["SKU-BAD-1", "Broken price", "", "", "twelve USD", "", "in stock", "b", "home", ""],     # invalid_price
        ["SKU-BAD-2", "Odd availability", "", "", "3.00 EUR", "", "soon", "b", "home", ""],      # invalid_stock
        ["", "No id", "", "", "3.00 EUR", "", "in stock", "b", "home", ""],                       # missing_field:sku
        ["SKU-BAD-3", "Unknown currency", "", "", "3.00 XYZ", "", "in stock", "b", "home", ""],   # unknown_currency
    ]
    with open(products, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(_feed(native) + planted)
    write_manifest(landing / "catalog" / D.isoformat())
    (landing / "_mappings").mkdir()
    (landing / "_mappings" / "catalog.toml").write_text(
        'version = 1\nformat = "merchant_center"\n[defaults]\nin_store = "true"\n')

    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", str(landing))
    assert run_ingest_days([D], load_settings()) == ["success"]
    first = _tables(clean_warehouse)
    audit = {row[0]: row[1:] for row in first["audit"]}
    lines, staged, quarantined, dups, reasons = audit["catalog"]
    assert (lines, staged, dups) == (len(native) + 4, len(native), 0)
    assert reasons == {"invalid_price": 1, "invalid_stock": 1, "missing_field:sku": 1, "unknown_currency": 1}
    assert sorted(row[1] for row in first["quarantine.products"]) == [
        str(len(native) + n) for n in (2, 3, 4, 5)]

    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select product_id, name, category, brand, price, currency, stock, in_store, repeatable "
                    "from core.product_snapshots where snapshot_date = %s order by product_id", (D,))
        snap = {r[0]: r[1:] for r in cur.fetchall()}
    for i, p in enumerate(native):
        name, category, brand, price, currency, stock, in_store, repeatable = snap[p["sku"]]
        assert (name, brand, in_store, repeatable) == (p["name"], p["brand"], True, False)
        assert category == ("Animals & Pet Supplies" if i == 1 else p["category"])
        want = round(float(p["price"]) * (0.9 if i == 0 else 1), 2)
        assert float(price) == want and currency == (p["currency"] or "EUR").upper()
        assert stock == (1 if int(p["stock"] or 0) > 0 else 0)

    # the event sources are judged against this catalog exactly as against the native one
    truth = json.loads((tiny_world / "truth" / "mess" / f"{D.isoformat()}.json").read_text())
    for channel in ("web", "mobile", "social", "store"):
        lines, staged, quarantined, dups, reasons = audit[channel]
        assert lines == staged + quarantined + dups
        assert staged == truth[channel]["expected"]["rows_staged"], channel
        assert reasons == truth[channel]["expected"]["rows_quarantined_by_reason"], channel

    assert run_ingest_days([D], load_settings()) == ["success"]
    assert _tables(clean_warehouse) == first
