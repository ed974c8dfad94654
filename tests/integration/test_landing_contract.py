"""The landing contract as a shop meets it: a column mapping without code, records with newlines, BOMs,
checksums and empty deliveries."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from omnifuse import warehouse
from omnifuse.ingest import LandingError, ingest_source
from omnifuse.manifest import write_manifest

D = date(2026, 11, 2)

MAPPING = """
version = 1
[csv]
delimiter = ";"
decimal = ","
thousands = "."
[columns]
receipt_id = "Bon"
sku = "Artikel"
quantity = "Menge"
unit_price = "Preis"
sold_at = "Zeit"
loyalty_card = "Kundenkarte"
[timestamps]
sold_at = "%d/%m/%Y %H:%M"
[defaults]
currency = "EUR"
store_id = "S01"
line_no = "@row"
"""


def _skus(url: str, n: int) -> list[tuple[str, float]]:
    with warehouse.transaction(url) as cur:
        cur.execute("select product_id, price from core.product_snapshots where snapshot_date = %s "
                    "order by product_id limit %s", (D, n))
        return [(k, float(p)) for k, p in cur.fetchall()]


def test_a_semicolon_decimal_comma_pos_export_loads_through_a_mapping_alone(landing, clean_warehouse):
    (a, pa), (b, pb) = _skus(clean_warehouse, 2)
    folder = landing / "store" / D.isoformat()
    folder.mkdir(parents=True)
    lines = [
        "Bon;Artikel;Menge;Preis;Zeit;Kundenkarte",
        f"B1;{a};2;{pa:.2f}".replace(".", ",") + ";02/11/2026 09:15;K1",
        f"B1;{b};240;{pb:.2f}".replace(".", ",") + ";02/11/2026 09:15;K1",
        f"B2;{a};-1;{pa:.2f}".replace(".", ",") + ";02/11/2026 17:40;",
        "B3;POST;1;18,00;02/11/2026 18:00;",
        f"B4;{a};1;{pa:.2f}".replace(".", ",") + ";31/02/2026 10:00;",  # no such date: quarantined
    ]
    (folder / "kasse.csv").write_text("\n".join(lines) + "\n")
    shutil.move(folder / "kasse.csv", folder / "pos-export.csv")
    write_manifest(folder)
    (landing / "_mappings").mkdir()
    (landing / "_mappings" / "store.toml").write_text(MAPPING)

    summary = ingest_source("store", D, landing_dir=landing, url=clean_warehouse)
    assert summary["lines_read"] == 5 and summary["rows_staged"] == 4
    assert summary["quarantine_by_reason"] == {"invalid_timestamp": 1}
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select receipt_id, line_no, store_id, loyalty_card, sku, quantity, unit_price, currency, "
                    "sold_at_local, line_kind from staging.store_sales order by receipt_id, line_no")
        rows = cur.fetchall()
    assert [(r[0], r[1], r[2], r[5], r[7], r[9]) for r in rows] == [
        ("B1", 1, "S01", 2, "EUR", "product"), ("B1", 2, "S01", 240, "EUR", "product"),
        ("B2", 3, "S01", -1, "EUR", "product"), ("B3", 4, "S01", 1, "EUR", "non_product")]
    assert float(rows[0][6]) == pytest.approx(pa) and float(rows[1][6]) == pytest.approx(pb)
    assert str(rows[0][8]) == "2026-11-02 09:15:00" and rows[0][3] == "K1" and rows[2][3] is None


def test_csv_records_may_hold_newlines_and_a_bom(landing, clean_warehouse):
    folder = landing / "social" / D.isoformat()
    folder.mkdir(parents=True)
    (a, _), = _skus(clean_warehouse, 1)
    body = ("interaction_id,platform,handle,action,sku,occurred_at,text\n"
            f'so-1,instagram,@h1,comment,{a},2026-11-02T10:00:00+01:00,"first line\nsecond line, with a comma"\n'
            f"so-2,x,@h2,like,{a},2026-11-02T11:00:00+01:00,\\N tab\there\n")
    (folder / "interactions.csv").write_bytes(b"\xef\xbb\xbf" + body.encode())
    write_manifest(folder)
    summary = ingest_source("social", D, landing_dir=landing, url=clean_warehouse)
    assert summary["lines_read"] == 2 and summary["rows_staged"] == 2, summary
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select interaction_id, comment_text from staging.social_interactions order by 1")
        rows = cur.fetchall()
    assert rows == [("so-1", "first line\nsecond line, with a comma"), ("so-2", "\\N tab\there")]


def test_a_file_changed_after_its_manifest_fails_naming_it(landing, clean_warehouse):
    folder = landing / "catalog" / D.isoformat()
    products = folder / "products.csv"
    data = bytearray(products.read_bytes())
    data[-3] = ord("9") if data[-3] != ord("9") else ord("8")  # same size, different bytes
    products.write_bytes(bytes(data))
    with pytest.raises(LandingError, match="sha256") as failure:
        ingest_source("catalog", D, landing_dir=landing, url=clean_warehouse)
    assert "products.csv" in str(failure.value) and "re-deliver" in str(failure.value)


def test_an_empty_delivery_is_an_audited_zero_row_run(landing, clean_warehouse):
    folder = landing / "store" / D.isoformat()
    folder.mkdir(parents=True)
    body = write_manifest(folder)
    assert body == {"files": []}
    summary = ingest_source("store", D, landing_dir=landing, url=clean_warehouse)
    assert (summary["files"], summary["lines_read"], summary["rows_staged"]) == (0, 0, 0)
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select files, lines_read from ops.load_audit where channel = 'store' and business_date = %s",
                    (D,))
        assert cur.fetchone() == (0, 0)


def test_a_malformed_mapping_names_its_file(landing, clean_warehouse):
    from omnifuse.landing_csv import MappingError

    folder = landing / "store" / D.isoformat()
    folder.mkdir(parents=True)
    (folder / "pos.csv").write_text("a;b\n1;2\n")
    write_manifest(folder)
    (landing / "_mappings").mkdir()
    (landing / "_mappings" / "store.toml").write_text("[csv]\ndelimiter = ';;'\n")
    with pytest.raises(MappingError, match="store.toml"):
        ingest_source("store", D, landing_dir=landing, url=clean_warehouse)


def test_a_mapping_left_under_the_store_lists_former_source_name_fails_with_the_rename(landing, clean_warehouse):
    (landing / "_mappings").mkdir()
    (landing / "_mappings" / "stores.toml").write_text('version = 1\n[csv]\ndelimiter = ","\n')
    with pytest.raises(LandingError, match="Rename the mapping file to store_locations.toml"):
        ingest_source("store_locations", D, landing_dir=landing, url=clean_warehouse)
    (landing / "_mappings" / "stores.toml").rename(landing / "_mappings" / "store_locations.toml")
    summary = ingest_source("store_locations", D, landing_dir=landing, url=clean_warehouse)
    assert summary["rows_staged"] > 0 and any("read through store_locations.toml" in n for n in summary["notes"])


def test_manifest_counts_records_as_ingest_does(tmp_path: Path):
    (tmp_path / "x.csv").write_text('h1,h2\n1,"a\nb"\n2,c\n')
    body = write_manifest(tmp_path)
    assert body["files"][0]["data_lines"] == 2


def test_till_lines_real_shops_send(landing, clean_warehouse):
    """Adjustments carry any sign (money, not products); a product's negative price or an absurd quantity is
    quarantined with its reason; the rest of the file loads."""
    (a, pa), = _skus(clean_warehouse, 1)
    folder = landing / "store" / D.isoformat()
    folder.mkdir(parents=True)
    head = "receipt_id,line_no,store_id,loyalty_card,sku,quantity,unit_price,currency,sold_at"
    at = "2026-11-02 10:00:00"
    lines = [head,
             f"R1,1,S01,L1,{a},384,{pa:.2f},EUR,{at}",  # wholesale
             f"R1,2,S01,L1,{a},1,0.00,EUR,{at}",  # a free item
             f"R1,3,S01,L1,B,1,-11062.06,EUR,{at}",  # adjust bad debt
             f"R1,4,S01,L1,{a},1,-{pa:.2f},EUR,{at}",  # a product at a negative price
             f"C2,1,S01,L1,{a},-12,{pa:.2f},EUR,{at}",  # a cancellation
             f"R3,1,S01,,{a},80995,{pa:.2f},EUR,{at}"]  # absurd
    (folder / "pos.csv").write_text("\n".join(lines) + "\n")
    write_manifest(folder)
    summary = ingest_source("store", D, landing_dir=landing, url=clean_warehouse)
    assert summary["rows_staged"] == 4
    assert summary["quarantine_by_reason"] == {"invalid_price": 1, "invalid_quantity": 1}
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select receipt_id, line_no, line_kind from staging.store_sales order by 1, 2")
        assert cur.fetchall() == [("C2", 1, "product"), ("R1", 1, "product"), ("R1", 2, "product"),
                                  ("R1", 3, "non_product")]
        cur.execute("select reason, detail from quarantine.store_sales order by reason")
        assert cur.fetchall()[1] == ("invalid_quantity", "quantity=80995")


def test_an_identifier_spelled_like_copys_null_marker_stays_an_identifier(tiny_world, clean_warehouse, tmp_path):
    import gzip
    import json

    from omnifuse.identity import resolve_identities

    root = tmp_path / "landing"
    for folder in ("catalog", "crm", "web"):
        shutil.copytree(tiny_world / folder / D.isoformat(), root / folder / D.isoformat())
    web = root / "web" / D.isoformat()
    path = web / "events.ndjson.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    cookie = json.loads(lines[0])["cookie_id"]
    text = "\n".join(lines).replace(f'"cookie_id":"{cookie}"', '"cookie_id":"\\\\N"') + "\n"
    path.write_bytes(gzip.compress(text.encode()))
    for other in web.glob("events-redelivery*"):
        other.unlink()
    write_manifest(web)
    for name in ("fx_rates", "store_locations", "catalog", "crm", "web"):
        ingest_source(name, D, landing_dir=root, url=clean_warehouse)
    resolve_identities(D, url=clean_warehouse)
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select count(*) from staging.web_events where cookie_id = %s", ("\\N",))
        assert cur.fetchone()[0] > 0
        cur.execute("select identifier, status from core.identity_map where identifier_type = 'cookie_id' "
                    "and identifier = %s", ("\\N",))
        assert len(cur.fetchall()) == 1
        cur.execute("select count(*) from core.identity_map where identifier is null")
        assert cur.fetchone()[0] == 0


def test_a_purchase_without_a_quantity_is_quarantined_a_view_is_one_item(tiny_world, clean_warehouse, landing):
    import gzip
    import json

    source = tiny_world / "web" / D.isoformat() / "events.ndjson.gz"
    events = [json.loads(x) for x in gzip.decompress(source.read_bytes()).decode().splitlines()[:400]
              if x.startswith("{") and x.endswith("}")]
    view = next(e for e in events if e["type"] == "product_view" and e["product"].get("sku"))
    purchase = next(e for e in events if e["type"] == "checkout_complete" and e["product"].get("sku"))
    for event in (view, purchase):
        del event["product"]["quantity"]
    folder = landing / "web" / D.isoformat()
    folder.mkdir(parents=True)
    (folder / "events.ndjson.gz").write_bytes(gzip.compress(
        (json.dumps(view) + "\n" + json.dumps(purchase) + "\n").encode()))
    write_manifest(folder)
    summary = ingest_source("web", D, landing_dir=landing, url=clean_warehouse)
    assert summary["quarantine_by_reason"] == {"missing_field:quantity": 1} and summary["rows_staged"] == 1
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select event_type, quantity from staging.web_events")
        assert cur.fetchall() == [("view", 1)]
