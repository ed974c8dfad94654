"""The Online Retail II converter on a tiny hand-made frame: landing files, returns kept, empty deliveries."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import date
from pathlib import Path

import pandas as pd
from omnifuse.realdata.online_retail import (
    ConvertOptions,
    category_of,
    convert,
    format_price,
    is_non_product,
    normalise,
    read_lines,
)

# Columns as UCI ships them; two days of sales (Fri 2010-12-03, Sun 2010-12-05), none on Saturday.
RAW = pd.DataFrame(
    [
        ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "2010-12-03 08:26:00", 2.55, 17850.0,
         "United Kingdom"],
        ["536365", "71053", "WHITE METAL LANTERN", 240, "2010-12-03 08:26:00", 3.39, 17850.0, "United Kingdom"],
        ["536366", "POST", "POSTAGE", 1, "2010-12-03 09:00:00", 18.0, 12583.0, "France"],
        ["536367", "71053", "", 2, "2010-12-03 10:00:00", 0.0, None, "United Kingdom"],
        ["C536379", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", -2, "2010-12-05 09:41:00", 2.95, 17850.0,
         "EIRE"],
        ["536380", "22728", "ALARM CLOCK BAKELIKE PINK", 24, "2010-12-05 09:45:00", 3.75, 12583.0, "France"],
    ],
    columns=["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"],
)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _manifest(folder: Path) -> list[str]:
    return [e["name"] for e in json.loads((folder / "_manifest.json").read_text())["files"]]


def test_normalise_types_ids_and_line_numbers():
    lines = normalise(RAW)
    assert lines["customer_id"].tolist() == ["17850", "17850", "12583", "", "17850", "12583"]
    assert lines["line_no"].tolist() == [1, 2, 1, 1, 1, 1]
    assert lines["quantity"].tolist()[4] == -2
    assert lines["business_date"].tolist()[0] == date(2010, 12, 3)


def test_missing_descriptions_written_as_nan_are_missing():
    raw = RAW.assign(Description=["nan", "WHITE METAL LANTERN", None, "", "X", "Y"])
    assert normalise(raw)["description"].tolist()[:4] == ["", "WHITE METAL LANTERN", "", ""]


def test_old_release_column_names_are_read():
    old = RAW.rename(columns={"Invoice": "InvoiceNo", "Price": "UnitPrice", "Customer ID": "CustomerID"})
    assert normalise(old).equals(normalise(RAW))


def test_read_csv_gz(tmp_path):
    path = tmp_path / "online_retail.csv.gz"
    with gzip.open(path, "wt") as handle:
        RAW.to_csv(handle, index=False)
    assert read_lines(path).equals(normalise(RAW))


def test_convert_writes_the_landing_contract(tmp_path):
    summary = convert(normalise(RAW), tmp_path, date(2010, 12, 3), date(2010, 12, 5))
    assert summary.days == [date(2010, 12, 3), date(2010, 12, 4), date(2010, 12, 5)]
    assert summary.empty_store_days == [date(2010, 12, 4)]
    assert (summary.pos_lines, summary.negative_lines, summary.anonymous_lines) == (6, 1, 1)

    pos = _csv(tmp_path / "store" / "2010-12-03" / "pos.csv")
    assert [(r["receipt_id"], r["line_no"], r["sku"], r["quantity"], r["unit_price"]) for r in pos] == [
        ("536365", "1", "85123A", "6", "2.55"), ("536365", "2", "71053", "240", "3.39"),
        ("536366", "1", "POST", "1", "18"), ("536367", "1", "71053", "2", "0"),
    ]
    assert [r["loyalty_card"] for r in pos] == ["OR17850", "OR17850", "OR12583", ""]
    assert {r["currency"] for r in pos} == {"GBP"} and pos[0]["sold_at"] == "2010-12-03 08:26:00"
    # the cancellation is kept, negative
    sunday = _csv(tmp_path / "store" / "2010-12-05" / "pos.csv")
    assert (sunday[0]["receipt_id"], sunday[0]["quantity"]) == ("C536379", "-2")

    # Saturday: no sales, an empty delivery; web/mobile/social are empty every day
    for channel in ("store", "web", "mobile", "social"):
        assert _manifest(tmp_path / channel / "2010-12-04") == []
    assert _manifest(tmp_path / "web" / "2010-12-05") == []

    # catalog: products seen so far; last positive price, last non-empty description, category rule
    products = {r["sku"]: r for r in _csv(tmp_path / "catalog" / "2010-12-03" / "products.csv")}
    assert sorted(products) == ["71053", "85123A", "POST"]
    assert products["71053"]["name"] == "WHITE METAL LANTERN" and products["71053"]["price"] == "3.39"
    assert products["85123A"]["category"] == "holder" and products["85123A"]["currency"] == "GBP"
    later = {r["sku"]: r for r in _csv(tmp_path / "catalog" / "2010-12-05" / "products.csv")}
    assert later["85123A"]["price"] == "2.95" and "22728" in later
    assert _manifest(tmp_path / "catalog" / "2010-12-05") == ["fx_rates.csv", "products.csv", "stores.csv"]

    # CRM: one row per customer seen so far, card linked, first date kept, latest country
    crm = {r["customer_id"]: r for r in _csv(tmp_path / "crm" / "2010-12-05" / "customers.csv")}
    assert sorted(crm) == ["12583", "17850"]
    assert crm["17850"]["loyalty_card"] == "OR17850"
    assert (crm["17850"]["signup_date"], crm["17850"]["country"]) == ("2010-12-03", "EIRE")


def test_convert_options_shift_header_mode_and_eur_catalog(tmp_path):
    options = ConvertOptions(shift_days=7, empty="header", catalog_currency="EUR")
    convert(normalise(RAW), tmp_path, date(2010, 12, 3), date(2010, 12, 5), options)
    pos = _csv(tmp_path / "store" / "2010-12-10" / "pos.csv")
    assert pos[0]["sold_at"] == "2010-12-10 08:26:00"
    assert _manifest(tmp_path / "store" / "2010-12-11") == ["pos.csv"]
    assert _csv(tmp_path / "store" / "2010-12-11" / "pos.csv") == []
    assert gzip.decompress((tmp_path / "web" / "2010-12-11" / "events.ndjson.gz").read_bytes()) == b""
    products = {r["sku"]: r for r in _csv(tmp_path / "catalog" / "2010-12-10" / "products.csv")}
    assert (products["71053"]["price"], products["71053"]["currency"]) == ("3.966", "EUR")


def test_small_rules():
    assert is_non_product(pd.Series(["POST", "85123A", "BANK CHARGES", "gift_0001_20", "M", "DCGS0058"])).tolist() \
        == [True, False, True, True, True, False]
    assert category_of("PINK CHERRY LIGHTS") == "lights" and category_of("") == "unknown"
    assert [format_price(x) for x in (2.5, 0.001, 0.0, -11062.06)] == ["2.5", "0.001", "0", "-11062.06"]
