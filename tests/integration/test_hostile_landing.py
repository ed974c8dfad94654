"""A hostile or broken delivery fails only what it must (issue 23, findings 4-7 and the ingest part of 10):
manifest names stay inside their folder, one bad line goes to quarantine with a reason while the rest of the file
loads, errors no retry can fix fail at once, a renamed optional key is noted, and a till file of an older date
is read in that date's store time zone."""

from __future__ import annotations

import gzip
import json
from datetime import date, timedelta

import psycopg2
import pytest
from omnifuse import manifest, warehouse
from omnifuse.ingest import LandingError, ingest_source
from omnifuse.manifest import write_manifest

D = date(2026, 11, 2)


def _sku(url: str) -> tuple[str, float]:
    with warehouse.transaction(url) as cur:
        cur.execute("select product_id, price_eur from core.product_snapshots where snapshot_date = %s "
                    "and currency = 'EUR' order by product_id limit 1", (D,))
        sku, price = cur.fetchone()
    return sku, float(price)


def _web(i, sku: str, price: float, **over) -> dict:
    doc = {"event_id": f"w{i}", "type": "product_view", "ts": "2026-11-02T10:00:00Z", "cookie_id": "ck",
           "session_id": "s", "customer_id": None, "product": {"sku": sku, "price": price}, "context": {"page": "/p"}}
    doc.update(over)
    return doc


def _deliver(root, folder: str, name: str, data: bytes, day: date = D):
    path = root / folder / day.isoformat()
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_bytes(data)
    write_manifest(path)
    return path


def _ndjson(*docs) -> bytes:
    return gzip.compress(b"".join((d if isinstance(d, bytes) else json.dumps(d).encode()) + b"\n" for d in docs))


def _quarantine(url: str, table: str) -> dict[int, tuple[str, str]]:
    with warehouse.transaction(url) as cur:
        cur.execute(f"select _line_no, reason, line from quarantine.{table} where _arrival_date = %s",  # noqa: S608
                    (D,))
        return {n: (reason, line) for n, reason, line in cur.fetchall()}


def _staged(url: str, table: str, key: str) -> list:
    with warehouse.transaction(url) as cur:
        cur.execute(f"select {key} from staging.{table} where _arrival_date = %s order by 1", (D,))  # noqa: S608
        return [k for (k,) in cur.fetchall()]


def _raw_rows(url: str, table: str) -> int:
    with warehouse.transaction(url) as cur:
        cur.execute(f"select count(*) from raw.{table}")  # noqa: S608
        return cur.fetchone()[0]


# --- finding 4: manifest names --------------------------------------------------------------------------------


def _manifest_listing(folder, name: str, real) -> None:
    entry = manifest.entry(real)
    (folder / manifest.MANIFEST).write_text(json.dumps({"files": [{**entry, "name": name}]}))


def test_a_manifest_name_outside_its_folder_loads_nothing_and_tells_nothing(landing, clean_warehouse):
    sku, price = _sku(clean_warehouse)
    outside = landing.parent / "outside"
    outside.mkdir()
    (outside / "x.ndjson.gz").write_bytes(_ndjson(_web(1, sku, price)))
    folder = landing / "web" / D.isoformat()
    folder.mkdir(parents=True)
    _manifest_listing(folder, "events/../../../../outside/x.ndjson.gz", outside / "x.ndjson.gz")
    with pytest.raises(LandingError, match="not a plain file name") as caught:
        ingest_source("web", D, landing_dir=landing, url=clean_warehouse)
    assert _raw_rows(clean_warehouse, "web_events") == 0
    # a wrong size does not reveal whether, or how large, a file outside the zone is
    body = json.loads((folder / manifest.MANIFEST).read_text())
    body["files"][0]["bytes"] += 1
    (folder / manifest.MANIFEST).write_text(json.dumps(body))
    with pytest.raises(LandingError, match="not a plain file name") as caught:
        ingest_source("web", D, landing_dir=landing, url=clean_warehouse)
    assert "bytes on disk" not in str(caught.value)


