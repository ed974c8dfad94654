"""Quality gates: Great Expectations versus the same expectations as plain SQL, on a day of ≥ 1,000,000 events.

    .venv/bin/python bench/quality.py [--customers 105000]

Generates one day (about 1.05 M events with the defaults), ingests it and builds core.interactions through the
functions the DAG calls, then in the same run:

1. ``run_gate("staging")`` + ``run_gate("core")``: the full suites through GX (SQL data source, in Postgres),
   Data Docs and ``ops.dq_results`` included — what the DAG's gate tasks do;
2. the same expectations hand-translated to SQL: one aggregate query per table (each expectation a
   ``count(*) filter (...)``), the baseline a careful engineer would write without GX.

Prints both times and the ratio (target: GX ≤ 2× plain SQL).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from _isolated import isolated_url
from omnifuse import warehouse
from omnifuse.daily import LOAD_ORDER
from omnifuse.generate import WorldConfig, generate
from omnifuse.identity import resolve_identities
from omnifuse.ingest import ingest_source
from omnifuse.interactions import build_interactions
from omnifuse.quality import GATES, batch_table, load_suite, run_gate
from psycopg2 import sql

DAY = date(2026, 11, 2)


def _filter(spec: dict, suite: dict) -> sql.Composable | None:
    """The rows breaking one expectation, as a SQL boolean (None for table-level checks done apart)."""
    kind, kw = spec["type"], spec.get("kwargs", {})
    col = sql.Identifier(kw["column"]) if "column" in kw else None
    if kind == "expect_column_values_to_not_be_null":
        return sql.SQL("{} is null").format(col)
    if kind == "expect_column_values_to_be_between":
        parts = []
        if kw.get("min_value") is not None:
            parts.append(sql.SQL("{} {} {}").format(col, sql.SQL("<=" if kw.get("strict_min") else "<"),
                                                    sql.Literal(kw["min_value"])))
        if kw.get("max_value") is not None:
            parts.append(sql.SQL("{} > {}").format(col, sql.Literal(kw["max_value"])))
        return sql.SQL(" or ").join(parts)
    if kind == "expect_column_values_to_be_in_set":
        return sql.SQL("{} not in ({})").format(col, sql.SQL(", ").join(map(sql.Literal, kw["value_set"])))
    if kind == "known_products":
        return sql.SQL("not exists (select 1 from core.products p where p.product_id = t.{})").format(col)
    if kind == "fresh_events":
        return sql.SQL("{c} < %(start)s::timestamptz or {c} >= %(end)s::timestamptz + interval '1 hour'").format(c=col)
    if kind == "expect_column_value_lengths_to_equal":
        return sql.SQL("length({}) <> {}").format(col, sql.Literal(kw["value"]))
    return None


def plain_sql(url: str, gate: str) -> float:
    started = time.perf_counter()
    with warehouse.transaction(url) as cur:
        for name in GATES[gate]:
            suite = load_suite(name)
            schema, table = batch_table(suite, DAY)
            exprs = [sql.SQL("count(*)")]
            for spec in suite["expectations"]:
                kind, kw = spec["type"], spec.get("kwargs", {})
                cond = _filter(spec, suite)
                if cond is not None:
                    exprs.append(sql.SQL("count(*) filter (where {})").format(cond))
                elif kind == "expect_column_values_to_be_unique":
                    exprs.append(sql.SQL("count(*) - count(distinct {})").format(sql.Identifier(kw["column"])))
                elif kind == "expect_compound_columns_to_be_unique":
                    exprs.append(sql.SQL("count(*) - count(distinct ({}))").format(
                        sql.SQL(", ").join(map(sql.Identifier, kw["column_list"]))))
                elif kind == "expect_column_proportion_of_non_null_values_to_be_between":
                    exprs.append(sql.SQL("count({})::float / greatest(count(*), 1)").format(
                        sql.Identifier(kw["column"])))
            cur.execute(sql.SQL("select {} from {} as t").format(sql.SQL(", ").join(exprs),
                                                                 sql.Identifier(schema, table)),
                        {"start": DAY.isoformat(), "end": DAY.isoformat()})
            cur.fetchall()
            # the table-level checks: columns and types from the catalog, volume history, channel mix
            cur.execute("select column_name, data_type from information_schema.columns "
                        "where table_schema = %s and table_name = %s", (schema, table))
            cur.fetchall()
            if name == "core_interactions":
                cur.execute("select channel, count(*) from core.interactions where event_date = %s group by 1",
                            (DAY,))
                cur.fetchall()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=105_000)
    args = parser.parse_args()
    url = isolated_url("quality")  # never the user's warehouse
    scratch = Path(tempfile.mkdtemp(prefix="omnifuse-bench-quality-"))
    try:
        cfg = WorldConfig(customers=args.customers, products=5000, days=1, start=DAY, sessions_per_customer_day=2.0)
        generate(cfg, scratch)
        with warehouse.transaction(url) as cur:
            cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
        warehouse.migrate(url)
        for name in LOAD_ORDER:
            ingest_source(name, DAY, landing_dir=scratch, url=url)
        resolve_identities(DAY, url=url)
        built = build_interactions(DAY, url=url, reattribution_days=0)
        with warehouse.transaction(url) as cur:
            cur.execute("select (select count(*) from staging.web_events) + (select count(*) from "
                        "staging.mobile_events) + (select count(*) from staging.social_interactions) + "
                        "(select count(*) from staging.store_sales)")
            staged = cur.fetchone()[0]
        print(f"day {DAY}: {staged:,} staged events, {built['rows']:,} interactions")
        run_gate("staging", DAY, url=url, run_id="warm-up", raise_on_error=False)  # imports, caches
        for gate in ("staging", "core"):
            plain_sql(url, gate)  # warm the buffer cache the same way for both
            started = time.perf_counter()
            summary = run_gate(gate, DAY, url=url, run_id="bench", raise_on_error=False)
            gx_s = time.perf_counter() - started
            plain_s = plain_sql(url, gate)
            print(f"{gate:8} gate: {summary['checks']} expectations; GX {gx_s:.2f} s, plain SQL {plain_s:.2f} s, "
                  f"GX/SQL = {gx_s / plain_s:.2f} (target <= 2.0)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
