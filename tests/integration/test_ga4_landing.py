"""A day whose web and app events arrive as a Google Analytics 4 BigQuery export (``format = "ga4"``), loaded by
the real ``omnifuse_ingest`` DAG: the same staging, quarantine reasons and exact reconciliation as the native
formats (the generator's planted mess survives the conversion), GA4-only mess quarantined with its reasons, and
a re-run gives the same tables."""

from __future__ import annotations

import gzip
import json
from datetime import date

import pytest
from omnifuse import warehouse
from omnifuse.airflow_glue import run_ingest_days
from omnifuse.config import load_settings
from omnifuse.generate import WorldConfig, generate
from omnifuse.manifest import write_manifest

D = date(2026, 11, 2)


def _row(name: str, micros: int, items: list[dict], platform: str = "WEB", pseudo: str = "ga.1") -> dict:
    return {"event_date": "20261102", "event_timestamp": str(micros), "event_name": name, "user_pseudo_id": pseudo,
            "user_id": None, "platform": platform, "event_params": [], "items": items}


@pytest.fixture(scope="module")
def ga4_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("ga4world")
    generate(WorldConfig(customers=600, products=150, days=2, start=D, seed=11, web_format="ga4"), out)
    catalog = (out / "catalog" / D.isoformat() / "products.csv").read_text().splitlines()[1:3]
    (a, pa), (b, pb) = [(line.split(",")[0], float(line.split(",")[4])) for line in catalog]
    noon = 1793620800 * 1_000_000  # 2026-11-02 12:00 UTC
    two_items = _row("view_item", noon, [{"item_id": a, "price": pa}, {"item_id": b, "price": pb}])
    planted = [
        json.dumps(two_items),                                                    # 2 lines, staged
        json.dumps(two_items),                                                    # 2 duplicates
        '{"event_name":"purchase","items":[{"item_id"',                           # malformed_json
        json.dumps(_row("purchase", noon + 1, [])),                               # missing_field:items
        json.dumps(_row("add_to_cart", noon + 2, [{"price": pa, "quantity": 1}])),  # missing_field:sku
        json.dumps(_row("refund", noon + 3, [{"item_id": a, "price": pa, "quantity": 2}])),  # a return, staged
        json.dumps(_row("page_view", noon + 4, [])),                              # not an interaction: noted
        json.dumps(_row("view_item", noon + 5, [{"item_id": a, "price": pa}], platform="IOS")),  # the app's: noted
    ]
    folder = out / "web" / D.isoformat()
    with gzip.open(folder / "events-ga4-planted.ndjson.gz", "wb") as fh:
        fh.write(("\n".join(planted) + "\n").encode())
    write_manifest(folder)
    return out


def _tables(url: str) -> dict[str, list]:
    with warehouse.transaction(url) as cur:
        found = {}
        quarantine = "_arrival_date, _source_file, _line_no, reason, detail, line"
        for table, columns, order in (
            ("staging.web_events", "*", "event_id"), ("staging.mobile_events", "*", "event_id"),
            ("quarantine.web_events", quarantine, "_source_file, _line_no, line"),
            ("quarantine.mobile_events", quarantine, "_source_file, _line_no, line"),
            ("raw.web_events", "_arrival_date, _source_file, _line_no, line, _parse_error",
             "_source_file, _line_no, line"),
        ):
            cur.execute(f"select {columns} from {table} where _arrival_date = %s order by {order}", (D,))  # noqa: S608
            found[table] = [tuple(str(v) for v in row) for row in cur.fetchall()]
        cur.execute("select channel, files, lines_read, rows_staged, rows_quarantined, duplicates_dropped, "
                    "quarantine_by_reason, notes from ops.load_audit where business_date = %s order by channel", (D,))
        found["audit"] = cur.fetchall()
    return found


def test_a_ga4_day_loads_through_the_ingest_dag_with_the_native_accounting(ga4_world, clean_warehouse, monkeypatch):
    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", str(ga4_world))
    assert run_ingest_days([D], load_settings()) == ["success"]
    first = _tables(clean_warehouse)
    audit = {row[0]: row[1:] for row in first["audit"]}
    truth = json.loads((ga4_world / "truth" / "mess" / f"{D.isoformat()}.json").read_text())

    # mobile: the generated day as a GA4 export, judged by the native truth (one item per row)
    files, lines, staged, quarantined, dups, reasons, notes = audit["mobile"]
    expected = truth["mobile"]["expected"]
    assert lines == staged + quarantined + dups == expected["lines_read"]
    assert (staged, dups, reasons) == (expected["rows_staged"], expected["duplicates_dropped"],
                                       expected["rows_quarantined_by_reason"])
    assert any("read as a GA4 export" in n for n in notes)

    # web: the same, plus the planted GA4 rows (8 rows: 6 lines, 2 noted)
    files, lines, staged, quarantined, dups, reasons, notes = audit["web"]
    expected = truth["web"]["expected"]
    planted_reasons = {"malformed_json": 1, "missing_field:items": 1, "missing_field:sku": 1}
    want = dict(expected["rows_quarantined_by_reason"])
    for reason, n in planted_reasons.items():
        want[reason] = want.get(reason, 0) + n
    assert lines == staged + quarantined + dups == expected["lines_read"] + 2 + 2 + 4
    assert staged == expected["rows_staged"] + 2 + 1
    assert dups == expected["duplicates_dropped"] + 2
    assert reasons == want
    assert any("8 GA4 rows -> 8 lines" in n for n in notes), notes
    assert any("2 GA4 rows are not web interactions" in n and "event:page_view=1" in n and "platform:IOS=1" in n
               for n in notes), notes
    # quarantined rows keep their reason, detail and the GA4 row's line number
    planted = [row for row in first["quarantine.web_events"] if "events-ga4-planted" in row[1]]
    assert sorted((row[2], row[3]) for row in planted) == [
        ("3", "malformed_json"), ("4", "missing_field:items"), ("5", "missing_field:sku")]
    # the refund is a return: staged with a negative quantity, a `return` interaction with negative revenue
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select event_type, quantity from staging.web_events where _arrival_date = %s "
                    "and source_event_type = 'refund'", (D,))
        assert cur.fetchall() == [("return", -2)]
        cur.execute("select count(*), bool_and(revenue < 0), bool_and(quantity = -2) from core.interactions "
                    "where channel = 'web' and event_type = 'return'")
        assert cur.fetchone() == (1, True, True)
    # every item is a raw row of its own, the line number shared
    raw_planted = [row for row in first["raw.web_events"] if "events-ga4-planted" in row[1]]
    assert [row[2] for row in raw_planted] == ["1", "1", "2", "2", "3", "4", "5", "6"]

    # the re-run of the day gives the same tables
    assert run_ingest_days([D], load_settings()) == ["success"]
    again = _tables(clean_warehouse)
    assert again == first