@pytest.mark.parametrize("char", ["\t", "\n", "\\"], ids=["tab", "newline", "backslash"])
def test_a_control_character_in_a_manifest_name_fails_the_source_with_a_clear_message(landing, clean_warehouse,
                                                                                       char):
    sku, price = _sku(clean_warehouse)
    folder = landing / "web" / D.isoformat()
    folder.mkdir(parents=True)
    real = folder / f"events{char}1.ndjson.gz"
    real.write_bytes(_ndjson(_web(1, sku, price)))
    _manifest_listing(folder, real.name, real)
    with pytest.raises(LandingError, match="not a plain file name"):
        ingest_source("web", D, landing_dir=landing, url=clean_warehouse)


def test_a_link_or_a_name_no_source_reads_fails_the_source(landing, clean_warehouse, tmp_path):
    sku, price = _sku(clean_warehouse)
    (tmp_path / "elsewhere.ndjson.gz").write_bytes(_ndjson(_web(1, sku, price)))
    folder = landing / "web" / D.isoformat()
    folder.mkdir(parents=True)
    (folder / "events.ndjson.gz").symlink_to(tmp_path / "elsewhere.ndjson.gz")
    _manifest_listing(folder, "events.ndjson.gz", tmp_path / "elsewhere.ndjson.gz")
    with pytest.raises(LandingError, match="is a link"):
        ingest_source("web", D, landing_dir=landing, url=clean_warehouse)
    (folder / "events.ndjson.gz").unlink()
    (folder / "notes.txt").write_text("hello\n")
    write_manifest(folder)
    with pytest.raises(LandingError, match="no source of the web folder reads"):
        ingest_source("web", D, landing_dir=landing, url=clean_warehouse)


# --- findings 5 and 6: the mapping's encoding, line bounds -------------------------------------------------------


def test_a_decompressing_encoding_in_a_mapping_is_refused(landing, clean_warehouse):
    import bz2

    from omnifuse.landing_csv import MappingError

    header = "receipt_id,line_no,store_id,loyalty_card,sku,quantity,unit_price,currency,sold_at\n"
    _deliver(landing, "store", "pos.csv", bz2.compress((header + "r1,1,S01,,X,1,1,EUR,2026-11-02 10:00:00\n")
                                                       .encode()))
    (landing / "_mappings").mkdir()
    (landing / "_mappings" / "store.toml").write_text('version = 1\n[csv]\nencoding = "bz2_codec"\n')
    with pytest.raises(MappingError, match="not a text encoding"):
        ingest_source("store", D, landing_dir=landing, url=clean_warehouse)
    assert _raw_rows(clean_warehouse, "store_sales") == 0


def test_a_line_longer_than_the_bound_is_quarantined_cut_and_the_rest_loads(landing, clean_warehouse, monkeypatch):
    monkeypatch.setenv("OMNIFUSE_INGEST_MAX_LINE_KB", "64")
    sku, price = _sku(clean_warehouse)
    long_event = _web(2, sku, price, context={"page": "/" + "x" * 300_000})
    _deliver(landing, "web", "events.ndjson.gz", _ndjson(_web(1, sku, price), long_event, _web(3, sku, price)))
    summary = ingest_source("web", D, landing_dir=landing, url=clean_warehouse)
    quarantine = _quarantine(clean_warehouse, "web_events")
    assert {n: r for n, (r, _) in quarantine.items()} == {2: "line_too_long"}
    assert quarantine[2][1].startswith('{"event_id": "w2"') and len(quarantine[2][1]) == 64 * 1024
    assert _staged(clean_warehouse, "web_events", "event_id") == ["w1", "w3"]
    assert summary["lines_read"] == 3

    header = "receipt_id,line_no,store_id,loyalty_card,sku,quantity,unit_price,currency,sold_at"
    row = f"1,S01,,{sku},1,{price},EUR,2026-11-02 10:00:00"
    pos = "\n".join([header, f"r1,{row}", "r2" + "x" * 200_000 + f",{row}", f"r3,{row}"]) + "\n"
    _deliver(landing, "store", "pos.csv", pos.encode())
    ingest_source("store", D, landing_dir=landing, url=clean_warehouse)
    assert {n: r for n, (r, _) in _quarantine(clean_warehouse, "store_sales").items()} == {3: "line_too_long"}
    assert _staged(clean_warehouse, "store_sales", "receipt_id") == ["r1", "r3"]


