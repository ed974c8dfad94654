"""Standard exports read as they come: GA4 BigQuery export rows as native web / mobile records
(``omnifuse.landing.ga4``, also as COPY rows) and Merchant Center feed records as catalog records
(``omnifuse.landing.merchant_center``)."""

from __future__ import annotations

import gzip
import json
from datetime import date

import pytest
from omnifuse import ingest, sources
from omnifuse.generate.ga4 import ga4_row
from omnifuse.landing.ga4 import expand
from omnifuse.landing_csv import MappingError, load_mapping

ROW = {
    "event_date": "20261102", "event_timestamp": "1793621617813123", "event_name": "purchase",
    "event_params": [{"key": "ga_session_id", "value": {"int_value": 1793620000}},
                     {"key": "currency", "value": {"string_value": "GBP"}},
                     {"key": "page_location", "value": {"string_value": "https://shop.example/checkout"}}],
    "user_id": "C0000007", "user_pseudo_id": "123456.789", "platform": "WEB",
    "device": {"category": "desktop", "web_info": {"browser": "Chrome"}}, "geo": {"country": "France"},
    "ecommerce": {"transaction_id": "T-1"},
    "items": [{"item_id": "SKU000001", "item_name": "x", "price": 12.5, "quantity": 2},
              {"item_id": "SKU000002", "price": 3.0, "quantity": 1}],
}


def test_one_record_per_item_with_the_native_web_fields():
    found = expand(json.dumps(ROW), "web")
    assert found.reason is None and found.skipped is None
    first, second = (json.loads(r) for r in found.records)
    assert first["event_id"] == "ga4:123456.789:1793621617813123:purchase:1"
    assert second["event_id"].endswith(":purchase:2")
    assert first["type"] == "checkout_complete"
    assert first["ts"] == "2026-11-02T12:13:37.813123Z"
    assert (first["cookie_id"], first["customer_id"], first["session_id"]) == ("123456.789", "C0000007", "1793620000")
    assert first["product"] == {"sku": "SKU000001", "price": 12.5, "quantity": 2, "currency": "GBP"}
    assert first["context"]["page"] == "https://shop.example/checkout"
    assert first["ga4"]["transaction_id"] == "T-1" and second["ga4"]["item_index"] == 2


def test_mobile_records_carry_epoch_ms_device_and_currency():
    row = {**ROW, "platform": "IOS", "event_name": "select_item", "event_timestamp": 1793621617813999,
           "app_info": {"version": "5.2.1"}}
    rec = json.loads(expand(json.dumps(row), "mobile").records[0])
    assert (rec["event"], rec["timestamp_ms"], rec["device_id"], rec["user_id"]) == (
        "tap_item", 1793621617813, "123456.789", "C0000007")
    assert rec["properties"]["currency"] == "GBP" and rec["app"] == {"version": "5.2.1", "os": "ios"}


@pytest.mark.parametrize(("line", "source", "reason", "skipped"), [
    ('{"event_name": "purchase", "items": [', "web", "malformed_json", None),
    ("[1, 2]", "web", "malformed_json", None),
    (json.dumps({**ROW, "event_name": None}), "web", "missing_field:event_name", None),
    (json.dumps({**ROW, "items": []}), "web", "missing_field:items", None),
    (json.dumps({k: v for k, v in ROW.items() if k != "items"}), "mobile", None, "platform:WEB"),
    (json.dumps({**ROW, "event_name": "page_view", "items": []}), "web", None, "event:page_view"),
    (json.dumps({**ROW, "event_name": "begin_checkout"}), "web", None, "event:begin_checkout"),
    (json.dumps({**ROW, "platform": "ANDROID"}), "web", None, "platform:ANDROID"),
])
def test_rows_that_are_not_interactions_or_cannot_be_expanded(line, source, reason, skipped):
    found = expand(line, source)
    assert (found.records, found.reason, found.skipped) == ((), reason, skipped)


def test_bad_values_are_carried_for_the_staging_rules():
    row = {**ROW, "event_timestamp": "yesterday", "items": [{"price": "abc"}]}
    rec = json.loads(expand(json.dumps(row), "web").records[0])
    assert rec["ts"] == "yesterday" and rec["product"] == {"sku": None, "price": "abc", "currency": "GBP"}


