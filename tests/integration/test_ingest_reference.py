"""The staging statements give exactly the tables their reference gives, on the same landed lines.

``reference_sql/`` holds the staging statements of the four event sources as they were before they were
rewritten for speed (one wide row per line, a window sort for duplicates): slow, but simple to read. Each day of
the tiny messy world is loaded by ``ingest_source``; then, in a transaction rolled back, the reference statement
re-types the same ``raw`` partition: staging, quarantine (reason and detail) and the counts must be identical.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path

from omnifuse import sources, warehouse
from omnifuse.config import load_settings
from omnifuse.ingest import ingest_source
from omnifuse.rules import staging_params
from psycopg2 import sql

REFERENCE = Path(__file__).parent / "reference_sql"
DAYS = [date(2026, 11, 2) + timedelta(days=i) for i in range(3)]
EVENT_SOURCES = ("web", "mobile", "social", "store")


def _digest(cur, schema: str, table: str, day: date) -> tuple[str, int]:
    columns = "*" if schema == "staging" else "_arrival_date, _source_file, _line_no, line, reason, detail"
    cur.execute(sql.SQL("select {} from {} where _arrival_date = %s order by _source_file, _line_no").format(
        sql.SQL(columns), sql.Identifier(schema, table)), (day,))
    rows = cur.fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest(), len(rows)


def _partition(schema: str, table: str, day: date) -> sql.Identifier:
    return sql.Identifier(schema, f"{table}_p{day:%Y%m%d}")


def test_staging_matches_the_reference_statements(tiny_world, clean_warehouse):
    url = clean_warehouse
    window = load_settings().late_window_days
    compared = 0
    for day in DAYS:
        for name in ("fx_rates", "store_locations", "catalog", "crm"):
            ingest_source(name, day, landing_dir=tiny_world, url=url)
        for name in EVENT_SOURCES:
            summary = ingest_source(name, day, landing_dir=tiny_world, url=url)
            source = sources.get(name)
            target_schema, target_table = source.target.split(".")
            conn = warehouse.connect(url)
            try:
                with conn.cursor() as cur:
                    cur.execute("set local timezone = 'UTC'")
                    ours = (_digest(cur, target_schema, target_table, day),
                            _digest(cur, "quarantine", source.table, day))
                    for schema, table in ((target_schema, target_table), ("quarantine", source.table)):
                        cur.execute(sql.SQL("truncate {}").format(_partition(schema, table, day)))
                    cur.execute((REFERENCE / Path(source.stage_sql).name).read_text(),
                                {"business_date": day, "late_window_days": window, **staging_params()})
                    rows_staged, duplicates, by_reason = cur.fetchone()
                    reference = (_digest(cur, target_schema, target_table, day),
                                 _digest(cur, "quarantine", source.table, day))
            finally:
                conn.rollback()
                conn.close()
            assert ours == reference, (name, day)
            assert (summary["rows_staged"], summary["duplicates_dropped"], summary["quarantine_by_reason"]) == \
                (rows_staged, duplicates, dict(sorted(by_reason.items()))), (name, day)
            compared += ours[0][1] > 0 and ours[1][1] > 0
    assert compared >= 8  # the messy world stages and quarantines lines of most (source, day)s