def test_errors_no_retry_can_fix_fail_at_once(clean_warehouse):
    from airflow.sdk import RetryAction
    from omnifuse.airflow_glue import OmnifuseRetryPolicy
    from omnifuse.warehouse import WarehouseError

    def action(exc: BaseException) -> RetryAction:
        return OmnifuseRetryPolicy().evaluate(exc, try_number=1, max_tries=3).action

    with pytest.raises(WarehouseError, match="PostgreSQL limit") as too_complex:  # stack depth: SQLSTATE 54001
        with warehouse.transaction(clean_warehouse) as cur:
            cur.execute("select (repeat('[', 100000) || repeat(']', 100000))::jsonb")
    assert isinstance(too_complex.value.__cause__, psycopg2.errors.StatementTooComplex)
    with pytest.raises(WarehouseError, match="cancelled") as cancelled:
        with warehouse.transaction(clean_warehouse) as cur:
            cur.execute("select pg_cancel_backend(pg_backend_pid()), pg_sleep(5)")
    assert isinstance(cancelled.value.__cause__, psycopg2.errors.QueryCanceled)
    with pytest.raises(WarehouseError, match="disk space") as full:
        with warehouse.transaction(clean_warehouse) as cur:
            raise psycopg2.errors.DiskFull("could not extend file: No space left on device")
    for caught in (too_complex, cancelled, full):
        assert action(caught.value) is RetryAction.FAIL
    # a statement timeout is still worth a retry
    with pytest.raises(psycopg2.errors.QueryCanceled) as timeout:
        with warehouse.transaction(clean_warehouse) as cur:
            cur.execute("set local statement_timeout = 50")
            cur.execute("select pg_sleep(2)")
    assert action(timeout.value) is RetryAction.RETRY


# --- finding 7: one bad line is one quarantined line ---------------------------------------------------------------


def test_every_hostile_line_is_quarantined_with_a_reason_and_the_rest_loads(landing, clean_warehouse):
    sku, price = _sku(clean_warehouse)
    deep = b'{"event_id":"w2","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    _deliver(landing, "web", "events.ndjson.gz", _ndjson(_web(1, sku, price), deep, _web(3, sku, price)))
    ingest_source("web", D, landing_dir=landing, url=clean_warehouse)
    assert {n: r for n, (r, _) in _quarantine(clean_warehouse, "web_events").items()} == {2: "json_too_deep"}
    assert _staged(clean_warehouse, "web_events", "event_id") == ["w1", "w3"]

    def mobile(i, ts):
        return {"id": f"m{i}", "event": "view_item", "timestamp_ms": ts, "device_id": "d", "user_id": None,
                "properties": {"sku": sku, "price": price, "currency": "EUR"}, "app": {"version": "1", "os": "ios"}}

    _deliver(landing, "mobile", "events.json.gz",
             _ndjson(mobile(1, 1793620800000), mobile(2, 9223372036854775807), mobile(3, 1793620800000)))
    ingest_source("mobile", D, landing_dir=landing, url=clean_warehouse)
    assert {n: r for n, (r, _) in _quarantine(clean_warehouse, "mobile_events").items()} == {2: "invalid_timestamp"}
    assert _staged(clean_warehouse, "mobile_events", "event_id") == ["m1", "m3"]

    header = "receipt_id,line_no,store_id,loyalty_card,sku,quantity,unit_price,currency,sold_at"
    row = f"1,S01,,{sku},1,{price},EUR,2026-11-02 10:00:00"
    lines = [header, f"r1,{row}", f'r2,1,S01,,"{sku},1,{price},EUR,2026-11-02 10:00:00',
             *(f"r{i},{row}" for i in range(3, 2000))]
    _deliver(landing, "store", "pos.csv", ("\n".join(lines) + "\n").encode())
    ingest_source("store", D, landing_dir=landing, url=clean_warehouse)
    assert {n: r for n, (r, _) in _quarantine(clean_warehouse, "store_sales").items()} == {3: "unbalanced_quote"}
    assert len(_staged(clean_warehouse, "store_sales", "receipt_id")) == 1998