def test_copy_rows_share_the_ga4_line_number_and_count_items(tmp_path):
    path = tmp_path / "events.ndjson.gz"
    lines = [json.dumps(ROW), "{broken", json.dumps({**ROW, "event_name": "page_view"}), json.dumps(ROW)]
    with gzip.open(path, "wb") as fh:
        fh.write("\n".join(lines).encode())
    lf = ingest.LandedFile(path, "web/2026-11-02/events.ndjson.gz", path.stat().st_size, "x", 4)
    stats = ingest.FileLoad()
    out = b"".join(ingest._ga4_rows(lf, sources.get("web"), date(2026, 11, 2), stats))
    rows = [r.split(b"\t") for r in out.split(b"\n")[:-1]]
    assert [r[2] for r in rows] == [b"1", b"1", b"2", b"4", b"4"]
    assert rows[2][3:] == [b"{broken", b"\\N", b"malformed_json"]
    assert (stats.lines, stats.records) == (4, 5)
    assert any("event:page_view=1" in note for note in stats.notes)


def test_the_generator_writes_rows_that_read_back_as_the_native_record():
    native = ('{"event_id":"w-1","type":"add_to_cart","ts":"2026-11-02T12:13:37.813Z","cookie_id":"ck_1",'
              '"session_id":"s_1","customer_id":null,"product":{"sku":"SKU000018","price":30.02,"quantity":3},'
              '"context":{"page":"/p/SKU000018","referrer":"search","user_agent":"Mozilla/5.0"}}')
    rec = json.loads(expand(ga4_row(native, "web"), "web").records[0])
    assert (rec["type"], rec["ts"], rec["cookie_id"], rec["session_id"], rec["customer_id"]) == (
        "add_to_cart", "2026-11-02T12:13:37.813000Z", "ck_1", "s_1", None)
    assert rec["product"] == {"sku": "SKU000018", "price": 30.02, "quantity": 3}
    assert ga4_row("{trunc", "web") == "{trunc"


def test_a_ga4_format_is_refused_for_a_csv_source(tmp_path):
    (tmp_path / "store.toml").write_text('format = "ga4"\n')
    with pytest.raises(MappingError, match="store.toml: format 'ga4' is not a format of source 'store'"):
        load_mapping(tmp_path, "store")
    (tmp_path / "web.toml").write_text('version = 1\nformat = "ga4"\n')
    assert load_mapping(tmp_path, "web").format == "ga4"


@pytest.mark.parametrize(("row", "want"), [
    ({"price": "12.99 USD", "availability": "in stock", "category": "Home > Pots"},
     {"price": "12.99", "currency": "USD", "stock": "1", "category": "Home > Pots"}),
    ({"price": "12.99 usd", "sale_price": "9.99 USD", "availability": "out_of_stock", "category": ""},
     {"price": "9.99", "currency": "USD", "stock": "0", "category": "Home & Garden"}),
    ({"price": "12.99", "availability": "Preorder", "category": "x"},
     {"price": "12.99", "currency": "", "stock": "0", "category": "x"}),
    ({"price": "twelve USD", "availability": "soon", "category": "x"},
     {"price": "twelve USD", "currency": "", "stock": "soon", "category": "x"}),
])
def test_merchant_center_records_become_catalog_records(row, want):
    from omnifuse.landing.merchant_center import to_catalog

    base = {"currency": "", "stock": "", "sale_price": "", "google_product_category": "Home & Garden"}
    out = to_catalog({**base, **row})
    assert {k: out[k] for k in want} == want


def test_the_merchant_center_preset_reads_tabs_and_may_be_overridden(tmp_path):
    (tmp_path / "catalog.toml").write_text('format = "merchant_center"\n[columns]\nsku = "offer_id"\n'
                                          '[defaults]\nrepeatable = "true"\n')
    mapping = load_mapping(tmp_path, "catalog")
    assert mapping.delimiter == "\t" and mapping.columns["sku"] == "offer_id" and mapping.columns["name"] == "title"
    assert mapping.defaults["repeatable"] == "true" and mapping.defaults["in_store"] == "false"
