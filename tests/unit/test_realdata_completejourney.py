"""The Complete Journey converter on a tiny hand-made sample of the R package's tables: baskets as receipts,
categories and non-products from the products table beside the file, the landing contract in USD."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest
from omnifuse.realdata import DATASETS, dataset, non_product
from omnifuse.realdata.completejourney import ConvertOptions, convert, read_lines

# transactions_sample as pyreadr writes it from the package's .rda; two days, one without sales between.
TRANSACTIONS = """household_id,store_id,basket_id,product_id,quantity,sales_value,retail_disc,coupon_disc,\
coupon_match_disc,week,transaction_timestamp
906,309,31198705046,1075313,1.0,1.5,0.43,0.0,0.0,1,2017-01-01 12:30:27
906,309,31198705046,995211,2.0,3.76,0.0,0.0,0.0,1,2017-01-01 12:30:27
1873,368,31198640134,6534178,1.0,20.01,0.0,0.0,0.0,1,2017-01-01 13:47:20
1873,368,31198999999,995211,0.0,1.88,0.0,0.0,0.0,1,2017-01-03 09:00:00
"""
PRODUCTS = """product_id,manufacturer_id,department,brand,product_category,product_type,package_size
1075313,2,GROCERY,National,SEAFOOD - SHELF STABLE,TUNA,5 OZ
995211,69,GROCERY,Private,BAG SNACKS,BAGGED CHEESE SNACKS,
6534178,69,FUEL,Private,,,
"""


def _write(tmp_path: Path, products: bool = True) -> Path:
    (tmp_path / "transactions_sample.csv").write_text(TRANSACTIONS)
    if products:
        (tmp_path / "products.csv").write_text(PRODUCTS)
    return tmp_path / "transactions_sample.csv"


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_read_lines_joins_the_products_beside_the_file(tmp_path):
    lines = read_lines(_write(tmp_path))
    assert lines["invoice"].tolist() == ["31198705046", "31198705046", "31198640134", "31198999999"]
    assert lines["line_no"].tolist() == [1, 2, 1, 1]
    assert lines["price"].tolist() == [1.5, 1.88, 20.01, 1.88]  # sales_value per unit; zero quantity kept
    assert lines["description"].tolist()[:2] == ["TUNA", "BAGGED CHEESE SNACKS"]
    assert lines["category"].tolist() == ["SEAFOOD - SHELF STABLE", "BAG SNACKS", "FUEL", "BAG SNACKS"]
    assert non_product(lines).tolist() == [False, False, True, False]  # fuel is not a product to recommend


def test_without_products_every_line_counts_as_a_product(tmp_path):
    lines = read_lines(_write(tmp_path, products=False))
    assert lines["category"].tolist() == ["", "", "", ""] and not non_product(lines).any()


def test_a_file_without_the_columns_names_what_is_missing(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("household,basket\n1,2\n")
    with pytest.raises(ValueError, match=r"lack columns \['household_id'"):
        read_lines(path)


def test_convert_writes_the_landing_contract_in_usd(tmp_path):
    out = tmp_path / "landing"
    summary = convert(read_lines(_write(tmp_path)), out, date(2017, 1, 1), date(2017, 1, 3), ConvertOptions())
    assert summary.empty_store_days == [date(2017, 1, 2)] and summary.pos_lines == 4
    pos = _csv(out / "store" / "2017-01-01" / "pos.csv")
    assert [(r["receipt_id"], r["line_no"], r["sku"], r["quantity"], r["unit_price"], r["loyalty_card"])
            for r in pos] == [("31198705046", "1", "1075313", "1", "1.5", "CJ906"),
                              ("31198705046", "2", "995211", "2", "1.88", "CJ906"),
                              ("31198640134", "1", "6534178", "1", "20.01", "CJ1873")]
    assert {(r["store_id"], r["currency"]) for r in pos} == {("CJ-US", "USD")}
    assert pos[0]["sold_at"] == "2017-01-01 12:30:27"
    products = {r["sku"]: r for r in _csv(out / "catalog" / "2017-01-01" / "products.csv")}
    assert (products["1075313"]["name"], products["1075313"]["category"]) == ("TUNA", "SEAFOOD - SHELF STABLE")
    assert products["6534178"]["category"] == "FUEL"
    assert {r["currency"] for r in _csv(out / "catalog" / "2017-01-01" / "fx_rates.csv")} == {"EUR", "USD"}


def test_registered():
    assert DATASETS["completejourney"] == "completejourney"
    assert dataset("completejourney").read_lines is read_lines