def test_ga4_timestamps_that_are_not_numbers_are_quarantined(landing, clean_warehouse):
    sku, price = _sku(clean_warehouse)
    (landing / "_mappings").mkdir()
    (landing / "_mappings" / "web.toml").write_text('version = 1\nformat = "ga4"\n')

    def row(i, ts) -> dict:
        return {"event_date": "20261102", "event_timestamp": ts, "event_name": "view_item",
                "user_pseudo_id": f"ga.{i}", "platform": "WEB", "event_params": [],
                "items": [{"item_id": sku, "price": price}]}

    noon = str(1793620800 * 1_000_000)
    _deliver(landing, "web", "events.ndjson.gz", _ndjson(row(1, noon), row(2, "²"), row(3, "9" * 5000),
                                                         row(4, noon)))
    ingest_source("web", D, landing_dir=landing, url=clean_warehouse)
    assert {n: r for n, (r, _) in _quarantine(clean_warehouse, "web_events").items()} == {
        2: "invalid_timestamp", 3: "invalid_timestamp"}
    assert len(_staged(clean_warehouse, "web_events", "event_id")) == 2


def test_a_quote_inside_a_catalog_name_loads_every_product(tiny_world, clean_warehouse, tmp_path):
    import shutil

    root = tmp_path / "landing"
    shutil.copytree(tiny_world / "catalog" / D.isoformat(), root / "catalog" / D.isoformat())
    products = root / "catalog" / D.isoformat() / "products.csv"
    lines = products.read_text().splitlines()
    first = lines[1].split(",")
    first[1] = 'Monitor 27"'
    lines[1] = ",".join(first)
    products.write_text("\n".join(lines) + "\n")
    write_manifest(products.parent)
    for name in ("fx_rates", "store_locations"):
        ingest_source(name, D, landing_dir=root, url=clean_warehouse)
    summary = ingest_source("catalog", D, landing_dir=root, url=clean_warehouse)
    assert summary["rows_quarantined"] == 0 and summary["rows_staged"] == len(lines) - 1
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select name from core.products where product_id = %s", (first[0],))
        assert cur.fetchone() == ('Monitor 27"',)


def test_a_failed_catalog_says_that_the_event_loads_wait_for_it_and_what_to_do(tiny_world, clean_warehouse,
                                                                               tmp_path):
    import shutil

    root = tmp_path / "landing"
    shutil.copytree(tiny_world / "catalog" / D.isoformat(), root / "catalog" / D.isoformat())
    products = root / "catalog" / D.isoformat() / "products.csv"
    products.write_text(products.read_text().replace("EUR", "EUX", 1))  # changed after its manifest
    with pytest.raises(LandingError, match="sha256") as caught:
        ingest_source("catalog", D, landing_dir=root, url=clean_warehouse)
    message = str(caught.value)
    assert "web, mobile, social, store" in message and "load_catalog" in message and "Downstream" in message


# --- finding 10 (ingest): renamed optional keys, store time zones per date ------------------------------------------


