"""Ingest against a real PostgreSQL server: accounting, idempotence, mess handling, failures."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from datetime import date

import pytest
from omnifuse import ingest, warehouse
from psycopg2 import sql

DAY1, DAY2, DAY3 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)
EVENT_SOURCES = ("web", "mobile", "social", "store")
ALL_SOURCES = ("catalog", "store_locations", "fx_rates", "crm", *EVENT_SOURCES)


def _ingest_day(world, day, url, names=ALL_SOURCES):
    return {n: ingest.ingest_source(n, day, landing_dir=world, url=url) for n in names}


def _query(url, text, params=None):
    with warehouse.transaction(url) as cur:
        cur.execute(text, params)
        return cur.fetchall()


def _table_digest(url, table, day):
    """Digest and row count of one batch date of a staging table (which carries no load timestamps)."""
    query = sql.SQL("select * from {} where _arrival_date = %s order by _source_file, _line_no").format(
        sql.Identifier(*table.split("."))
    )
    with warehouse.transaction(url) as cur:
        cur.execute(query, (day,))
        rows = cur.fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest(), len(rows)


def test_day_reconciles_and_matches_planted_mess(tiny_world, clean_warehouse):
    url = clean_warehouse
    for day in (DAY1, DAY2):
        summaries = _ingest_day(tiny_world, day, url)
        truth = json.loads((tiny_world / "truth" / "mess" / f"{day}.json").read_text())
        for channel in EVENT_SOURCES:
            got, expected = summaries[channel], truth[channel]["expected"]
            assert got["lines_read"] == got["rows_staged"] + got["rows_quarantined"] + got["duplicates_dropped"]
            assert got["lines_read"] == expected["lines_read"], channel
            assert got["quarantine_by_reason"] == expected["rows_quarantined_by_reason"], channel
            assert got["duplicates_dropped"] == expected["duplicates_dropped"], channel
            assert got["rows_staged"] == expected["rows_staged"], channel
    audit = _query(url, "select channel, lines_read, rows_staged, rows_quarantined, duplicates_dropped "
                        "from ops.load_audit where business_date = %s", (DAY1,))
    assert {a[0] for a in audit} == set(ALL_SOURCES)
    for _, lines, staged, quarantined, dups in audit:
        assert lines == staged + quarantined + dups
    # every staged web event is exactly once in staging
    dup_ids = _query(url, "select event_id from staging.web_events where _arrival_date = %s "
                          "group by event_id having count(*) > 1", (DAY1,))
    assert dup_ids == []
    # quarantine keeps the raw text and a reason for every row
    assert _query(url, "select count(*) from quarantine.web_events where line = '' or reason is null") == [(0,)]


def test_rerunning_a_day_gives_identical_tables(tiny_world, clean_warehouse):
    url = clean_warehouse
    staged = ["staging.web_events", "staging.mobile_events", "staging.social_interactions", "staging.store_sales"]
    snapshot_queries = [
        "select _source_file, _line_no, reason, detail from quarantine.web_events order by 1, 2",
        "select _source_file, _line_no, reason, detail from quarantine.store_sales order by 1, 2",
        "select channel, files, lines_read, rows_staged, rows_quarantined, duplicates_dropped, "
        "quarantine_by_reason from ops.load_audit order by 1",
        "select * from core.products order by product_id",
        "select * from core.customers order by customer_id",
        "select _source_file, _line_no, line from raw.web_events order by 1, 2",
    ]
    _ingest_day(tiny_world, DAY1, url)
    before = {t: _table_digest(url, t, DAY1) for t in staged}
    snapshots = [_query(url, q) for q in snapshot_queries]
    _ingest_day(tiny_world, DAY1, url)
    assert {t: _table_digest(url, t, DAY1) for t in staged} == before
    assert [_query(url, q) for q in snapshot_queries] == snapshots
    assert all(count > 0 for _, count in before.values())


def test_renamed_column_is_mapped_and_noted(tiny_world, clean_warehouse):
    url = clean_warehouse
    _ingest_day(tiny_world, DAY2, url, ("catalog", "store_locations", "fx_rates", "store"))
    mapping = _query(url, "select column_mapping from ops.landed_files where source = 'store' and business_date = %s",
                     (DAY2,))
    assert mapping and all(m[0] == {"qty": "quantity"} for m in mapping)
    # every staged line's quantity is the renamed column's value in the file, line by line
    import csv

    qty = {}
    for path in sorted((tiny_world / "store" / DAY2.isoformat()).glob("*.csv")):
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            assert "qty" in (reader.fieldnames or []) and "quantity" not in (reader.fieldnames or [])
            for row in reader:
                qty[(path.name, reader.line_num)] = row["qty"]
    staged = _query(url, "select _source_file, _line_no, quantity from staging.store_sales "
                         "where _arrival_date = %s", (DAY2,))
    assert len(staged) > 100
    assert all(str(q) == qty[(f.rsplit("/", 1)[-1], n)] for f, n, q in staged)
    notes = _query(url, "select notes from ops.load_audit where channel = 'store' and business_date = %s", (DAY2,))
    assert "mapped to 'quantity'" in json.dumps(notes)


def test_unmappable_renamed_column_is_quarantined_with_reason(tiny_world, clean_warehouse, tmp_path):
    url = clean_warehouse
    world = tmp_path / "w"
    shutil.copytree(tiny_world, world)
    pos = world / "store" / DAY1.isoformat() / "pos.csv"
    text = pos.read_text().replace("quantity", "amount", 1)
    pos.write_text(text)
    manifest = world / "store" / DAY1.isoformat() / "_manifest.json"
    body = json.loads(manifest.read_text())
    for entry in body["files"]:
        if entry["name"] == "pos.csv":
            entry["bytes"] = pos.stat().st_size
            entry["sha256"] = hashlib.sha256(pos.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(body))
    _ingest_day(world, DAY1, url, ("catalog", "store_locations", "fx_rates"))
    summary = ingest.ingest_source("store", DAY1, landing_dir=world, url=url)
    assert summary["rows_quarantined"] >= summary["lines_read"] // (2 if len(body["files"]) > 1 else 1)
    assert "missing_column:quantity" in summary["quarantine_by_reason"]
    assert _query(url, "select count(*) from staging.store_sales where _source_file like %s",
                  ("%/pos.csv",)) == [(0,)]


def test_late_events_are_staged_in_their_arrival_batch(tiny_world, clean_warehouse):
    url = clean_warehouse
    _ingest_day(tiny_world, DAY2, url)
    truth = json.loads((tiny_world / "truth" / "mess" / f"{DAY2}.json").read_text())
    late = _query(url, "select count(*) from staging.web_events where _arrival_date = %s and is_late "
                       "and event_ts::date = %s", (DAY2, DAY1))[0][0]
    assert late == truth["web"]["late_in"] > 0


def test_missing_file_fails_with_its_name(tiny_world, clean_warehouse, tmp_path):
    world = tmp_path / "w"
    shutil.copytree(tiny_world, world)
    (world / "web" / DAY1.isoformat() / "events.ndjson.gz").unlink()
    with pytest.raises(ingest.LandingError,
                       match=r"web/2026-11-02/events.ndjson.gz: listed in _manifest.json but missing"):
        ingest.ingest_source("web", DAY1, landing_dir=world, url=clean_warehouse)


def test_missing_delivery_fails_with_the_manifest_path(tiny_world, clean_warehouse, tmp_path):
    with pytest.raises(ingest.LandingError, match=r"web/2026-11-09/_manifest.json: no manifest"):
        ingest.ingest_source("web", date(2026, 11, 9), landing_dir=tiny_world, url=clean_warehouse)


def test_truncated_file_fails_and_keeps_the_previous_load(tiny_world, clean_warehouse, tmp_path):
    url = clean_warehouse
    world = tmp_path / "w"
    shutil.copytree(tiny_world, world)
    _ingest_day(world, DAY1, url, ("catalog", "store_locations", "fx_rates", "web"))
    before = _query(url, "select count(*) from staging.web_events")
    path = world / "web" / DAY1.isoformat() / "events.ndjson.gz"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ingest.LandingError, match=r"events.ndjson.gz: \d+ bytes on disk but \d+ in _manifest.json"):
        ingest.ingest_source("web", DAY1, landing_dir=world, url=url)
    # the sender "fixes" the manifest's size and checksum but the gzip stream is still cut
    manifest = path.parent / "_manifest.json"
    body = json.loads(manifest.read_text())
    for entry in body["files"]:
        if entry["name"] == path.name:
            entry["bytes"] = path.stat().st_size
            entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(body))
    with pytest.raises(ingest.LandingError, match="events.ndjson.gz: corrupt or truncated gzip"):
        ingest.ingest_source("web", DAY1, landing_dir=world, url=url)
    assert _query(url, "select count(*) from staging.web_events") == before


def test_concurrent_runs_of_one_load_do_not_duplicate(tiny_world, clean_warehouse):
    url = clean_warehouse
    _ingest_day(tiny_world, DAY1, url, ("catalog", "store_locations", "fx_rates"))
    errors: list[BaseException] = []

    def run():
        try:
            ingest.ingest_source("mobile", DAY1, landing_dir=tiny_world, url=url)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    staged = _query(url, "select count(*), count(distinct event_id) from staging.mobile_events")[0]
    assert staged[0] == staged[1]
    assert _query(url, "select rows_staged from ops.load_audit where channel = 'mobile'") == [(staged[0],)]