def test_a_renamed_optional_key_is_noted_in_the_load_audit(landing, clean_warehouse):
    sku, price = _sku(clean_warehouse)
    renamed = [{**{k: v for k, v in _web(i, sku, price).items() if k != "customer_id"}, "customerId": "C1"}
               for i in range(1, 4)]
    _deliver(landing, "web", "events.ndjson.gz", _ndjson(*renamed))
    summary = ingest_source("web", D, landing_dir=landing, url=clean_warehouse)
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select notes from ops.load_audit where channel = 'web' and business_date = %s", (D,))
        (notes,) = cur.fetchone()
    assert notes == summary["notes"]
    assert any("'customerId'" in n and "raw.line" in n for n in notes), notes
    assert any("'customer_id'" in n and "renamed" in n for n in notes), notes

    def app(i) -> dict:
        return {"id": f"m{i}", "event": "view_item", "timestamp_ms": 1793620800000, "device_id": "d", "userId": "C1",
                "properties": {"sku": sku, "price": price, "currency": "EUR"}, "app": {"version": "1", "os": "ios"}}

    _deliver(landing, "mobile", "events.json.gz", _ndjson(app(1), app(2)))
    notes = ingest_source("mobile", D, landing_dir=landing, url=clean_warehouse)["notes"]
    assert any("'user_id'" in n and "'userId'" in n for n in notes), notes
    # the sender's own, complete lines carry no such note
    _deliver(landing, "web", "events.ndjson.gz", _ndjson(_web(1, sku, price)))
    assert ingest_source("web", D, landing_dir=landing, url=clean_warehouse)["notes"] == []


def test_an_older_date_re_run_reads_its_tills_in_that_dates_store_time_zone(landing, clean_warehouse):
    sku, price = _sku(clean_warehouse)
    stores = (landing / "catalog" / D.isoformat() / "stores.csv").read_text()
    assert "S01,Paris,Europe/Paris,EUR" in stores
    later = D + timedelta(days=1)
    _deliver(landing, "catalog", "stores.csv",
             stores.replace("S01,Paris,Europe/Paris,EUR", "S01,Paris,America/New_York,EUR").encode(), day=later)
    ingest_source("store_locations", later, landing_dir=landing, url=clean_warehouse)
    header = "receipt_id,line_no,store_id,loyalty_card,sku,quantity,unit_price,currency,sold_at"
    _deliver(landing, "store", "pos.csv", f"{header}\nr1,1,S01,,{sku},1,{price},EUR,2026-11-02 10:00:00\n".encode())
    ingest_source("store", D, landing_dir=landing, url=clean_warehouse)
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("set local timezone = 'UTC'")
        cur.execute("select event_ts::text from staging.store_sales where _arrival_date = %s", (D,))
        assert cur.fetchone() == ("2026-11-02 09:00:00+00",)  # 10:00 in Paris, not in New York
        cur.execute("select timezone from core.stores where store_id = 'S01'")
        assert cur.fetchone() == ("America/New_York",)  # the current list is the latest one


def test_migration_0022_rebuilds_each_days_store_list_from_the_raw_lines(landing, clean_warehouse):
    """A warehouse loaded before 0022 gets core.store_snapshots from raw.store_locations: what the load writes."""
    stores = (landing / "catalog" / D.isoformat() / "stores.csv").read_text()
    later = D + timedelta(days=1)
    moved = stores.replace("S01,Paris,Europe/Paris,EUR", "S01,Paris,America/New_York,EUR")
    _deliver(landing, "catalog", "stores.csv", (moved + "S09,,Mars/Olympus,EUR\nS01,x,Europe/Rome,EUR\n").encode(),
             day=later)
    ingest_source("store_locations", later, landing_dir=landing, url=clean_warehouse)
    query = "select snapshot_date, store_id, city, timezone, currency from core.store_snapshots order by 1, 2"
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute(query)
        loaded = cur.fetchall()
        cur.execute("drop table core.store_snapshots")
        cur.execute("delete from ops.schema_migrations where version = 22")
    warehouse.migrate(clean_warehouse)
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute(query)
        assert cur.fetchall() == loaded
    assert (later, "S01", "Paris", "America/New_York", "EUR") in loaded and len(loaded) == 16
